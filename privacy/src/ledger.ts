/**
 * @module
 * The privacy ledger of one training population: every opened round with its (q, z, mode), the composed spend, and a
 * refusal to open a round that would exceed the budget. Pure (no I/O, no clock): the aggregator passes `openedAt`,
 * and checkpoints the ledger with {@link PrivacyLedger.toJSON} / {@link PrivacyLedger.fromJSON}.
 *
 * How rounds are accounted, per privacy mode (see docs/PRIVACY.md "Adjacency"):
 * - `central`: one step of the Poisson-subsampled Gaussian mechanism with rate q and noise multiplier z (DP-FedAvg,
 *   McMahan et al. 2018, arXiv 1710.06963) under add/remove-one-device adjacency (sensitivity C): user-level (ε, δ)
 *   against everyone who sees the published models. The aggregator's default central noise is the discrete Gaussian
 *   on a grid whose σ is inflated so that this charge stays z (`discrete-sum.ts`).
 * - `local`: every device adds N(0, (z·C)²) to its own clipped report, so each report is its own Gaussian mechanism
 *   seen by the server directly. It is charged with the neighbouring relation the SDK prices each report with
 *   (`local-epsilon.ts`): replace-one, sensitivity 2C, i.e. one Gaussian step with noise multiplier z/2. Subsampling
 *   does not amplify here (the server knows who reported), so q = 1; the ledger composes these steps per device over
 *   all local rounds, i.e. for the worst-case device that participated in every one of them. Replace-one (2C) also
 *   bounds the add/remove cost of a report (C), so mixed central + local histories compose into a valid add/remove
 *   guarantee, and a local-only history's spend is exactly what the SDK reports per device.
 * - `distributed`: secure aggregation of devices' rounded updates, each carrying a discrete Gaussian noise share
 *   (Kairouz, Liu, Steinke 2021, arXiv 2102.06387). The round carries its {@link DistributedNoiseShares} (dimension,
 *   the honest shares of other devices the sum is guaranteed to hold, each share's variance, the rounded sensitivity
 *   bound) and is charged for add/remove neighbours: the device present (its update and its own share on top of the
 *   g counted ones) against absent (g shares), the exact Rényi divergence of those discrete Gaussians with KLS21's
 *   closeness τ, Poisson-subsampled with rate q by Zhu & Wang's general bound
 *   (`accountant/analysis/distributed-discrete-gaussian.ts`; docs/PRIVACY.md, "Which neighbour").
 *   Only the RDP accountant has this analysis; a PLD ledger refuses such rounds.
 * All rounds compose into one device-level (ε, δ), whatever the mix of modes: against everyone who sees only the
 * released models.
 *
 * **Against the edge** ({@link PrivacyLedger.spentAgainstEdge}): the edge flips the coins and sees who takes part, so
 * no subsampling amplifies against it. A distributed round is then charged at q = 1 for zero-out neighbours (the
 * device takes part either way, its update replaced by 0: its own share is in both sums, g + 1 shares, mean shift
 * only; Kairouz, McMahan, Song, Thakkar, Thakurta, Xu 2021, arXiv 2103.00039); a local round as above (already
 * q = 1); a central round gives no bound (the edge stores the clipped update). Composed over every round: the worst
 * device, in every round.
 *
 * Cost: the ledger keeps one live accountant with the history's composition cached (RDP: the summed curve; PLD: the
 * composed distributions), so {@link PrivacyLedger.open} composes only the new round: its cost does not grow with
 * the number of rounds already recorded. Keep the ledger object alive between charges (a Durable Object, the round
 * engine); {@link PrivacyLedger.fromJSON} rebuilds the cache once.
 */
import { z } from "zod";
import {
  InvalidPrivacyParameterError,
  validateDelta,
  validateStep,
  type AccountantMechanism,
  type InvalidPrivacyParameterReason,
} from "./accountant/accountant.ts";
import { createAccountant, type AccountantOptionsByMechanism } from "./accountant/registry.ts";
import { DistributedNoiseSharesSchema } from "./accountant/accountant.ts";
import type { DistributedNoiseShares } from "./accountant/analysis/distributed-discrete-gaussian.ts";
import type { Accountant } from "./accountant/accountant.ts";

