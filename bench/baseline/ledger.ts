/**
 * @module
 * BENCHMARK BASELINE ONLY: ledger.ts (PrivacyLedger) as it was before the PLD/ledger speed-up (privacy-math branch), kept verbatim
 * (imports aside) so `npm run bench` can time today's algorithm against the new one in the same run. Not used by the
 * library.
 *
 * The privacy ledger of one training population: every opened round with its (q, z, mode), the composed spend, and a
 * refusal to open a round that would exceed the budget. Pure (no I/O, no clock): the aggregator passes `openedAt`,
 * and checkpoints the ledger with {@link PrivacyLedger.toJSON} / {@link PrivacyLedger.fromJSON}.
 *
 * How rounds are accounted, per privacy mode (see docs/DESIGN.md "Privacy modes"):
 * - `central`: one step of the Poisson-subsampled Gaussian mechanism with rate q and noise multiplier z (DP-FedAvg,
 *   McMahan et al. 2018, arXiv 1710.06963): user-level (ε, δ) against everyone who sees the published models.
 * - `local`: every device adds N(0, (z·C)²) to its own clipped report, so each report is its own Gaussian mechanism
 *   with noise multiplier z, seen by the server directly. Subsampling does not amplify here (the server knows who
 *   reported), so a local round is one step with q = 1 for every device that could participate; the ledger composes
 *   these steps per device over all local rounds, i.e. for the worst-case device that participated in every one of
 *   them. The spend is the guarantee each device has against the server.
 * - `distributed`: secure aggregation with per-client discrete Gaussian noise whose sum has noise multiplier z;
 *   accounted like `central` (q, z). This treats the summed discrete Gaussian as a continuous one, a close
 *   approximation (Kairouz, Liu, Steinke 2021, arXiv 2102.06387 quantify the gap; exact accounting is future work).
 * All rounds compose into one device-level (ε, δ), whatever the mix of modes.
 */
import { FedgeError } from "@fedge/protocol";
import { z } from "zod";
import {
  InvalidPrivacyParameterError,
  validateDelta,
  validateStep,
  type AccountantMechanism,
  type AccountantOptionsByMechanism,
  type Accountant,
} from "@fedge/privacy";
import { BaselinePldAccountant } from "./pld-accountant.ts";
import { BaselineRdpAccountant } from "./rdp-accountant.ts";

function createAccountant(mechanism: AccountantMechanism, options?: object): Accountant {
  return mechanism === "pld" ? new BaselinePldAccountant(options) : new BaselineRdpAccountant(options);
}

export const PrivacyMode = z.enum(["central", "local", "distributed"]);
export type PrivacyMode = z.infer<typeof PrivacyMode>;

export const LedgerRound = z.object({
  roundId: z.string().min(1).max(200),
  /** Poisson sampling rate q ∈ (0, 1]. */
  sampleRate: z.number().positive().max(1),
  /** Noise multiplier z > 0. */
  noiseMultiplier: z.number().positive().finite(),
  mode: PrivacyMode,
  /** ISO 8601 time the round was opened (supplied by the caller). */
  openedAt: z.iso.datetime({ offset: true }),
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

/** Opening the round would spend more than the budget: code `budget_exceeded`, HTTP 403. */
class PrivacyBudgetExceededError extends FedgeError {
  readonly budget: PrivacyBudget;
  readonly projectedEpsilon: number;
  readonly roundId: string;
  readonly population: string;
  constructor(population: string, roundId: string, budget: PrivacyBudget, projectedEpsilon: number) {
    super(
      "budget_exceeded",
      403,
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

function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new InvalidPrivacyParameterError(`invalid ${what}: ${z.prettifyError(r.error)}`);
  return r.data;
}

export class BaselinePrivacyLedger {
  readonly population: string;
  readonly accountant: AccountantMechanism;
  private readonly accountantOptions: object | undefined;
  private readonly list: LedgerRound[] = [];

  constructor(options: PrivacyLedgerOptions) {
    const population = options?.population;
    if (typeof population !== "string" || population.length === 0 || population.length > 200) {
      throw new InvalidPrivacyParameterError("population must be a non-empty string of at most 200 characters");
    }
    const accountant = options.accountant ?? "rdp";
    if (accountant !== "rdp" && accountant !== "pld") {
      throw new InvalidPrivacyParameterError(`accountant must be "rdp" or "pld", got ${String(accountant)}`);
    }
    createAccountant(accountant, options.accountantOptions as never); // validates the options now
    this.population = population;
    this.accountant = accountant;
    this.accountantOptions = options.accountantOptions;
  }

  /** The recorded rounds, oldest first (copies). */
  get rounds(): LedgerRound[] {
    return this.list.map((r) => ({ ...r }));
  }

  /** The accountant step a round stands for (see the module doc for the per-mode rule). */
  static stepOf(round: Pick<LedgerRound, "sampleRate" | "noiseMultiplier" | "mode">) {
    return {
      noiseMultiplier: round.noiseMultiplier,
      sampleRate: round.mode === "local" ? 1 : round.sampleRate,
    };
  }

  private epsilonOf(rounds: readonly LedgerRound[], delta: number): number {
    validateDelta(delta);
    const acc = createAccountant(this.accountant, this.accountantOptions as never);
    for (const r of rounds) acc.step(BaselinePrivacyLedger.stepOf(r));
    return acc.getEpsilon(delta);
  }

  /** ε spent so far at δ. */
  spent(delta: number): number {
    return this.epsilonOf(this.list, delta);
  }

  /** ε that would be spent at δ after also opening `nextRound`. */
  projectedSpend(nextRound: LedgerRound, delta: number): number {
    const round = this.checkRound(nextRound);
    return this.epsilonOf([...this.list, round], delta);
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
    const r = this.checkRound(round);
    this.list.push({ ...r });
    return this.spent(budget.delta);
  }

  /** Records a round without a budget check (e.g. replaying a log). */
  record(round: LedgerRound): void {
    this.list.push({ ...this.checkRound(round) });
  }

  private checkRound(round: LedgerRound): LedgerRound {
    const r = parseOrThrow(LedgerRound, round, "ledger round");
    validateStep(BaselinePrivacyLedger.stepOf(r));
    if (this.list.some((x) => x.roundId === r.roundId)) {
      throw new InvalidPrivacyParameterError(`round "${r.roundId}" is already in the ledger of "${this.population}"`);
    }
    return r;
  }

  toJSON(): LedgerState {
    return { version: 1, population: this.population, accountant: this.accountant, rounds: this.rounds };
  }

  /** Restores a ledger from {@link toJSON} output (zod-validated; duplicate round ids rejected). */
  static fromJSON(state: unknown, accountantOptions?: object): BaselinePrivacyLedger {
    const s = parseOrThrow(LedgerState, state, "ledger state");
    const ledger = new BaselinePrivacyLedger({
      population: s.population,
      accountant: s.accountant,
      accountantOptions: accountantOptions as never,
    });
    for (const r of s.rounds) ledger.record(r);
    return ledger;
  }
}
