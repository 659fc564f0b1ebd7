/**
 * @module
 * The aggregator's side of the edge's privacy ledger. The edge charges every DP round (q, z, σ_b, mode, clip rule) to
 * its population's budget when the round opens and is the authority on what was spent; the aggregator:
 *
 * - sends the mechanism it will aggregate with ({@link chargeOf}: z from the strategy, σ_b and the clip rule from the
 *   checkpoint's clip state, q from the config);
 * - before charging its own ledger, reads the edge's ledger and refuses a round the edge's budget cannot take
 *   ({@link assertEdgeBudgetAdmits}), so a new checkpoint directory, or none, starts from the edge's spend, never 0;
 * - before aggregating, checks that the edge charged exactly the mechanism it is about to run
 *   ({@link assertChargeMatches}), else {@link ChargeMismatchError};
 * - on resume, keeps the mechanism saved with the round in progress over the command line's
 *   ({@link pinSavedMechanism}).
 */
import type { PopulationPrivacyStatus, RoundMechanism } from "@fedge/protocol";
import { PrivacyLedger, distributedSharesOf, type DistributedNoiseShares } from "@fedge/privacy";
import { parsePopulationConfig, type PopulationConfig } from "../config.ts";
import type { RoundEngine } from "../round.ts";

/** What a round of this engine is charged on the edge (key order fixed: compared as JSON). */
export interface RoundCharge {
  privacy_mode: "central" | "local" | "distributed";
  sampling_rate: number;
  noise_multiplier: number;
  clip_rule: "fixed" | "adaptive";
  count_noise_std: number | null;
  /** Distributed mode only: the discrete noise shares the round is charged for (KLS21), as the accountant reads them. */
  distributed?: DistributedNoiseShares;
}

/**
 * The edge's record differs from what this aggregator would aggregate with (reason `charge_mismatch`). A domain error:
 * the CLI maps it to exit 1 with its reason.
 */
export class ChargeMismatchError extends Error {
  readonly reason = "charge_mismatch" as const;
  readonly roundId: string;
  readonly charged: RoundCharge | null;
  readonly expected: RoundCharge | null;
  constructor(roundId: string, charged: RoundCharge | null, expected: RoundCharge | null) {
    super(
      `the edge charged round ${roundId} for ${JSON.stringify(charged)}, this aggregator would ` +
        `aggregate it with ${JSON.stringify(expected)}; refusing to release noise other than what was charged`,
    );
    this.name = "ChargeMismatchError";
    this.roundId = roundId;
    this.charged = charged;
    this.expected = expected;
  }
}

/** The edge's budget cannot take this round (reason `budget_exceeded`); the CLI maps it to exit 1. */
export class EdgeBudgetRefusedError extends Error {
  readonly reason = "budget_exceeded" as const;
  constructor(message: string) {
    super(message);
    this.name = "EdgeBudgetRefusedError";
  }
}

/** The charge of this engine's next round (`null` for a population without DP). */
export function chargeOf(engine: RoundEngine): RoundCharge | null {
  const mode = engine.strategy.privacyMode;
  const charge = engine.strategy.privacyCharge({ round: 0, clip: engine.checkpoint.clip, length: engine.updateLength });
  if (mode === "none" || !charge) return null;
  const adaptive = engine.checkpoint.clip.adaptive;
  return {
    privacy_mode: mode,
    sampling_rate: engine.config.samplingRate,
    noise_multiplier: charge.noiseMultiplier,
    clip_rule: adaptive ? "adaptive" : "fixed",
    count_noise_std: adaptive ? adaptive.countNoiseStd : null,
    ...(charge.distributed ? { distributed: { ...charge.distributed } } : {}),
  };
}

/** The open-round request's `mechanism` for a charge. */
export function mechanismOf(charge: RoundCharge): RoundMechanism {
  return {
    noise_multiplier: charge.noise_multiplier,
    clip_rule: charge.clip_rule,
    ...(charge.count_noise_std !== null ? { count_noise_std: charge.count_noise_std } : {}),
  };
}