/**
 * A local-mode report's L2 sensitivity in units of C: replace-one adjacency, ‖f(D) − f(D′)‖₂ ≤ 2C (as
 * `local-epsilon.ts` prices a report for the SDK).
 */
export const LOCAL_SENSITIVITY_IN_C = 2;

export const PrivacyMode = z.enum(["central", "local", "distributed"]);
export type PrivacyMode = z.infer<typeof PrivacyMode>;

export const LedgerRound = z
  .object({
    roundId: z.string().min(1).max(200),
    /** Poisson sampling rate q ∈ (0, 1]. */
    sampleRate: z.number().positive().max(1),
    /** Noise multiplier z > 0. */
    noiseMultiplier: z.number().positive().finite(),
    mode: PrivacyMode,
    /** ISO 8601 time the round was opened (supplied by the caller). */
    openedAt: z.iso.datetime({ offset: true }),
    /** `distributed` rounds only (and required there): the discrete noise shares the round is charged for. */
    distributed: DistributedNoiseSharesSchema.optional(),
  })
  .refine((r) => (r.mode === "distributed") === (r.distributed !== undefined), {
    message: "distributed (the noise shares) is required in mode distributed and only allowed there",
    path: ["distributed"],
  });
export type LedgerRound = z.infer<typeof LedgerRound>;

export const PrivacyBudget = z.object({
  epsilon: z.number().positive().finite(),
  delta: z.number().positive().lt(1),
});
export type PrivacyBudget = z.infer<typeof PrivacyBudget>;

export const LedgerState = z.object({
  version: z.literal(1),
  population: z.string().min(1).max(200),
  accountant: z.enum(["rdp", "pld"]),
  rounds: z.array(LedgerRound),
});
export type LedgerState = z.infer<typeof LedgerState>;

/**
 * Opening the round would spend more than the budget (reason `budget_exceeded`). A domain error with no HTTP status:
 * the edge answers it 409 `budget_exceeded`, the CLI exits 1.
 */
export class PrivacyBudgetExceededError extends Error {
  readonly reason = "budget_exceeded" as const;
  readonly budget: PrivacyBudget;
  readonly projectedEpsilon: number;
  readonly roundId: string;
  readonly population: string;
  constructor(population: string, roundId: string, budget: PrivacyBudget, projectedEpsilon: number) {
    super(
      `privacy budget exceeded for population "${population}": opening round "${roundId}" would spend ` +
        `ε=${projectedEpsilon.toPrecision(6)} at δ=${budget.delta}, over the budget ε=${budget.epsilon}, δ=${budget.delta}`,
    );
    this.name = "PrivacyBudgetExceededError";
    this.budget = budget;
    this.projectedEpsilon = projectedEpsilon;
    this.roundId = roundId;
    this.population = population;
  }
}

/** Options of {@link PrivacyLedger}. */
export interface PrivacyLedgerOptions<M extends AccountantMechanism = AccountantMechanism> {
  /** The training population (model name). */
  population: string;
  /**
   * Accountant used for spends.
   * @default "rdp"
   */
  accountant?: M;
  /** Options for that accountant (e.g. PLD discretisation). */
  accountantOptions?: AccountantOptionsByMechanism[M];
}

/**
 * The accountant's {@link DistributedNoiseShares} from the wire's snake_case form (the edge's `DistributedNoise` and
 * receipts' `distributed_noise`). `noise_shares` is the release threshold n_min and `corrupt_devices` (absent: 0) the
 * most colluding devices c; the charge counts the honest shares of other devices every released sum holds,
 * n_min − 1 − c: the protected device's own share is not counted, nor those the server may know
 * (`distributed/plan.ts`, docs/PRIVACY.md "Which neighbour"). `cohort: "checked-in"` (every checked-in device adds
 * a share) carries over: such a round is charged for zero-out neighbours, subsampled. Throws
 * {@link InvalidPrivacyParameterError} when none is left.
 */
