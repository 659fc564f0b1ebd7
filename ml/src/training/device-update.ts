/**
 * @module
 * What a device does with its round task before it signs the update, in one place, so that the SDK
 * (`@fedge/client` `participate()`) and the aggregator's simulator (`fedge simulate`, and the round tests built on it)
 * run the very same code path and the aggregator sees in tests what it sees from the edge:
 *
 * 1. train locally (`trainLocal`) and take Δ = trained − received over the task's trainable scope (`computeUpdate`);
 * 2. when the task asks for it (`report_clip_bit`, central mode with adaptive clipping), the clip bit
 *    b = 1[‖Δ‖₂ ≤ C], computed BEFORE clipping (Andrew, Thakkar, McMahan, Ramaswamy 2021, "Differentially Private
 *    Learning with Adaptive Clipping", arXiv 1905.03871, Alg. 1: each client reports b_i next to its clipped update);
 * 3. clip Δ to ‖Δ‖₂ ≤ C (DP-FedAvg, McMahan et al. 2018, arXiv 1710.06963 Alg. 1), unless the task has no C (privacy
 *    mode `none`, which sends Δ as trained);
 * 4. `local` mode: add N(0, (z·C)²) to every coordinate from the injected CSPRNG (the Gaussian mechanism run on the
 *    device, Dwork & Roth 2014 Thm A.1; z > 0 is required: z = 0 or a missing z would send the clipped Δ in the clear);
 * 5. when the task asks for int8 (`update_dtype`), {@link compressUpdate}: stochastic rounding to int8 (unbiased, from
 *    the CSPRNG) with a scale chosen so the DEQUANTIZED update still satisfies the bound the edge checks and the
 *    server clips to (@fedge/protocol `quantizeUpdateInt8` with `maxNorm`): ‖deq(q)‖₂ ≤ C in central mode (and in
 *    `none` with a clip norm), ‖deq(q)‖₂ ≤ ‖Δ‖₂ otherwise (quantization never grows the update).
 *
 * Privacy of step 5. Central mode: quantization runs on the device after clipping and before the server's noise, so
 * the Gaussian mechanism's L2 sensitivity must hold for what the server adds, the dequantized values: it does,
 * ‖deq(q_i)‖₂ ≤ C for every device (checked by the edge with no tolerance needed, and the server's re-clip of the
 * dequantized values is then exactly a no-op), so σ = z·C and the accountant's charge are unchanged. The rounding
 * randomness is the device's own and is never sent. Local mode: the update is quantized after the noise, which is
 * post-processing of a DP release (Dwork & Roth 2014, Prop. 2.1): the local guarantee is unchanged. The clip bit is
 * computed from the unclipped Δ before any of this.
 *
 * The clip bit is never computed outside central mode: in local mode it would reach an untrusted server un-noised.
 * Encoding and signing (the update codec of @fedge/protocol) is the caller's last step. Pure: no I/O, randomness injected;
 * bad tasks or data throw `RangeError`/`TypeError` naming the field.
 */
import { quantizeUpdateInt8, type PrivacyMode, type TrainableScope, type UpdatePayload } from "@fedge/protocol";
import { addLocalNoise, type RandomBytes } from "@fedge/privacy";
import type { MlpParams } from "../model-layout/mlp.ts";
import { clipToNorm } from "./clip.ts";
import { trainLocal } from "./train.ts";
import { computeUpdate } from "./update.ts";
import type { Labels } from "./validate.ts";

/** The privacy fields of a round task (the same names as @fedge/protocol `RoundTask`). */
export interface DevicePrivacyTask {
  privacy_mode: PrivacyMode;
  /** C; absent only in mode `none` (no clipping). */
  clip_norm?: number | undefined;
  /** z of local mode (σ = z·C), > 0. */
  local_noise_multiplier?: number | undefined;
  /** Report b = 1[‖Δ‖ ≤ C] (central mode only). @default false */
  report_clip_bit?: boolean | undefined;
}

