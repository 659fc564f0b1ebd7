/**
 * @module
 * The population's budget rules, as pure functions of the rows the RoundCoordinator read (no storage, no clock): what
 * opening a round charges, whether the budget admits it, whether an admin may set or change the budget, and the public
 * account of the spend. The accounting itself is the shared `PrivacyLedger` of `@fedge/privacy` (RDP or PLD, the same
 * code the aggregator and `fedge privacy` run), fed one step per charged round.
 *
 * Rules:
 * - a DP round (`central`, `local`, `distributed`) is charged (q, z, mode) plus its σ_b and clip rule (and, in mode
 *   `distributed`, the discrete noise its devices add: the ledger charges it for add/remove neighbours) when it opens,
 *   and refused (409 `budget_exceeded`) when the population has no budget or the ledger's ε after the charge would
 *   pass ε_max at the budget's δ;
 * - a round in mode `none` spends an unbounded ε: refused once the population has a budget, uncharged otherwise;
 * - charges are never taken back: a round closed early, abandoned, or never aggregated stays charged (its devices saw
 *   the task and may have reported);
 * - an admin sets the budget on a population whose every round was charged (so the guarantee covers its whole
 *   history), and may raise or lower ε_max or δ later; the accountant is fixed once a round was charged.
 */
import {
  isDpMode,
  type CheckinReceiptBody,
  type ChargedRound,
  type DistributedNoise,
  type DeviceCheckedInRound,
  type DeviceDistributedNoise,
  type PopulationPrivacyStatus,
  type PrivacyBudgetRequest,
  type RoundParams,
} from "@fedge/protocol";
import { PrivacyLedger, distributedSharesOf } from "@fedge/privacy";
import { fail, type Result } from "../../training/result.ts";

/** The population's budget (`privacy_budget`, one row). */
export type BudgetRow = {
  epsilon: number;
  delta: number;
  accountant: "rdp" | "pld";
  set_at: number;
};

/** One charged round (`privacy_charges`). */
export type ChargeRow = {
  round_seq: number;
  round_id: string;
  sampling_rate: number;
  noise_multiplier: number;
  count_noise_std: number | null;
  privacy_mode: "central" | "local" | "distributed";
  clip_rule: "fixed" | "adaptive";
  /** Mode `distributed`: the round's `DistributedNoise` as JSON text; null otherwise. */
  distributed_noise: string | null;
  charged_at: number;
};

/** The discrete noise of a charged distributed round (null in the other modes). */
export function distributedNoiseOf(c: Pick<ChargeRow, "distributed_noise">): DistributedNoise | null {
  return c.distributed_noise === null ? null : (JSON.parse(c.distributed_noise) as DistributedNoise);
}

const iso = (ms: number) => new Date(ms).toISOString();

/** The population's ledger: every charged round, one accountant step each (see `@fedge/privacy` ledger.ts). */
export function ledgerOf(model: string, accountant: BudgetRow["accountant"], charges: readonly ChargeRow[]) {
  const ledger = new PrivacyLedger({ population: model, accountant });
  for (const c of charges) ledger.record(ledgerRound(c));
  return ledger;
}

function ledgerRound(c: ChargeRow) {
  const noise = distributedNoiseOf(c);
  return {
    roundId: c.round_id,
    sampleRate: c.sampling_rate,
    noiseMultiplier: c.noise_multiplier,
    mode: c.privacy_mode,
    openedAt: iso(c.charged_at),
    ...(noise ? { distributed: distributedSharesOf(noise) } : {}),
  };
}

/** What opening round `roundId` with `params` would charge; null in mode `none` (nothing to charge). */
export function chargeOf(roundSeq: number, roundId: string, params: RoundParams, now: number): ChargeRow | null {
  const mode = params.privacy_mode;
  if (!isDpMode(mode)) return null;
  const m = params.mechanism!;
  return {
    round_seq: roundSeq,
    round_id: roundId,
    sampling_rate: params.sampling_rate,
    noise_multiplier: m.noise_multiplier,
    count_noise_std: m.count_noise_std ?? null,
    privacy_mode: mode,
    clip_rule: m.clip_rule,
    distributed_noise: m.distributed ? JSON.stringify(m.distributed) : null,
    charged_at: now,
  };
}

/**
 * Whether the budget admits opening round `roundId` with `params`: the charge to record (null for a round in mode
 * `none` of a population without a budget), or 409 `budget_exceeded` (400 for a DP round without its mechanism).
 */