export function distributedSharesOf(wire: {
  dimension: number;
  noise_shares: number;
  share_variance: number;
  sensitivity_bound: number;
  corrupt_devices?: number | undefined;
  cohort?: "sampled" | "checked-in" | undefined;
}): DistributedNoiseShares {
  const corrupt = wire.corrupt_devices ?? 0;
  const clients = wire.noise_shares - 1 - corrupt;
  if (!(Number.isSafeInteger(corrupt) && corrupt >= 0 && clients >= 1)) {
    throw new InvalidPrivacyParameterError(
      `noise_shares ${wire.noise_shares} with corrupt_devices ${corrupt} leaves no honest noise share besides the protected device's own: need noise_shares >= corrupt_devices + 2`,
    );
  }
  return {
    dimension: wire.dimension,
    clients,
    localVariance: wire.share_variance,
    sensitivityBound: wire.sensitivity_bound,
    // A checked-in cohort is charged for zero-out neighbours with amplification; a sampled one keeps its old form.
    ...(wire.cohort === "checked-in" ? { cohort: "checked-in" as const } : {}),
  };
}

/** A deep copy of a round (its noise shares included). */
function copyRound(r: LedgerRound): LedgerRound {
  return { ...r, ...(r.distributed ? { distributed: { ...r.distributed } } : {}) };
}

function parseOrThrow<T>(
  schema: z.ZodType<T>,
  value: unknown,
  what: string,
  reason: InvalidPrivacyParameterReason = "invalid_parameter",
): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new InvalidPrivacyParameterError(`invalid ${what}: ${z.prettifyError(r.error)}`, { reason });
  return r.data;
}

export class PrivacyLedger {
  readonly population: string;
  readonly accountant: AccountantMechanism;
  private readonly accountantOptions: object | undefined;
  private readonly list: LedgerRound[] = [];
  private readonly ids = new Set<string>();
  /** The live accountant holding every recorded round (its caches make a charge incremental). */
  private readonly acc: Accountant;
  /** The rounds' composition against the edge, built on first use (see {@link spentAgainstEdge}). */
  private edge: { acc: Accountant; unbounded: boolean } | null = null;

  constructor(options: PrivacyLedgerOptions) {
    const population = options?.population;
    if (typeof population !== "string" || population.length === 0 || population.length > 200) {
      throw new InvalidPrivacyParameterError("population must be a non-empty string of at most 200 characters");
    }
    const accountant = options.accountant ?? "rdp";
    if (accountant !== "rdp" && accountant !== "pld") {
      throw new InvalidPrivacyParameterError(`accountant must be "rdp" or "pld", got ${String(accountant)}`);
    }
    this.acc = createAccountant(accountant, options.accountantOptions as never); // validates the options now
    this.population = population;
    this.accountant = accountant;
    this.accountantOptions = options.accountantOptions;
  }

  /** The recorded rounds, oldest first (copies). */
  get rounds(): LedgerRound[] {
    return this.list.map(copyRound);
  }

  /** Whether a round with this id is recorded. */
  hasRound(roundId: string): boolean {
    return this.ids.has(roundId);
  }

  /** Number of recorded rounds. */
  get size(): number {
    return this.list.length;
  }

  /**
   * The accountant step a round stands for (see the module doc for the per-mode rule): central rounds are (q, z)
   * under add/remove, distributed rounds (q, their noise shares); a local round is (1, z/2), the Gaussian mechanism with the replace-one
   * sensitivity 2C of {@link localReportEpsilon}.
   */
  static stepOf(round: Pick<LedgerRound, "sampleRate" | "noiseMultiplier" | "mode" | "distributed">): {
    noiseMultiplier: number;
    sampleRate: number;
    distributed?: DistributedNoiseShares;
  } {
    if (round.mode === "local") {
      return { noiseMultiplier: round.noiseMultiplier / LOCAL_SENSITIVITY_IN_C, sampleRate: 1 };
    }
    if (round.mode === "distributed") {
      if (!round.distributed) {
        throw new InvalidPrivacyParameterError("a distributed round needs its noise shares (`distributed`)");
      }
      return { noiseMultiplier: round.noiseMultiplier, sampleRate: round.sampleRate, distributed: round.distributed };
    }
    return { noiseMultiplier: round.noiseMultiplier, sampleRate: round.sampleRate };
  }

