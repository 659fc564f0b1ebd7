/**
 * @module
 * A population's privacy budget and ledger as the edge keeps them: the mechanism a round is charged for when it opens,
 * the budget an admin sets, and the public account of what was spent.
 *
 * The charge of a round is one step of the Poisson-subsampled Gaussian mechanism (in mode `distributed`: of the
 * distributed discrete Gaussian, with its {@link DistributedNoise}), (q, z, mode) fed to the population's
 * accountant (`@fedge/privacy` `PrivacyLedger`): q is the round's `sampling_rate`, z the `noise_multiplier` below,
 * which already includes the share of the clipped-count noise σ_b under adaptive clipping (Andrew et al. 2021,
 * arXiv 1905.03871 §3.1 Theorem 1: z⁻² = z_Δ⁻² + (2σ_b)⁻², so the update is noised with z_Δ and the accountant is fed z).
 */
import { z } from "zod";
import { IsoDateTime, ModelName } from "../common.ts";
import { DistributedNoise, PrivacyMode } from "./task.ts";

/** Privacy modes that spend a budget (every mode but `none`). */
export const DP_PRIVACY_MODES = ["central", "local", "distributed"] as const;

/** Whether rounds of `mode` are differentially private (and so charged to the population's budget). */
export function isDpMode(mode: PrivacyMode): mode is (typeof DP_PRIVACY_MODES)[number] {
  return (DP_PRIVACY_MODES as readonly string[]).includes(mode);
}

/**
 * How the clip norm C of a round is chosen: `fixed` (set by the aggregator, no data-dependent release), or `adaptive`
 * (Andrew et al. 2021: the noised count of unclipped updates moves C, at the cost of σ_b inside z).
 */
export const ClipRule = z.enum(["fixed", "adaptive"]);
export type ClipRule = z.infer<typeof ClipRule>;

/** The mechanism a DP round is charged for (required in every mode but `none`, refused there). */
export const RoundMechanism = z
  .object({
    /**
     * z, the total noise multiplier the accountant is charged: `central` σ = z·C on the clipped sum (z_Δ·C with
     * adaptive clipping, which spends the rest on the count); `local` must equal `local_noise_multiplier`.
     */
    noise_multiplier: z.number().positive().finite(),
    clip_rule: ClipRule,
    /** σ_b, std of the noise on the centred count of unclipped updates; with `clip_rule: adaptive` only (2σ_b > z). */
    count_noise_std: z.number().positive().finite().optional(),
    /** `distributed` rounds only (and required there): the discrete noise the devices add and the charge counts. */
    distributed: DistributedNoise.optional(),
  })
  .strict()
  .refine((m) => (m.clip_rule === "adaptive") === (m.count_noise_std !== undefined), {
    message: "count_noise_std is required with clip_rule adaptive and only allowed there",
    path: ["count_noise_std"],
  })
  .refine((m) => !m.distributed || m.distributed.noise_shares >= (m.distributed.corrupt_devices ?? 0) + 2, {
    message:
      "distributed.noise_shares must be at least corrupt_devices + 2: the charge counts the honest shares besides the protected device's own",
    path: ["distributed", "noise_shares"],
  })
  .refine((m) => m.count_noise_std === undefined || 2 * m.count_noise_std > m.noise_multiplier, {
    message: "count_noise_std leaves no noise for the update: need 2·count_noise_std > noise_multiplier",
    path: ["count_noise_std"],
  })
  .meta({ id: "RoundMechanism" });
export type RoundMechanism = z.infer<typeof RoundMechanism>;

export const PrivacyAccountantName = z.enum(["rdp", "pld"]);
export type PrivacyAccountantName = z.infer<typeof PrivacyAccountantName>;

/** `PUT /v1/admin/populations/:name/privacy-budget` (admin token only). */
export const PrivacyBudgetRequest = z
  .object({
    /** ε_max: the most the population's rounds may spend, together, at δ. */
    epsilon: z.number().positive().finite(),
    delta: z.number().gt(0).lt(1),
    /** Fixed once a round was charged. @default "rdp" */
    accountant: PrivacyAccountantName.default("rdp"),
  })
  .strict()
  .meta({ id: "PrivacyBudgetRequest" });
export type PrivacyBudgetRequest = z.infer<typeof PrivacyBudgetRequest>;

/** One round in a population's ledger: what it was charged, never who took part or how many. */
export const ChargedRound = z
  .object({
    round_id: z.string(),
    /** q. */
    sampling_rate: z.number(),
    /** z (total, count share included). */
    noise_multiplier: z.number(),
    /** σ_b; null with a fixed clip norm. */
    count_noise_std: z.number().nullable(),
    /** The discrete noise a distributed round was charged for; null in the other modes. */
    distributed: DistributedNoise.nullable(),
    privacy_mode: PrivacyMode,
    clip_rule: ClipRule,
    charged_at: IsoDateTime,
  })
  .meta({ id: "ChargedRound" });
export type ChargedRound = z.infer<typeof ChargedRound>;

/** `GET /v1/populations/:name/privacy`: the population's budget and spend (public; no device counts). */
export const PopulationPrivacyStatus = z
  .object({
    model: ModelName,
    accountant: PrivacyAccountantName,
    /** null until an admin set a budget (then no DP round can open). */
    budget: z.object({ epsilon: z.number(), delta: z.number() }).nullable(),
    /** ε spent by the charged rounds at the budget's δ (0 without rounds; null without a budget). */
    epsilon_spent: z.number().nullable(),
    /** ε_max − ε spent, never below 0 (null without a budget). */
    epsilon_remaining: z.number().nullable(),
    /**
     * ε at the budget's δ against the edge itself, for a device in every charged round: the edge flips the coins and
     * sees who takes part, so no sampling amplifies (distributed rounds: zero-out neighbours at q = 1, the device's
     * own share in both sums). null without a budget, and when a central round let the edge see clipped updates (no
     * bound against the edge). `epsilon_spent` is the ε against whoever sees only the released models.
     */
    epsilon_against_edge: z.number().nullable(),
    delta: z.number().nullable(),
    /** Every charged round, oldest first (abandoned and failed rounds included: they stay charged). */
    rounds: z.array(ChargedRound),
  })
  .meta({ id: "PopulationPrivacyStatus" });
export type PopulationPrivacyStatus = z.infer<typeof PopulationPrivacyStatus>;