export function chargeVerdict(input: {
  model: string;
  roundSeq: number;
  roundId: string;
  params: RoundParams;
  budget: BudgetRow | null;
  charges: readonly ChargeRow[];
  now: number;
}): Result<{ charge: ChargeRow | null; epsilon: number | null }> {
  const { model, roundSeq, roundId, params, budget, charges, now } = input;
  const mode = params.privacy_mode;
  if (!isDpMode(mode)) {
    if (budget) {
      return fail(
        "budget_exceeded",
        409,
        `population "${model}" has a privacy budget (ε=${budget.epsilon}, δ=${budget.delta}): a round in privacy mode ${mode} releases un-noised updates and would spend an unbounded ε`,
      );
    }
    return { ok: true, charge: null, epsilon: null };
  }
  if (!params.mechanism) {
    return fail("validation_failed", 400, `mechanism: required in privacy mode ${mode} (the round's charge)`);
  }
  if (!budget) {
    return fail(
      "budget_exceeded",
      409,
      `population "${model}" has no privacy budget: an admin sets one (PUT /v1/admin/populations/${model}/privacy-budget) before any DP round opens`,
    );
  }
  if (mode === "distributed" && budget.accountant !== "rdp") {
    return fail(
      "validation_failed",
      400,
      `population "${model}" accounts with ${budget.accountant}, which has no analysis of the distributed discrete Gaussian: a distributed round needs the rdp accountant`,
    );
  }
  const charge = chargeOf(roundSeq, roundId, params, now)!;
  const projected = ledgerOf(model, budget.accountant, charges).projectedSpend(ledgerRound(charge), budget.delta);
  if (!(projected <= budget.epsilon)) {
    return fail(
      "budget_exceeded",
      409,
      `privacy budget exceeded for population "${model}": opening round "${roundId}" (q=${charge.sampling_rate}, ` +
        `z=${charge.noise_multiplier}, ${mode}) would spend ε=${projected.toPrecision(6)} at δ=${budget.delta} ` +
        `(${budget.accountant}), over the budget ε=${budget.epsilon}`,
    );
  }
  return { ok: true, charge, epsilon: projected };
}

/**
 * Whether an admin may set `request` as the population's budget: not while some of its rounds were never charged
 * (no guarantee can cover them), and not with another accountant once rounds were charged.
 */
export function budgetChangeVerdict(input: {
  model: string;
  budget: BudgetRow | null;
  charges: readonly ChargeRow[];
  unchargedRounds: number;
  request: PrivacyBudgetRequest;
}): Result<object> {
  const { model, budget, charges, unchargedRounds, request } = input;
  if (unchargedRounds > 0) {
    return fail(
      "conflict",
      409,
      `population "${model}" already ran ${unchargedRounds} round(s) that no budget charged (privacy mode none, or opened before the edge kept ledgers): no (ε, δ) can cover them; train a new population`,
    );
  }
  if (budget && charges.length > 0 && budget.accountant !== request.accountant) {
    return fail(
      "conflict",
      409,
      `population "${model}" has ${charges.length} charged round(s) accounted with ${budget.accountant}; its accountant cannot change`,
    );
  }
  return { ok: true };
}

/**
 * The public account of the population's spend: budget, ε spent and left at δ, the ε against the edge itself
 * (`againstEdge`, +∞ for no bound, answered as null), and every charged round.
 */
export function privacyStatus(
  model: string,
  budget: BudgetRow | null,
  charges: readonly ChargeRow[],
  spent: (b: BudgetRow) => number,
  againstEdge: (b: BudgetRow) => number = (b) => ledgerOf(model, b.accountant, charges).spentAgainstEdge(b.delta),
): PopulationPrivacyStatus {
  const rounds: ChargedRound[] = charges.map((c) => ({
    round_id: c.round_id,
    sampling_rate: c.sampling_rate,
    noise_multiplier: c.noise_multiplier,
    count_noise_std: c.count_noise_std,
    distributed: distributedNoiseOf(c),
    privacy_mode: c.privacy_mode,
    clip_rule: c.clip_rule,
    charged_at: iso(c.charged_at),
  }));
  if (!budget) {
    return {
      model,
      accountant: "rdp",
      budget: null,
      epsilon_spent: null,
      epsilon_remaining: null,
      epsilon_against_edge: null,
      delta: null,
      rounds,
    };
  }
  const epsilon = spent(budget);
  return {
    model,
    accountant: budget.accountant,
    budget: { epsilon: budget.epsilon, delta: budget.delta },
    epsilon_spent: epsilon,
    epsilon_remaining: Math.max(0, budget.epsilon - epsilon),
    epsilon_against_edge: finiteOrNull(againstEdge(budget)),
    delta: budget.delta,
    rounds,
  };
}