/** The training fields of a round task (the same names as @fedge/protocol `RoundTask`). */
export interface DeviceTrainingTask extends DevicePrivacyTask {
  local_epochs: number;
  batch_size: number;
  learning_rate: number;
  trainable: TrainableScope;
}

/** What {@link privatizeUpdate} did. */
export interface PrivatizeResult {
  /** ‖Δ‖₂ before clipping (float64). */
  norm: number;
  /** `min(1, C/‖Δ‖₂)` as applied (1 without a clip norm). */
  clipFactor: number;
  /** b = 1[‖Δ‖₂ ≤ C] when the task asks for it, else `undefined` (not reported). */
  clipBit: 0 | 1 | undefined;
  /** σ of the local noise per coordinate (0 unless `local` mode). */
  noiseStd: number;
}

function positiveFinite(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v) && v > 0;
}

/** Checks the privacy fields of a task; throws `RangeError` naming the bad one. */
export function checkDevicePrivacyTask(task: DevicePrivacyTask): void {
  const mode = task.privacy_mode;
  if (mode !== "central" && mode !== "local" && mode !== "none") {
    throw new RangeError(
      mode === "distributed"
        ? "privacy_mode distributed never sends Δ as floats: encode it with encodeDistributedDeviceUpdate (distributed-update.ts)"
        : `privacy_mode must be central, local or none, got ${JSON.stringify(mode)}`,
    );
  }
  if (task.clip_norm !== undefined && !positiveFinite(task.clip_norm)) {
    throw new RangeError(`clip_norm must be a finite number > 0, got ${String(task.clip_norm)}`);
  }
  if (mode !== "none" && task.clip_norm === undefined) {
    throw new RangeError(`clip_norm is required in privacy mode ${mode}`);
  }
  if (mode === "local" && !positiveFinite(task.local_noise_multiplier)) {
    throw new RangeError(
      `local_noise_multiplier must be a finite number > 0 in local mode, got ${String(task.local_noise_multiplier)}` +
        " (without noise the update would leave the device in the clear)",
    );
  }
  if (mode !== "local" && task.local_noise_multiplier !== undefined) {
    throw new RangeError(`local_noise_multiplier is only allowed in local mode, not ${mode}`);
  }
  if (task.report_clip_bit && mode !== "central") {
    throw new RangeError(`report_clip_bit is only allowed in central mode (in ${mode} mode the bit would leak)`);
  }
}

/**
 * Steps 2–4 of the module header on an update Δ, IN PLACE: computes the clip bit (when asked) from the unclipped norm,
 * clips, and adds local noise. `random` must be a CSPRNG in production (it draws the local noise).
 * @throws {RangeError} for a task that fails {@link checkDevicePrivacyTask} or a Δ with non-finite values.
 */
export function privatizeUpdate(delta: Float32Array, task: DevicePrivacyTask, random: RandomBytes): PrivatizeResult {
  if (!(delta instanceof Float32Array)) throw new TypeError("delta must be a Float32Array");
  checkDevicePrivacyTask(task);
  const c = task.clip_norm;
  let norm: number;
  let clipFactor = 1;
  if (c === undefined) {
    norm = 0;
    for (let i = 0; i < delta.length; i++) norm += delta[i]! * delta[i]!;
    norm = Math.sqrt(norm);
    if (!Number.isFinite(norm)) throw new RangeError("the update has non-finite values");
  } else {
    const clip = clipToNorm(delta, c);
    norm = clip.norm;
    clipFactor = clip.factor;
    if (clip.factor !== 1) delta.set(clip.clipped);
  }
  // b is a function of the UNCLIPPED norm: after clipping every update has ‖·‖ ≤ C.
  const clipBit = task.report_clip_bit ? (norm <= c! ? 1 : 0) : undefined;
  let noiseStd = 0;
  if (task.privacy_mode === "local") {
    addLocalNoise(delta, c!, task.local_noise_multiplier!, random);
    noiseStd = task.local_noise_multiplier! * c!;
  }
  return { norm, clipFactor, clipBit, noiseStd };
}

