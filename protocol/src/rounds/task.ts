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

export const RoundTask = z
  .object({
    round_id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
    model: ModelName,
    model_version: ModelVersion,
    clip_norm: z.number().positive().finite(),
    learning_rate: z.number().positive().finite(),
    local_epochs: z.number().int().min(1).max(100),
    batch_size: z.number().int().min(1).max(4096),
    privacy_mode: PrivacyMode,
    /** Local mode only: the device adds N(0, (z·C)²) per coordinate. */
    local_noise_multiplier: z.number().nonnegative().finite().optional(),
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
