/**
 * @module
 * The round task a selected device receives at check-in.
 */
import { z } from "zod";
import { Base64Url, IsoDateTime, ModelName, ModelVersion } from "../common.ts";

/**
 * - `central`: devices clip; the aggregator adds Gaussian noise to the clipped sum (DP-FedAvg, McMahan et al. 2018, arXiv 1710.06963).
 * - `local`: devices clip and add Gaussian noise σ = z·C before upload; the server is not trusted.
 * - `distributed`: secure aggregation with discrete Gaussian noise (Kairouz, Liu, Steinke 2021, arXiv 2102.06387).
 * - `none`: no differential privacy at all (plain FedAvg); devices send their raw Δ. The SDK refuses such tasks unless
 *   the app's privacy policy lists `none`.
 */
export const PrivacyMode = z.enum(["central", "local", "distributed", "none"]);
export type PrivacyMode = z.infer<typeof PrivacyMode>;

/** Which parameters a device trains and uploads: every layer, or only the last layer (head-only fine-tuning). */
export const TrainableScope = z.enum(["all", "head"]);
export type TrainableScope = z.infer<typeof TrainableScope>;

/**
 * The population's differential-privacy guarantee as the aggregator's ledger accounts it (user-level (ε, δ), the
 * accountant of the population): `epsilon` is what the ledger has charged including this round, `planned_epsilon` the
 * budget the ledger will never exceed (rounds over it are refused before any device sees them). A device's privacy
 * policy compares `planned_epsilon` (else `epsilon`) with its maximum. This is the aggregator's statement, relayed by the
 * edge; it is not a proof.
 */
export const PopulationPrivacy = z
  .object({
    epsilon: z.number().nonnegative().finite(),
    planned_epsilon: z.number().positive().finite().optional(),
    delta: z.number().gt(0).lt(1),
  })
  .strict()
  .refine((p) => p.planned_epsilon === undefined || p.epsilon <= p.planned_epsilon, {
    message: "epsilon (charged) must be ≤ planned_epsilon (the budget)",
    path: ["epsilon"],
  })
  .meta({ id: "PopulationPrivacy" });
export type PopulationPrivacy = z.infer<typeof PopulationPrivacy>;

/**
 * The distributed discrete Gaussian a `distributed` round runs (Kairouz, Liu, Steinke 2021, arXiv 2102.06387; built by
 * `@fedge/privacy` `planDistributedDiscreteGaussian`), in grid units: what devices must run and what the round is
 * charged. Each device rotates its clipped update (padded to `dimension`), scales it by `scale`, rounds it until
 * ‖k‖₂² ≤ `sensitivity_bound`, adds N_Z(0, `share_variance`) per coordinate and reduces mod 2^`bits`. Secure
 * aggregation releases a sum of at least `noise_shares` inputs; the charge counts `noise_shares − 1 − corrupt_devices`
 * shares: not the protected device's own, nor those of devices that may collude with the server.
 */
export const DistributedNoise = z
  .object({
    /** b: devices' values and the sum are in Z_{2^b}. */
    bits: z.number().int().min(2).max(32),
    /** γ > 0: grid steps per unit of the update. */
    scale: z.number().positive().finite(),
    /** d': the update length padded to a power of two (the rotation's size). */
    dimension: z
      .number()
      .int()
      .positive()
      .max(2 ** 23)
      .refine((d) => (d & (d - 1)) === 0, "dimension must be a power of two"),
    /** n_min: the fewest inputs (each with its noise share) a released sum holds. */
    noise_shares: z.number().int().min(1).max(1_000_000),
    /**
     * c: the most devices of the round that may collude with the server (their shares protect no one). Absent: 0.
     * The charge needs noise_shares ≥ c + 2 (checked where the mechanism is validated).
     */
    corrupt_devices: z.number().int().min(1).max(1_000_000).optional(),
    /** σ_l²: each device's discrete Gaussian variance, ≥ 1/4 (KLS21 Thm. 1). */
    share_variance: z.number().min(0.25).finite(),
    /**
     * Who adds a noise share. Absent or `sampled`: only the devices the coin selects join the secure aggregation, so
     * a device's share leaves the sum with it and the round is charged for add/remove neighbours (the variance
     * changes too). `checked-in`: every device that checks in joins it and adds its share; the coin only decides
     * whether its update goes in, a device left out by the coin inputs a zero update and its share (`noise-only`
     * check-ins). The share is then in both neighbouring sums and the round is charged for zero-out neighbours with
     * amplification by sampling (Kairouz, McMahan, Song, Thakkar, Thakurta, Xu 2021, arXiv 2103.00039 §2), against
     * a party that does not see the coins. Devices of older SDKs, which know no `cohort`, refuse such a task.
     */
    cohort: z.enum(["sampled", "checked-in"]).optional(),
    /** B: the enforced bound on a device's rounded ‖k‖₂² (its L2 sensitivity is √B grid units). */
    sensitivity_bound: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  })
  .strict()
  .meta({ id: "DistributedNoise" });
