/**
 * @module
 * The aggregator's side of a round: opening it with its task parameters, reading its status, closing it, listing and
 * streaming its accepted updates, and marking it aggregated / linking the published model version.
 *
 * Round ids are `<model>_<seq>` (`roundIdFor`): the model name picks the population's RoundCoordinator, so an upload to
 * `/v1/rounds/:id/updates` needs nothing but the id to find its round. They fit the update codec's 64-character limit
 * because training populations are named with at most `TRAINING_MODEL_NAME_MAX` characters.
 */
import { z } from "zod";
import { Base64Url, IsoDateTime, ModelName, ModelVersion, Sha256Hex } from "../common.ts";
import { DeviceId } from "../devices.ts";
import { TenantId } from "../keys.ts";
import { RoundMechanism, isDpMode } from "./privacy.ts";
import { RecordedRoundRelease } from "./release.ts";
import { ShardCount } from "./sharding.ts";
import {
  PopulationPrivacy,
  PrivacyMode,
  RotationSeed,
  RoundTask,
  SecureAggregationParams,
  TrainableScope,
  secureAggregationTaskFor,
} from "./task.ts";

/** Longest model name that can own training rounds (so `<model>_<seq>` stays within 64 characters). */
export const TRAINING_MODEL_NAME_MAX = 48;

export const RoundId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,47}_[1-9][0-9]{0,14}$/, "a round id is <model>_<sequence number>");
export type RoundId = z.infer<typeof RoundId>;

/** The id of a population's `seq`-th round. */
export function roundIdFor(model: string, seq: number): string {
  return `${model}_${seq}`;
}

/** Splits a round id into its model and sequence number, or `null` when it is not one. */
export function parseRoundId(id: string): { model: string; seq: number } | null {
  if (!RoundId.safeParse(id).success) return null;
  const at = id.lastIndexOf("_");
  return { model: id.slice(0, at), seq: Number(id.slice(at + 1)) };
}

export const RoundState = z.enum(["open", "collecting", "closed", "aggregated"]);
export type RoundState = z.infer<typeof RoundState>;

/** Why a round stopped collecting. */
export const CloseReason = z.enum(["deadline", "max_reports", "admin"]);
export type CloseReason = z.infer<typeof CloseReason>;

export const UpdateDtype = z.enum(["float32", "int8"]);
export type UpdateDtype = z.infer<typeof UpdateDtype>;

/** The task parameters every selected device receives (the `RoundTask` without the per-device fields). */
export const RoundParams = z.object({
  model_version: ModelVersion,
  /**
   * L2 norm devices clip Δ to; the edge refuses updates above it. Required in every mode but `none`, where it may be
   * left out (no clipping, no norm check; given, it is a plain robustness bound).
   */
  clip_norm: z.number().positive().finite().optional(),
  learning_rate: z.number().positive().finite(),
  local_epochs: z.number().int().min(1).max(100),
  batch_size: z.number().int().min(1).max(4096),
  privacy_mode: PrivacyMode,
  /** Required (and only allowed) in `local` mode: the device adds N(0, (z·C)²) per coordinate; z > 0. */
  local_noise_multiplier: z.number().positive().finite().optional(),
  /**
   * `central` mode only: devices report their clip bit b = 1[‖Δ‖ ≤ C] (before clipping) in the signed update, for the
   * aggregator's adaptive clipping; the edge then refuses updates without it, and in every other round refuses updates
   * that carry one.
   * @default false
   */
  report_clip_bit: z.boolean().optional(),
  /** The population's (ε, δ) as the aggregator's ledger accounts it (`central`/`local`); devices check it against their policy. */
  population_privacy: PopulationPrivacy.optional(),
  trainable: TrainableScope,
  /** Length of the flattened update; at most 4 Mi values (16 MiB of float32). */
  update_length: z
    .number()
    .int()
    .positive()
    .max(4 * 1024 * 1024),
  update_dtype: UpdateDtype.default("float32"),
  /** Poisson sampling rate q: each device that checks in is selected with probability q, once per round. */
  sampling_rate: z.number().gt(0).max(1),
  /** Fewest accepted updates for the round to be aggregated; exactly 1 in DP modes (see `OpenRoundRequest`). */
  min_reports: z.number().int().min(1),
  /**
   * The round closes as soon as this many updates are accepted. Privacy mode `none` only: in DP modes it is refused,
   * since closing on a count lets one device's report displace another's (sensitivity 2C instead of C, and the
   * sampling is no longer the Poisson coin the accountant assumes).
   */
  max_reports: z.number().int().min(1).max(1_000_000).optional(),
  /** The mechanism the round is charged to the population's privacy budget for (every mode but `none`). */
  mechanism: RoundMechanism.optional(),
  /** Required (and only allowed) in `distributed` mode: what the devices' encoded updates are summed in. */
  secure_aggregation: SecureAggregationParams.optional(),
  /**
   * Distributed mode only (and required there): the round's public rotation seed, base64url of 32 random bytes the
   * aggregator draws; every device derives the same randomized Hadamard transform from it and the aggregator inverts it.
   */
  rotation_seed: RotationSeed.optional(),
  /**
   * Most devices of one API key the coin may select in this round; a device of a key at its cap is not selected (so
   * one key cannot fill a round). @default DEFAULT_MAX_SELECTED_PER_KEY
   */
  max_selected_per_key: z.number().int().min(1).max(1_000_000).optional(),
});
export type RoundParams = z.infer<typeof RoundParams>;

