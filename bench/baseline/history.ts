/**
 * @module
 * BENCHMARK BASELINE ONLY: the run-length history base class of `accountant/accountant.ts` as it was before the
 * privacy-math branch (every change drops all caches), so the baseline accountants do not pick up the library's
 * incremental caches.
 */
import {
  AccountantStateSchema,
  InvalidPrivacyParameterError,
  validateStep,
  type Accountant,
  type AccountantMechanism,
  type AccountantState,
  type HistoryEntry,
  type StepParams,
} from "@fedge/privacy";

export abstract class HistoryAccountant implements Accountant {
  abstract readonly mechanism: AccountantMechanism;
  protected entries: HistoryEntry[] = [];

  step(params: StepParams, steps = 1): void {
    validateStep(params, steps);
    const last = this.entries.at(-1);
    if (last && last.noiseMultiplier === params.noiseMultiplier && last.sampleRate === params.sampleRate) {
      last.steps += steps;
    } else {
      this.entries.push({ noiseMultiplier: params.noiseMultiplier, sampleRate: params.sampleRate, steps });
    }
    this.changed();
  }

  abstract getEpsilon(delta: number): number;

  /** Naive: record, read ε, restore (the baseline had no incremental path). */
  epsilonAfter(params: StepParams, steps: number, delta: number): number {
    const saved = this.entries.map((e) => ({ ...e }));
    this.step(params, steps);
    try {
      return this.getEpsilon(delta);
    } finally {
      this.entries = saved;
      this.changed();
    }
  }

  get history(): readonly HistoryEntry[] {
    return this.entries.map((e) => ({ ...e }));
  }

  get totalSteps(): number {
    return this.entries.reduce((s, e) => s + e.steps, 0);
  }

  exportState(): AccountantState {
    return { mechanism: this.mechanism, history: this.entries.map((e) => ({ ...e })) };
  }

  loadState(state: unknown): void {
    const parsed = AccountantStateSchema.safeParse(state);
    if (!parsed.success) throw new InvalidPrivacyParameterError("invalid accountant state");
    this.entries = parsed.data.history.map((e) => ({ ...e }));
    this.changed();
  }

  protected changed(): void {}
}