export type DistributedNoise = z.infer<typeof DistributedNoise>;

/** A round's public rotation seed: base64url of 32 random bytes (43 characters), the same for every device. */
export const RotationSeed = Base64Url.length(43);

/** What a device of a `distributed` round runs: the noise of the round's mechanism and the round's rotation seed. */
export const DistributedTask = DistributedNoise.extend({ rotation_seed: RotationSeed })
  .strict()
  .meta({ id: "DistributedTask" });
export type DistributedTask = z.infer<typeof DistributedTask>;

/**
 * Largest d' of a distributed round: 2^18 values. A masked input (d' words in base64url JSON, 1.4 MB at this size) is
 * one row of the round's Durable Object log, and a row holds at most 2 MB.
 */
export const SECAGG_MAX_ENCODED_LENGTH = 1 << 18;

/**
 * A `distributed` round's secure aggregation: each device encodes its clipped update to `encoded_length` (d') values in
 * Z_{2^modulus_bits} and takes part in SecAgg+ (`/v1/rounds/{id}/secagg/…`); the edge learns only the modular sum. The
 * round's open request keeps it equal to its noise's ring: `modulus_bits` = `DistributedNoise.bits` and
 * `encoded_length` = `DistributedNoise.dimension`.
 */
/** Seconds a secure-aggregation stage after `advertise` stays open when the round does not say. */
export const DEFAULT_SECAGG_STAGE_S = 60;

const stageSeconds = z.number().int().min(1).max(3600);

/**
 * How long each secure-aggregation stage after `advertise` stays open, in seconds (each @default
 * `DEFAULT_SECAGG_STAGE_S`). The advertise stage ends with the round's collecting deadline; each later stage ends this
 * long after the one before it, so every deadline is fixed when the round opens.
 */
export const SecAggStageSeconds = z
  .object({
    "share-keys": stageSeconds.optional(),
    "masked-input": stageSeconds.optional(),
    consistency: stageSeconds.optional(),
    unmask: stageSeconds.optional(),
  })
  .strict()
  .meta({ id: "SecAggStageSeconds" });
export type SecAggStageSeconds = z.infer<typeof SecAggStageSeconds>;

export const SecureAggregationParams = z
  .object({
    /** b: the encoded values and their sum live in Z_{2^b}. */
    modulus_bits: z.number().int().min(1).max(32),
    /** d': values per encoded update (at most `SECAGG_MAX_ENCODED_LENGTH`). */
    encoded_length: z.number().int().positive().max(SECAGG_MAX_ENCODED_LENGTH),
    /** How long the stages after `advertise` last. @default DEFAULT_SECAGG_STAGE_S each */
    stage_s: SecAggStageSeconds.optional(),
    /**
     * n_max: the most devices the round's secure aggregation takes (the modulus is planned for at most this many
     * inputs, `planDistributedDiscreteGaussian`'s maxClients). In a `checked-in` cohort every check-in joins, so a
     * check-in past it is refused (409 `round_full`) and recorded nowhere. @default SECAGG_MAX_DEVICES
     */
    max_devices: z.number().int().min(3).max(65_535).optional(), // SECAGG_MAX_DEVICES (secagg.ts imports this module)
  })
  .strict()
  .meta({ id: "SecureAggregationParams" });
export type SecureAggregationParams = z.infer<typeof SecureAggregationParams>;

/**
 * When each secure-aggregation stage closes (ISO 8601), in stage order. The edge's `SecAggRound` closes a stage at its
 * deadline (or earlier, once every device still in the round answered) and refuses a later message to it with 409
 * `stage_closed`.
 */
export const SecAggStageDeadlines = z
  .object({
    advertise: IsoDateTime,
    "share-keys": IsoDateTime,
    "masked-input": IsoDateTime,
    consistency: IsoDateTime,
    unmask: IsoDateTime,
  })
  .strict()
  .meta({ id: "SecAggStageDeadlines" });
export type SecAggStageDeadlines = z.infer<typeof SecAggStageDeadlines>;