/** Most devices of one API key selected per round when the round does not say. */
export const DEFAULT_MAX_SELECTED_PER_KEY = 1_000;

export const OpenRoundRequest = RoundParams.extend({
  model: ModelName.max(TRAINING_MODEL_NAME_MAX),
  /**
   * The tenant that owns the population (fixed by its first round; only its API keys check in and upload).
   * @default the population's owner, or "default" for its first round
   */
  tenant: TenantId.optional(),
  /** When collecting stops (ISO 8601). Give this or `duration_s`. */
  deadline: IsoDateTime.optional(),
  /** Collecting window from now, in seconds. Give this or `deadline`. */
  duration_s: z
    .number()
    .int()
    .min(1)
    .max(7 * 24 * 3600)
    .optional(),
})
  .strict()
  .refine((r) => (r.deadline === undefined) !== (r.duration_s === undefined), {
    message: "give exactly one of deadline and duration_s",
    path: ["deadline"],
  })
  .refine((r) => r.max_reports === undefined || r.min_reports <= r.max_reports, {
    message: "min_reports must be ≤ max_reports",
    path: ["min_reports"],
  })
  .refine((r) => (r.privacy_mode === "local") === (r.local_noise_multiplier !== undefined), {
    message: "local_noise_multiplier is required in local privacy mode and only allowed there",
    path: ["local_noise_multiplier"],
  })
  .refine((r) => r.privacy_mode === "none" || r.clip_norm !== undefined, {
    message: "clip_norm is required unless privacy_mode is none",
    path: ["clip_norm"],
  })
  .refine((r) => (r.privacy_mode === "distributed") === (r.secure_aggregation !== undefined), {
    message:
      "secure_aggregation ({modulus_bits, encoded_length}) is required in distributed privacy mode and only allowed there",
    path: ["secure_aggregation"],
  })
  .refine((r) => !r.report_clip_bit || r.privacy_mode === "central", {
    message: "report_clip_bit is only allowed in central privacy mode (in local mode the bit would leak un-noised)",
    path: ["report_clip_bit"],
  })
  .refine((r) => r.privacy_mode !== "none" || r.population_privacy === undefined, {
    message: "population_privacy makes no sense in privacy mode none",
    path: ["population_privacy"],
  })
  .refine((r) => isDpMode(r.privacy_mode) === (r.mechanism !== undefined), {
    message:
      "mechanism ({noise_multiplier, clip_rule[, count_noise_std]}) is required in every DP privacy mode, the round's charge to the population's budget, and refused in mode none",
    path: ["mechanism"],
  })
  .refine((r) => (r.privacy_mode === "distributed") === (r.mechanism?.distributed !== undefined), {
    message:
      "mechanism.distributed (the devices' discrete noise: bits, scale, dimension, noise_shares, share_variance, sensitivity_bound) is required in distributed privacy mode and only allowed there",
    path: ["mechanism", "distributed"],
  })
  .refine((r) => (r.privacy_mode === "distributed") === (r.rotation_seed !== undefined), {
    message: "rotation_seed is required in distributed privacy mode and only allowed there",
    path: ["rotation_seed"],
  })
  .refine(
    (r) =>
      r.secure_aggregation === undefined ||
      r.mechanism?.distributed === undefined ||
      r.secure_aggregation.modulus_bits === r.mechanism.distributed.bits,
    {
      message:
        "secure_aggregation.modulus_bits must equal mechanism.distributed.bits: the devices' noised values and their masked sum live in one ring Z_{2^b}",
      path: ["secure_aggregation", "modulus_bits"],
    },
  )
  .refine(
    (r) =>
      r.secure_aggregation === undefined ||
      r.mechanism?.distributed === undefined ||
      r.secure_aggregation.encoded_length === r.mechanism.distributed.dimension,
    {
      message:
        "secure_aggregation.encoded_length must equal mechanism.distributed.dimension (d', the rotated, padded update length)",
      path: ["secure_aggregation", "encoded_length"],
    },
  )
  .refine(
    (r) =>
      r.mechanism?.distributed === undefined ||
      (r.mechanism.distributed.dimension >= r.update_length && r.mechanism.distributed.dimension < 2 * r.update_length),
    {
      message: "mechanism.distributed.dimension must be update_length padded to the next power of two",
      path: ["mechanism", "distributed", "dimension"],
    },
  )
  .refine((r) => r.privacy_mode !== "distributed" || r.mechanism?.clip_rule !== "adaptive", {
    message:
      "adaptive clipping is refused in distributed mode: the clip bits would reach the server un-noised and unaggregated",
    path: ["mechanism", "clip_rule"],
  })
  .refine((r) => !isDpMode(r.privacy_mode) || r.max_selected_per_key === undefined, {
    message:
      "max_selected_per_key is refused in DP privacy modes: a per-key cap makes one device's selection depend on another's, breaking the Poisson sampling the accountant assumes (a key's weight is bounded by its device quota)",
    path: ["max_selected_per_key"],
  })
  .refine((r) => !isDpMode(r.privacy_mode) || r.max_reports === undefined, {
    message:
      "max_reports is refused in DP privacy modes: closing on a count lets one device's report displace another's (sensitivity 2C) and breaks the Poisson sampling the accountant assumes",
    path: ["max_reports"],
  })
  .refine((r) => !isDpMode(r.privacy_mode) || r.min_reports === 1, {
    message: "min_reports must be 1 in DP privacy modes (no round is decided on an exact count above one)",
    path: ["min_reports"],
  })
  .refine(
    (r) =>
      r.privacy_mode !== "local" ||
      r.mechanism === undefined ||
      (r.mechanism.noise_multiplier === r.local_noise_multiplier && r.mechanism.clip_rule === "fixed"),
    {
      message:
        "in local mode the charged mechanism is the devices' noise: mechanism.noise_multiplier must equal local_noise_multiplier and clip_rule must be fixed",
      path: ["mechanism"],
    },
  )
  .meta({ id: "OpenRoundRequest" });
