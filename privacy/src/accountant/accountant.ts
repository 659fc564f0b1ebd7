/**
 * @module
 * The accountant interface (after opacus `IAccountant`, opacus/accountants/accountant.py): a run-length history of
 * Poisson-subsampled Gaussian steps, ε for a δ, and a validated state export/import. Implementations: `rdp.ts`, `pld.ts`;
 * pick one by name with `createAccountant` in `registry.ts`. All math lives in `analysis/` (pure).
 */
import { z } from "zod";
import { distributedRdp, type DistributedNoiseShares } from "./analysis/distributed-discrete-gaussian.ts";

/** Accountant mechanisms known to the registry. */
export type AccountantMechanism = "rdp" | "pld";

/**
 * One step of DP-SGD / DP-FedAvg: Poisson sampling with rate q, Gaussian noise σ = z·C on a sum clipped to C; or,
 * with `distributed`, the distributed discrete Gaussian's release (Kairouz, Liu, Steinke 2021, arXiv 2102.06387).
 */
export interface StepParams {
  /** z = σ/C, > 0 (with `distributed`: the round's nominal z; the charge comes from the shares). */
  noiseMultiplier: number;
  /** q, the Poisson sampling probability, in (0, 1]. */
  sampleRate: number;
  /**
   * A distributed-mode step: the RDP of the sum of these discrete Gaussian shares for add/remove neighbours (the
   * device's share leaves with it; KLS21's closeness and the exact lattice-Gaussian divergence,
   * `analysis/distributed-discrete-gaussian.ts`), subsampled by Zhu & Wang's general bound; with
   * `adjacency: "zero-out"`, KLS21's bound for a zero update at q = 1; with `cohort: "checked-in"`, that bound
   * subsampled at q. RDP accountant only.
   */
  distributed?: DistributedNoiseShares | undefined;
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

export const DistributedNoiseSharesSchema = z.strictObject({
  dimension: z
    .number()
    .int()
    .positive()
    .max(2 ** 30),
  clients: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  localVariance: z.number().min(0.25).finite(),
  sensitivityBound: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  adjacency: z.enum(["add-remove", "zero-out"]).optional(),
  cohort: z.enum(["sampled", "checked-in"]).optional(),
});

export const HistoryEntrySchema = z.object({
  noiseMultiplier: z.number().positive().finite(),
  sampleRate: z.number().positive().max(1),
  steps: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  distributed: DistributedNoiseSharesSchema.optional(),
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
  if (p.distributed !== undefined) {
    const parsed = DistributedNoiseSharesSchema.safeParse(p.distributed);
    if (!parsed.success) {
      throw new InvalidPrivacyParameterError(`invalid distributed noise shares: ${z.prettifyError(parsed.error)}`);
    }
    if (parsed.data.adjacency === "zero-out" && parsed.data.cohort !== "checked-in" && q !== 1) {
      throw new InvalidPrivacyParameterError(
        `a zero-out distributed step of a sampled cohort is charged without subsampling (sampleRate 1), got sampleRate ${q}`,
      );
    }
    if (parsed.data.cohort === "checked-in" && parsed.data.adjacency === "add-remove") {
      throw new InvalidPrivacyParameterError(
        `a checked-in cohort keeps every device's share in the sum: it is charged for zero-out neighbours, not add/remove`,
      );
    }
    try {
      distributedRdp(parsed.data, 2);
    } catch (e) {
      throw new InvalidPrivacyParameterError(`invalid distributed noise shares: ${(e as Error).message}`, { cause: e });
    }
  }
}

/** Whether two steps are the same mechanism (what lets the history merge them into one run). */
export function sameStep(a: StepParams, b: StepParams): boolean {
  if (a.noiseMultiplier !== b.noiseMultiplier || a.sampleRate !== b.sampleRate) return false;
  const x = a.distributed;
  const y = b.distributed;
  if (x === undefined || y === undefined) return x === y;
  return (
    x.dimension === y.dimension &&
    x.clients === y.clients &&
    x.localVariance === y.localVariance &&
    x.sensitivityBound === y.sensitivityBound &&
    (x.adjacency ?? "add-remove") === (y.adjacency ?? "add-remove") &&
    (x.cohort ?? "sampled") === (y.cohort ?? "sampled")
  );
}

/** A copy of the step's parameters (no aliasing of the caller's objects). */
function copyStep(p: {
  noiseMultiplier: number;
  sampleRate: number;
  distributed?: DistributedNoiseShares | undefined;
}): StepParams {
  return {
    noiseMultiplier: p.noiseMultiplier,
    sampleRate: p.sampleRate,
    ...(p.distributed ? { distributed: { ...p.distributed } } : {}),
  };
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
    this.assertSupported(params);
    const last = this.entries.at(-1);
    if (last && sameStep(last, params)) {
      last.steps += steps;
    } else {
      this.entries.push({ ...copyStep(params), steps });
    }
    this.appended(copyStep(params), steps);
  }

  /** Throws {@link InvalidPrivacyParameterError} for a step this accountant has no analysis for. */
  protected assertSupported(_params: StepParams): void {}

  abstract getEpsilon(delta: number): number;

  abstract epsilonAfter(params: StepParams, steps: number, delta: number): number;

  get history(): readonly HistoryEntry[] {
    return this.entries.map((e) => ({ ...copyStep(e), steps: e.steps }));
  }

  get totalSteps(): number {
    return this.entries.reduce((s, e) => s + e.steps, 0);
  }

  exportState(): AccountantState {
    return { mechanism: this.mechanism, history: this.entries.map((e) => ({ ...copyStep(e), steps: e.steps })) };
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
    for (const e of parsed.data.history) this.assertSupported(copyStep(e));
    this.entries = parsed.data.history.map((e) => ({ ...copyStep(e), steps: e.steps }));
    this.changed();
  }

  /** Hook for caches: the whole history was replaced. */
  protected changed(): void {}

  /** Hook for incremental caches: `steps` steps of `params` were appended (already in `entries`). */
  protected appended(_params: StepParams, _steps: number): void {
    this.changed();
  }
}