/** What a device of a `distributed` round is told of its secure aggregation: the ring and each stage's deadline. */
export const SecureAggregationTask = z
  .object({
    modulus_bits: SecureAggregationParams.shape.modulus_bits,
    encoded_length: SecureAggregationParams.shape.encoded_length,
    stage_deadlines: SecAggStageDeadlines,
  })
  .strict()
  .meta({ id: "SecureAggregationTask" });
export type SecureAggregationTask = z.infer<typeof SecureAggregationTask>;

/** The stages a device answers, in order; each is `POST /v1/rounds/{id}/secagg/{stage}` and closes at its own deadline. */
export const SECAGG_DEVICE_STAGES = ["advertise", "share-keys", "masked-input", "consistency", "unmask"] as const;

/**
 * Each stage's deadline in ms since the epoch, in `SECAGG_DEVICE_STAGES`: advertise closes with the round's collecting
 * deadline `collectDeadlineMs`, each later stage `stage_s` seconds after the one before.
 */
export function secAggStageDeadlinesMs(params: SecureAggregationParams, collectDeadlineMs: number): number[] {
  const out = [collectDeadlineMs];
  for (const stage of ["share-keys", "masked-input", "consistency", "unmask"] as const) {
    out.push(out[out.length - 1]! + (params.stage_s?.[stage] ?? DEFAULT_SECAGG_STAGE_S) * 1000);
  }
  return out;
}

/** The task's view of a round's secure aggregation, its stage deadlines fixed by the collecting deadline. */
export function secureAggregationTaskFor(
  params: SecureAggregationParams,
  collectDeadlineMs: number,
): SecureAggregationTask {
  const at = secAggStageDeadlinesMs(params, collectDeadlineMs).map((ms) => new Date(ms).toISOString());
  return {
    modulus_bits: params.modulus_bits,
    encoded_length: params.encoded_length,
    stage_deadlines: {
      advertise: at[0]!,
      "share-keys": at[1]!,
      "masked-input": at[2]!,
      consistency: at[3]!,
      unmask: at[4]!,
    },
  };
}

/** The secure aggregation a distributed round's noise runs in: the same ring Z_{2^bits}, d' = the padded dimension. */
export function secureAggregationFor(
  noise: Pick<DistributedNoise, "bits" | "dimension">,
  stageSeconds?: SecAggStageSeconds,
): SecureAggregationParams {
  return {
    modulus_bits: noise.bits,
    encoded_length: noise.dimension,
    ...(stageSeconds !== undefined ? { stage_s: stageSeconds } : {}),
  };
}

export const RoundTask = z
  .object({
    round_id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
    model: ModelName,
    model_version: ModelVersion,
    /** L2 norm the device clips Δ to. Absent only in `none` mode (then Δ is sent unclipped). */
    clip_norm: z.number().positive().finite().optional(),
    learning_rate: z.number().positive().finite(),
    local_epochs: z.number().int().min(1).max(100),
    batch_size: z.number().int().min(1).max(4096),
    privacy_mode: PrivacyMode,
    /** Local mode only: the device adds N(0, (z·C)²) per coordinate; z > 0. */
    local_noise_multiplier: z.number().positive().finite().optional(),
    /**
     * Central mode with adaptive clipping only: the device reports b = 1[‖Δ‖ ≤ C], computed before clipping, in the
     * update's clip-bit field (update codec version 2). Absent or false: the field is 0 (not reported).
     */
    report_clip_bit: z.boolean().optional(),
    /** Distributed mode only: the discrete noise to add and the round's rotation seed. */
    distributed: DistributedTask.optional(),
    /** Distributed mode only: the secure aggregation the device takes part in instead of uploading, with its stages' deadlines. */
    secure_aggregation: SecureAggregationTask.optional(),
    /** The population's (ε, δ) (central and local modes), for the device's privacy policy. */
    population_privacy: PopulationPrivacy.optional(),
    trainable: TrainableScope,
    /** Number of float values in the update (length of the flattened trainable parameters). */
    update_length: z.number().int().positive(),
    /** Payload dtype the edge accepts for this round (`application/vnd.fedge.update` dtype); absent means `float32`. */
    update_dtype: z.enum(["float32", "int8"]).optional(),
    /** Single-use, issued to this device for this round (base64url of 16 random bytes). */
    nonce: Base64Url,
    deadline: IsoDateTime,
  })
  .meta({ id: "RoundTask" });
export type RoundTask = z.infer<typeof RoundTask>;