export type OpenRoundRequest = z.infer<typeof OpenRoundRequest>;

export const RoundStatus = z
  .object({
    round_id: RoundId,
    model: ModelName,
    state: RoundState,
    params: RoundParams,
    opened_at: IsoDateTime,
    deadline: IsoDateTime,
    closed_at: IsoDateTime.nullable(),
    close_reason: CloseReason.nullable(),
    aggregated_at: IsoDateTime.nullable(),
    published_version: ModelVersion.nullable(),
    /** When the round's update payloads were deleted after the edge's retention period (their metadata stays). */
    payloads_purged_at: IsoDateTime.nullable(),
    /** Distinct devices that checked in during the round. */
    checked_in: z.number().int().nonnegative(),
    /** Devices the coin selected (each got a nonce). */
    selected: z.number().int().nonnegative(),
    /** Accepted updates (one per device at most). */
    accepted: z.number().int().nonnegative(),
    /**
     * Coordinator shards the round ran on (fixed when it opens). With more than one, its updates can also be listed
     * one shard at a time (`?shard=`), and its counters are summed from the shards.
     */
    shards: ShardCount.optional(),
    /**
     * DP rounds: what the aggregator released when it finished the round (noised values only, never an exact count),
     * null until it reported. The only counts of a DP round that may be published.
     */
    release: RecordedRoundRelease.nullable().optional(),
  })
  .meta({ id: "RoundStatus" });
export type RoundStatus = z.infer<typeof RoundStatus>;

export const RoundList = z.object({ rounds: z.array(RoundStatus) }).meta({ id: "RoundList" });
export type RoundList = z.infer<typeof RoundList>;

/** One accepted update as the aggregator lists it; fetch its signed bytes from `.../updates/:device_id`. */
export const AcceptedUpdate = z
  .object({
    /**
     * Acceptance order within the round, from 1. In a sharded round the order is per shard, and `seq` is
     * shard × 2³² + that order: unique in the round, and the page cursor.
     */
    seq: z.number().int().positive(),
    device_id: DeviceId,
    /** The device's Ed25519 public key (base64url) at acceptance, to re-verify the signature. */
    public_key: Base64Url.length(43),
    /**
     * The update's name, as in its receipt: hex SHA-256 of its signed bytes (`updateDigestHex`). Updates accepted
     * before the edge named them by their signed digest carry the SHA-256 of their whole body (their payloads are
     * deleted after the retention).
     */
    sha256: Sha256Hex,
    byte_length: z.number().int().positive(),
    received_at: IsoDateTime,
  })
  .meta({ id: "AcceptedUpdate" });
export type AcceptedUpdate = z.infer<typeof AcceptedUpdate>;

export const AcceptedUpdatePage = z
  .object({
    round_id: RoundId,
    items: z.array(AcceptedUpdate),
    /** Pass as `after` for the next page; `null` on the last page. */
    next_cursor: z.string().nullable(),
  })
  .meta({ id: "AcceptedUpdatePage" });