/** The payload fields of a round task (the same names as @fedge/protocol `RoundTask`). */
export interface DeviceCompressionTask extends DevicePrivacyTask {
  /** The payload dtype the round takes. @default "float32" */
  update_dtype?: "float32" | "int8" | undefined;
}

/**
 * Step 5 of the module header: the payload to encode for `values` (clipped, and in local mode noised, by
 * {@link privatizeUpdate}): the values themselves for float32 rounds; for int8 rounds, stochastic rounding with the
 * norm bound that holds after dequantization. `random` must be a CSPRNG in production (it draws the rounding).
 */
export function compressUpdate(values: Float32Array, task: DeviceCompressionTask, random: RandomBytes): UpdatePayload {
  if (!(values instanceof Float32Array)) throw new TypeError("values must be a Float32Array");
  const dtype = task.update_dtype ?? "float32";
  if (dtype === "float32") return { dtype, values };
  if (dtype !== "int8") throw new RangeError(`update_dtype must be float32 or int8, got ${JSON.stringify(dtype)}`);
  checkDevicePrivacyTask(task);
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]! * values[i]!;
  const norm = Math.sqrt(sum);
  if (!Number.isFinite(norm)) throw new RangeError("the update has non-finite values");
  const c = task.clip_norm;
  const maxNorm = c !== undefined && task.privacy_mode !== "local" ? Math.min(norm, c) : norm;
  return quantizeUpdateInt8(values, { maxNorm, random });
}

/** Input of {@link trainDeviceUpdate}. */
export interface DeviceUpdateInput {
  /** The received model (what the task's `model_version` holds). */
  params: MlpParams;
  task: DeviceTrainingTask;
  /** Features, row-major `n × inFeatures`. */
  data: Float32Array;
  /** One class index per row. */
  labels: Labels;
  /** CSPRNG for the local noise (and the batch order unless `trainRandom` is given). */
  random: RandomBytes;
  /**
   * Random bytes for the batch order only (the simulator passes a seeded stream to make training reproducible;
   * privacy noise always comes from `random`).
   * @default random
   */
  trainRandom?: RandomBytes;
}

/** What {@link trainDeviceUpdate} returns: the values to encode and sign, and what training did. */
export interface DeviceUpdate extends PrivatizeResult {
  /** Δ, clipped and (local mode) noised: the update payload. */
  values: Float32Array;
  samples: number;
  /** Mean training loss of the last epoch. */
  loss: number;
  steps: number;
}

/** Step 1 of the module header only: train and return Δ as trained (for a distributed round's encoder). */
export function trainDeviceDelta(
  input: Omit<DeviceUpdateInput, "task"> & { task: Omit<DeviceTrainingTask, keyof DevicePrivacyTask> },
): {
  values: Float32Array;
  samples: number;
  loss: number;
  steps: number;
} {
  const { task, params } = input;
  const trained = trainLocal(params, input.data, input.labels, {
    epochs: task.local_epochs,
    batchSize: task.batch_size,
    learningRate: task.learning_rate,
    scope: task.trainable,
    random: input.trainRandom ?? input.random,
  });
  const values = computeUpdate(params, trained.params, task.trainable);
  return { values, samples: input.labels.length, loss: trained.loss, steps: trained.steps };
}

/** Steps 1–4 of the module header: train on the device's data, then {@link privatizeUpdate}. */
export function trainDeviceUpdate(input: DeviceUpdateInput): DeviceUpdate {
  checkDevicePrivacyTask(input.task);
  const trained = trainDeviceDelta(input);
  const p = privatizeUpdate(trained.values, input.task, input.random);
  return { ...p, ...trained };
}