  /**
   * The accountant step a round stands for against the edge (module header): distributed rounds at q = 1 for zero-out
   * neighbours, local rounds as {@link stepOf}; null for a central round (no bound against the edge).
   */
  static edgeStepOf(round: Pick<LedgerRound, "sampleRate" | "noiseMultiplier" | "mode" | "distributed">): {
    noiseMultiplier: number;
    sampleRate: number;
    distributed?: DistributedNoiseShares;
  } | null {
    if (round.mode === "central") return null;
    const step = PrivacyLedger.stepOf(round);
    if (!step.distributed) return step;
    return { ...step, sampleRate: 1, distributed: { ...step.distributed, adjacency: "zero-out" } };
  }

  /** ε spent so far at δ (against whoever sees only the released models). */
  spent(delta: number): number {
    validateDelta(delta);
    return this.acc.getEpsilon(delta);
  }

  /**
   * ε at δ against the edge (module header): every recorded round composed without amplification by sampling,
   * distributed rounds for zero-out neighbours; +∞ once a central round is recorded. The RDP accountant (distributed
   * rounds need it; local-only ledgers on PLD use theirs).
   */
  spentAgainstEdge(delta: number): number {
    validateDelta(delta);
    if (!this.edge) {
      let unbounded = false;
      const acc = createAccountant(this.accountant, this.accountantOptions as never);
      for (const r of this.list) {
        const step = PrivacyLedger.edgeStepOf(r);
        if (step) acc.step(step);
        else unbounded = true;
      }
      this.edge = { acc, unbounded };
    }
    return this.edge.unbounded ? Number.POSITIVE_INFINITY : this.edge.acc.getEpsilon(delta);
  }

  /** ε that would be spent at δ after also opening `nextRound` (composes only that round onto the cached history). */
  projectedSpend(nextRound: LedgerRound, delta: number): number {
    const round = this.checkRound(nextRound);
    validateDelta(delta);
    return this.acc.epsilonAfter(PrivacyLedger.stepOf(round), 1, delta);
  }

  /** Throws {@link PrivacyBudgetExceededError} if opening `round` would exceed `budget`; changes nothing. */
  assertCanOpen(round: LedgerRound, budget: PrivacyBudget): void {
    const b = parseOrThrow(PrivacyBudget, budget, "privacy budget");
    const r = this.checkRound(round);
    const projected = this.projectedSpend(r, b.delta);
    if (!(projected <= b.epsilon)) throw new PrivacyBudgetExceededError(this.population, r.roundId, b, projected);
  }

  /** Checks the budget and records the round (nothing is recorded if the check fails). Returns the projected ε. */
  open(round: LedgerRound, budget: PrivacyBudget): number {
    this.assertCanOpen(round, budget);
    this.push(this.checkRound(round));
    return this.spent(budget.delta);
  }

  /** Records a round without a budget check (e.g. replaying a log). */
  record(round: LedgerRound): void {
    this.push(this.checkRound(round));
  }

  private push(r: LedgerRound): void {
    this.acc.step(PrivacyLedger.stepOf(r));
    this.edge = null;
    this.list.push(copyRound(r));
    this.ids.add(r.roundId);
  }

  private checkRound(round: LedgerRound): LedgerRound {
    const r = parseOrThrow(LedgerRound, round, "ledger round");
    validateStep(PrivacyLedger.stepOf(r));
    if (this.ids.has(r.roundId)) {
      throw new InvalidPrivacyParameterError(`round "${r.roundId}" is already in the ledger of "${this.population}"`, {
        reason: "duplicate_round",
      });
    }
    return r;
  }

  toJSON(): LedgerState {
    return { version: 1, population: this.population, accountant: this.accountant, rounds: this.rounds };
  }

  /** Restores a ledger from {@link toJSON} output (zod-validated; duplicate round ids rejected). */
  static fromJSON(state: unknown, accountantOptions?: object): PrivacyLedger {
    const s = parseOrThrow(LedgerState, state, "ledger state", "invalid_state");
    const ledger = new PrivacyLedger({
      population: s.population,
      accountant: s.accountant,
      accountantOptions: accountantOptions as never,
    });
    for (const r of s.rounds) ledger.record(r);
    return ledger;
  }
}