export type AcceptedUpdatePage = z.infer<typeof AcceptedUpdatePage>;

export const MarkAggregatedRequest = z
  .object({
    /** The model version the aggregation produced, if already published. */
    published_version: ModelVersion.optional(),
  })
  .strict()
  .meta({ id: "MarkAggregatedRequest" });
export type MarkAggregatedRequest = z.infer<typeof MarkAggregatedRequest>;

export const PublishRoundRequest = z
  .object({
    /** The version uploaded with `POST /v1/admin/models/:name/versions`. */
    model_version: ModelVersion,
  })
  .strict()
  .meta({ id: "PublishRoundRequest" });
export type PublishRoundRequest = z.infer<typeof PublishRoundRequest>;

/**
 * `GET /v1/admin/rounds/:id/update-stream` answers with this media type: a sequence of frames, each
 * `public key (32 bytes) ‖ length L (u32 little-endian) ‖ L bytes of one application/vnd.fedge.update`.
 */
export const UPDATE_STREAM_MEDIA_TYPE = "application/vnd.fedge.update-stream";
export const UPDATE_STREAM_FRAME_HEADER_BYTES = 36;

export interface UpdateStreamFrame {
  /** The device's Ed25519 public key. */
  publicKey: Uint8Array;
  /** The signed update exactly as the device uploaded it. */
  update: Uint8Array;
}

/** Encodes the header of one update-stream frame. */
export function encodeUpdateStreamFrameHeader(publicKey: Uint8Array, updateLength: number): Uint8Array {
  if (publicKey.length !== 32) throw new RangeError("encodeUpdateStreamFrameHeader: publicKey must be 32 bytes");
  const out = new Uint8Array(UPDATE_STREAM_FRAME_HEADER_BYTES);
  out.set(publicKey, 0);
  new DataView(out.buffer).setUint32(32, updateLength, true);
  return out;
}

/** Reads an update stream frame by frame without holding more than one frame (plus one network chunk) in memory. */
export async function* readUpdateStream(stream: ReadableStream<Uint8Array>): AsyncGenerator<UpdateStreamFrame> {
  const reader = stream.getReader();
  let buf = new Uint8Array(0);
  const need = async (n: number): Promise<boolean> => {
    while (buf.length < n) {
      const { done, value } = await reader.read();
      if (done) return false;
      const next = new Uint8Array(buf.length + value.length);
      next.set(buf, 0);
      next.set(value, buf.length);
      buf = next;
    }
    return true;
  };
  try {
    for (;;) {
      if (!(await need(UPDATE_STREAM_FRAME_HEADER_BYTES))) {
        if (buf.length !== 0) throw new RangeError("update stream ends inside a frame header");
        return;
      }
      const length = new DataView(buf.buffer, buf.byteOffset + 32, 4).getUint32(0, true);
      if (!(await need(UPDATE_STREAM_FRAME_HEADER_BYTES + length))) {
        throw new RangeError("update stream ends inside a frame");
      }
      const publicKey = buf.slice(0, 32);
      const update = buf.slice(UPDATE_STREAM_FRAME_HEADER_BYTES, UPDATE_STREAM_FRAME_HEADER_BYTES + length);
      buf = buf.slice(UPDATE_STREAM_FRAME_HEADER_BYTES + length);
      yield { publicKey, update };
    }
  } finally {
    reader.releaseLock();
  }
}

/** The task a selected device receives, built from a round's parameters. */
export function roundTaskFor(
  roundId: string,
  model: string,
  params: RoundParams,
  nonce: string,
  deadline: string,
): RoundTask {
  const task: RoundTask = {
    round_id: roundId,
    model,
    model_version: params.model_version,
    learning_rate: params.learning_rate,
    local_epochs: params.local_epochs,
    batch_size: params.batch_size,
    privacy_mode: params.privacy_mode,
    trainable: params.trainable,
    update_length: params.update_length,
    update_dtype: params.update_dtype,
    nonce,
    deadline,
  };
  if (params.clip_norm !== undefined) task.clip_norm = params.clip_norm;
  if (params.local_noise_multiplier !== undefined) task.local_noise_multiplier = params.local_noise_multiplier;
  if (params.report_clip_bit) task.report_clip_bit = true;
  if (params.population_privacy !== undefined) task.population_privacy = params.population_privacy;
  if (params.mechanism?.distributed && params.rotation_seed) {
    task.distributed = { ...params.mechanism.distributed, rotation_seed: params.rotation_seed };
  }
  if (params.secure_aggregation !== undefined) {
    task.secure_aggregation = secureAggregationTaskFor(params.secure_aggregation, Date.parse(deadline));
  }
  return task;
}
