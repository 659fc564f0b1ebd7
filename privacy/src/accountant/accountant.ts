/**
 * @module
 * The accountant interface (after opacus `IAccountant`, opacus/accountants/accountant.py): a run-length history of
 * Poisson-subsampled Gaussian steps, ε for a δ, and a validated state export/import. Implementations: `rdp.ts`, `pld.ts`;
 * pick one by name with `createAccountant` in `registry.ts`. All math lives in `analysis/` (pure).
 */
import { z } from "zod";

/** Accountant mechanisms known to the registry. */
export type AccountantMechanism = "rdp" | "pld";

/** One step of DP-SGD / DP-FedAvg: Poisson sampling with rate q, Gaussian noise σ = z·C on a sum clipped to C. */
export interface StepParams {
  /** z = σ/C, > 0. */
  noiseMultiplier: number;
  /** q, the Poisson sampling probability, in (0, 1]. */
  sampleRate: number;
}

/** A run of identical consecutive steps (opacus keeps `(sigma, q, steps)` tuples; so do we). */
export interface HistoryEntry extends StepParams {
  steps: number;
}

/** Serialisable accountant state. */
export interface AccountantState {
  mechanism: AccountantMechanism;
  history: HistoryEntry[];
}

/**
 * Why a privacy parameter was refused:
 * - `invalid_parameter`: a value out of its range (q, z, δ, steps, ε, an option, an unknown accountant);
 * - `invalid_state`: a saved accountant or ledger state that does not validate or is for another mechanism;
 * - `duplicate_round`: a round id already in the ledger;
 * - `unreachable_target`: no noise multiplier up to the solver's limit meets the target ε.
 */
export type InvalidPrivacyParameterReason =
  "invalid_parameter" | "invalid_state" | "duplicate_round" | "unreachable_target";

/**
 * A bad privacy parameter or state: a `RangeError` with a {@link InvalidPrivacyParameterReason}, and no HTTP status
 * (the edge and the CLI decide what it means for their callers).
 */
export class InvalidPrivacyParameterError extends RangeError {
  readonly reason: InvalidPrivacyParameterReason;
  constructor(message: string, options: { reason?: InvalidPrivacyParameterReason; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "InvalidPrivacyParameterError";
    this.reason = options.reason ?? "invalid_parameter";
  }
}

export const HistoryEntrySchema = z.object({
  noiseMultiplier: z.number().positive().finite(),
  sampleRate: z.number().positive().max(1),
  steps: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
});

export const AccountantStateSchema = z.object({
  mechanism: z.enum(["rdp", "pld"]),
  history: z.array(HistoryEntrySchema),
});

/** Validates q ∈ (0, 1], z > 0 finite, steps a positive safe integer; throws {@link InvalidPrivacyParameterError}. */
export function validateStep(p: StepParams, steps = 1): void {
  const { sampleRate: q, noiseMultiplier: zz } = p;
  if (typeof q !== "number" || !(q > 0 && q <= 1)) {
    throw new InvalidPrivacyParameterError(`sampleRate must be in (0, 1], got ${String(q)}`);
  }
  if (typeof zz !== "number" || !(zz > 0) || !Number.isFinite(zz)) {
    throw new InvalidPrivacyParameterError(`noiseMultiplier must be a finite number > 0, got ${String(zz)}`);
  }
  if (!Number.isSafeInteger(steps) || steps < 1) {
    throw new InvalidPrivacyParameterError(`steps must be a positive integer, got ${String(steps)}`);
  }
}

/** Validates δ ∈ (0, 1). */
export function validateDelta(delta: number): void {
  if (typeof delta !== "number" || !(delta > 0 && delta < 1)) {
    throw new InvalidPrivacyParameterError(`delta must be in (0, 1), got ${String(delta)}`);
  }
}

/** The accountant contract every implementation fulfils (and the shared test suite checks). */
export interface Accountant {
  readonly mechanism: AccountantMechanism;
  /** Records `steps` (default 1) identical steps; merges with the last history entry when (q, z) match. */
  step(params: StepParams, steps?: number): void;
  /** The smallest ε (≥ 0) this accountant can certify for δ; `Infinity` if none. */
  getEpsilon(delta: number): number;
  /**
   * ε for δ if `steps` more steps of `params` were taken, without recording them (a budget check before a round).
   * Incremental: composes only the new steps onto the cached composition of the history, so a ledger charge costs
   * the same whatever the history's length. A following `step` with the same arguments reuses the work.
   */
  epsilonAfter(params: StepParams, steps: number, delta: number): number;
  /** Run-length history, oldest first (copies). */
  readonly history: readonly HistoryEntry[];
  /** Total number of steps. */
  readonly totalSteps: number;
  exportState(): AccountantState;
  /** Replaces the history with a validated state; throws {@link InvalidPrivacyParameterError} and changes nothing on bad input. */
  loadState(state: unknown): void;
}

/** Shared history handling for accountants. */
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
    this.appended({ noiseMultiplier: params.noiseMultiplier, sampleRate: params.sampleRate }, steps);
  }

  abstract getEpsilon(delta: number): number;

  abstract epsilonAfter(params: StepParams, steps: number, delta: number): number;

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
    if (!parsed.success) {
      throw new InvalidPrivacyParameterError(`invalid accountant state: ${z.prettifyError(parsed.error)}`, {
        reason: "invalid_state",
      });
    }
    if (parsed.data.mechanism !== this.mechanism) {
      throw new InvalidPrivacyParameterError(
        `accountant state is for mechanism "${parsed.data.mechanism}", this accountant is "${this.mechanism}"`,
        { reason: "invalid_state" },
      );
    }
    this.entries = parsed.data.history.map((e) => ({ ...e }));
    this.changed();
  }

  /** Hook for caches: the whole history was replaced. */
  protected changed(): void {}

  /** Hook for incremental caches: `steps` steps of `params` were appended (already in `entries`). */
  protected appended(_params: StepParams, _steps: number): void {
    this.changed();
  }
}