/**
 * What the edge signs for a device's check-in of a charged round (see @fedge/protocol `receipt.ts`): the round's
 * charge, the budget's δ and the time of the device's first check-in (so a repeated check-in gets the same receipt).
 */
export function checkinReceiptOf(
  model: string,
  deviceId: string,
  charge: ChargeRow,
  budget: Pick<BudgetRow, "delta">,
  checkedInAt: number,
): CheckinReceiptBody {
  const noise = distributedNoiseOf(charge);
  return {
    model,
    round_id: charge.round_id,
    device_id: deviceId,
    sampling_rate: charge.sampling_rate,
    noise_multiplier: charge.noise_multiplier,
    count_noise_std: charge.count_noise_std,
    privacy_mode: charge.privacy_mode,
    clip_rule: charge.clip_rule,
    delta: budget.delta,
    checked_in_at: iso(checkedInAt),
    ...(noise
      ? {
          distributed_noise: {
            dimension: noise.dimension,
            noise_shares: noise.noise_shares,
            share_variance: noise.share_variance,
            sensitivity_bound: noise.sensitivity_bound,
            ...(noise.corrupt_devices !== undefined ? { corrupt_devices: noise.corrupt_devices } : {}),
            // Signed: a receipt without it would be charged as a sampled cohort (add/remove), one with it zero-out.
            ...(noise.cohort !== undefined ? { cohort: noise.cohort } : {}),
          },
        }
      : {}),
  };
}

/**
 * One charged round a device checked in for, as `GET /v1/devices/:id/privacy` lists it; `selected`: whether its coin
 * put its update in.
 */
export function checkedInRound(charge: ChargeRow, checkedInAt: number, selected: boolean): DeviceCheckedInRound {
  return {
    round_id: charge.round_id,
    checked_in_at: iso(checkedInAt),
    sampling_rate: charge.sampling_rate,
    noise_multiplier: charge.noise_multiplier,
    count_noise_std: charge.count_noise_std,
    privacy_mode: charge.privacy_mode,
    clip_rule: charge.clip_rule,
    distributed: deviceNoiseOf(distributedNoiseOf(charge)),
    update_included: selected,
  };
}

/**
 * The noise that protected a device in a distributed round: the charged shares (`distributedSharesOf`: the release
 * threshold less the device's own share and the colluding devices') and the standard deviation of their sum per
 * coordinate, in the update's units (√(g·σ_l²)/γ).
 */
function deviceNoiseOf(noise: DistributedNoise | null): DeviceDistributedNoise | null {
  if (!noise) return null;
  const guaranteed = distributedSharesOf(noise).clients;
  return {
    ...noise,
    guaranteed_shares: guaranteed,
    guaranteed_noise_std: Math.sqrt(guaranteed * noise.share_variance) / noise.scale,
  };
}

/** A bound for the wire: +∞ (no bound) is answered as null. */
function finiteOrNull(epsilon: number): number | null {
  return Number.isFinite(epsilon) ? epsilon : null;
}

/**
 * ε at the budget's δ against the edge of the rounds whose coin put a device's update in (`selected`; PrivacyLedger
 * `spentAgainstEdge`: no amplification by sampling, distributed rounds for zero-out neighbours); null without a
 * budget or when one of them was central (no bound against the edge). The edge flips the coins, so a round whose coin
 * left the device out (not sampled, or a `noise-only` input of a checked-in cohort: a zero update and its share) is
 * independent of the device's data for it and adds nothing.
 */
export function deviceEpsilonAgainstEdge(
  model: string,
  charges: readonly (ChargeRow & { selected: number })[],
  budget: Pick<BudgetRow, "delta"> | null,
): number | null {
  if (!budget) return null;
  const included = charges.filter((c) => c.selected === 1);
  if (included.length === 0) return 0;
  return finiteOrNull(ledgerOf(model, "rdp", included).spentAgainstEdge(budget.delta));
}

/**
 * ε at the budget's δ of exactly the rounds a device checked in for, by the RDP accountant (what the device's SDK
 * computes from its receipts, `client.privacy()`); null without a budget.
 */
export function deviceEpsilon(
  model: string,
  charges: readonly ChargeRow[],
  budget: Pick<BudgetRow, "delta"> | null,
): number | null {
  if (!budget) return null;
  if (charges.length === 0) return 0;
  return ledgerOf(model, "rdp", charges).spent(budget.delta);
}