function chargeIn(status: PopulationPrivacyStatus, roundId: string): RoundCharge | null {
  const r = status.rounds.find((x) => x.round_id === roundId);
  if (!r) return null;
  return {
    privacy_mode: r.privacy_mode as RoundCharge["privacy_mode"],
    sampling_rate: r.sampling_rate,
    noise_multiplier: r.noise_multiplier,
    clip_rule: r.clip_rule,
    count_noise_std: r.count_noise_std,
    ...(r.distributed ? { distributed: distributedSharesOf(r.distributed) } : {}),
  };
}

/**
 * Throws `budget_exceeded` when the edge's budget cannot take round `roundId` with `charge` on top of what the edge
 * already charged (the edge's ledger, accountant and δ; the aggregator's own budget and ledger do not count here).
 */
export function assertEdgeBudgetAdmits(
  status: PopulationPrivacyStatus,
  charge: RoundCharge | null,
  roundId: string,
  openedAt: string,
): void {
  const model = status.model;
  if (!charge) {
    if (status.budget)
      throw new EdgeBudgetRefusedError(
        `population "${model}" has a privacy budget on the edge; a round without DP would spend an unbounded ε`,
      );
    return;
  }
  if (!status.budget) {
    throw new EdgeBudgetRefusedError(
      `the edge has no privacy budget for population "${model}": an admin sets one (PUT /v1/admin/populations/${model}/privacy-budget) before any DP round opens`,
    );
  }
  const ledger = new PrivacyLedger({ population: model, accountant: status.accountant });
  for (const r of status.rounds) {
    ledger.record({
      roundId: r.round_id,
      sampleRate: r.sampling_rate,
      noiseMultiplier: r.noise_multiplier,
      mode: r.privacy_mode as "central" | "local" | "distributed",
      openedAt: r.charged_at,
      // a distributed round on the edge is charged its discrete noise (KLS21): replay it with its shares
      ...(r.distributed ? { distributed: distributedSharesOf(r.distributed) } : {}),
    });
  }
  // Throws PrivacyBudgetExceededError (code budget_exceeded), naming the edge's budget and the projected ε.
  ledger.assertCanOpen(
    {
      roundId,
      sampleRate: charge.sampling_rate,
      noiseMultiplier: charge.noise_multiplier,
      mode: charge.privacy_mode,
      openedAt,
      ...(charge.distributed ? { distributed: charge.distributed } : {}),
    },
    status.budget,
  );
}

/** Throws {@link ChargeMismatchError} unless the edge charged round `roundId` exactly `expected` (or nothing for none). */
export function assertChargeMatches(
  status: PopulationPrivacyStatus,
  expected: RoundCharge | null,
  roundId: string,
): void {
  const charged = chargeIn(status, roundId);
  if (JSON.stringify(charged) !== JSON.stringify(expected)) throw new ChargeMismatchError(roundId, charged, expected);
}

/** The config fields that make up a round's charge. */
const MECHANISM_FIELDS = ["privacy", "samplingRate", "expectedClients", "clipping"] as const;

/**
 * On resume of a round in progress, the mechanism saved with it wins over flags and `--config`: the round was charged
 * for it. Differences are logged; the rest of `config` (client task, optimizer, gate) is taken as given.
 */
export function pinSavedMechanism(
  config: PopulationConfig,
  saved: Record<string, unknown>,
  log: (line: string) => void,
): PopulationConfig {
  const savedConfig = parsePopulationConfig(saved);
  const merged: Record<string, unknown> = { ...config };
  for (const field of MECHANISM_FIELDS) {
    const keep = JSON.stringify(savedConfig[field]);
    if (JSON.stringify(config[field]) !== keep) {
      log(`resuming a charged round: keeping the saved ${field} ${keep} (given: ${JSON.stringify(config[field])})`);
    }
    merged[field] = savedConfig[field];
  }
  return parsePopulationConfig(merged);
}
