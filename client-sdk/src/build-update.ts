/**
 * @module
 * From a round task, the served model and the device's data to the signed update bytes: read the weights out of the
 * ONNX file (@fedge/ml `readMlpFromOnnx`), then the shared device pipeline of @fedge/ml (`trainDeviceUpdate`, the code
 * `fedge simulate` runs too): train locally, Δ = trained − received over the task's trainable scope, the clip bit
 * b = 1[‖Δ‖₂ ≤ C] from the UNCLIPPED norm when the task asks for it (central mode with adaptive clipping, Andrew et al.
 * 2021, arXiv 1905.03871), clip to ‖Δ‖₂ ≤ C (DP-FedAvg, McMahan et al. 2018, arXiv 1710.06963 Algorithm 1), add
 * N(0, (z·C)²) per coordinate in `local` mode (z > 0 required), int8 rounds quantized with the norm bound kept after
 * dequantization (`compressUpdate`); then encode (codec version 3, clip bit in the signed header) and sign (Ed25519
 * over the SHA-256 digest of the header and payload; the digest comes from `crypto.subtle`, which React Native lacks:
 * there, `FedgeClientError` `unsupported_runtime`).
 *
 * The client loads this module lazily (dynamic import) on the first `participate()`, so the ONNX reader, protobuf and
 * the trainer stay out of the SDK core. The app's privacy policy is checked before this runs (`policy.ts`).
 */
import type { RoundTask } from "@fedge/protocol";
import {
  checkDevicePrivacyTask,
  compressUpdate,
  readMlpFromOnnx,
  trainableLength,
  trainDeviceUpdate,
  type Labels,
} from "@fedge/ml";
import { encodeUpdate } from "@fedge/protocol";
import { InvalidInputError, FedgeClientError } from "./core/errors.ts";
import { fromBase64Url } from "./internal/encoding.ts";

export interface BuildUpdateInput {
  task: RoundTask;
  /** The ONNX bytes of `task.model` at `task.model_version`. */
  modelBytes: Uint8Array;
  /** Features, row-major `n × inFeatures`. */
  data: Float32Array;
  /** One class index per row. */
  labels: Labels;
  deviceId: string;
  /** The device's 64-byte tweetnacl signing secret key. */
  secretKey: Uint8Array;
  /** CSPRNG for batch order and local noise. */
  random: (buf: Uint8Array) => void;
}

/** What local training did, returned to the caller of `participate()`. */
export interface UpdateStats {
  samples: number;
  /** Mean training loss of the last epoch. */
  loss: number;
  steps: number;
  /** Number of values in the update. */
  updateLength: number;
  /** ‖Δ‖₂ before clipping. */
  updateNorm: number;
  /** `min(1, C/‖Δ‖₂)` as applied (1 when the task has no clip norm). */
  clipFactor: number;
  /** The clip bit sent with the update (central mode with adaptive clipping only); undefined when none was sent. */
  clipBit: 0 | 1 | undefined;
  /** σ of the local noise per coordinate (0 unless `local` mode). */
  noiseStd: number;
  dtype: "float32" | "int8";
  /** Size of the signed update in bytes. */
  bytes: number;
}

export interface BuiltUpdate {
  bytes: Uint8Array;
  stats: UpdateStats;
}

export async function buildUpdate(input: BuildUpdateInput): Promise<BuiltUpdate> {
  const { task } = input;
  if (task.privacy_mode === "distributed") {
    throw new FedgeClientError(
      "unsupported_privacy_mode",
      "a distributed round takes no upload: its update goes through secure aggregation",
    );
  }
  if (typeof (globalThis as { crypto?: Crypto }).crypto?.subtle?.digest !== "function") {
    throw new FedgeClientError(
      "unsupported_runtime",
      "signing an update needs crypto.subtle (SHA-256); this runtime has none (React Native: install a WebCrypto polyfill)",
    );
  }
  const nonce = fromBase64Url(task.nonce);
  if (nonce.length !== 16)
    throw new FedgeClientError("invalid_task", `task nonce is ${nonce.length} bytes, expected 16`);
  const { update, samples: n } = trainForTask(input);
  const values = update.values;
  const dtype = task.update_dtype ?? "float32";
  // int8 rounds: stochastic rounding whose dequantized norm still meets the round's bound (see @fedge/ml).
  const payload = compressUpdate(values, task, input.random);
  const bytes = await encodeUpdate(
    {
      roundId: task.round_id,
      deviceId: input.deviceId,
      nonce,
      shape: [values.length],
      payload,
      clipBit: update.clipBit,
    },
    input.secretKey,
  );
  return {
    bytes,
    stats: {
      samples: n,
      loss: update.loss,
      steps: update.steps,
      updateLength: values.length,
      updateNorm: update.norm,
      clipFactor: update.clipFactor,
      clipBit: update.clipBit,
      noiseStd: update.noiseStd,
      dtype,
      bytes: bytes.length,
    },
  };
}

/**
 * The training half of the device pipeline for `task` (`trainDeviceUpdate`): the model and data checked against the
 * task, then train, Δ, clip bit, clip, local noise. Used by `buildUpdate` and by distributed rounds, which pass the
 * task as the device pipeline should run it (clip only).
 */
export function trainForTask(input: Pick<BuildUpdateInput, "task" | "modelBytes" | "data" | "labels" | "random">): {
  update: ReturnType<typeof trainDeviceUpdate>;
  samples: number;
} {
  const { task } = input;
  try {
    checkDevicePrivacyTask(task);
  } catch (err) {
    if (err instanceof RangeError) throw new FedgeClientError("invalid_task", `task ${task.round_id}: ${err.message}`);
    throw err;
  }
  const { params } = readMlpFromOnnx(input.modelBytes);
  const expected = trainableLength(params, task.trainable);
  if (expected !== task.update_length) {
    throw new FedgeClientError(
      "invalid_task",
      `task expects ${task.update_length} update values but model ${task.model} v${task.model_version} has ${expected} in scope ${task.trainable}`,
    );
  }
  const inFeatures = params.layers[0]!.inFeatures;
  if (!(input.data instanceof Float32Array) || input.data.length === 0 || input.data.length % inFeatures !== 0) {
    throw new InvalidInputError("data", `must be a non-empty Float32Array of n × ${inFeatures} features`);
  }
  const n = input.data.length / inFeatures;
  if (!(input.labels instanceof Uint8Array || input.labels instanceof Int32Array) || input.labels.length !== n) {
    throw new InvalidInputError("labels", `must be a Uint8Array (or Int32Array) of ${n} class indices`);
  }
  try {
    return {
      update: trainDeviceUpdate({ params, task, data: input.data, labels: input.labels, random: input.random }),
      samples: n,
    };
  } catch (err) {
    if (err instanceof RangeError || err instanceof TypeError) throw new InvalidInputError("data", err.message);
    throw err;
  }
}
