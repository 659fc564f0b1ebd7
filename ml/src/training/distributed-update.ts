/**
 * @module
 * The device's step for a `distributed` round (Kairouz, Liu, Steinke 2021, arXiv 2102.06387): from the trained Δ to
 * its input to secure aggregation, a `Uint32Array` of d' residues mod 2^b, using exactly the round task's numbers
 * (`@fedge/protocol` `DistributedTask`): clip to C, randomized Hadamard rotation from the task's public seed, scale
 * γ, conditional randomized rounding within the charged bound B, discrete Gaussian share N_Z(0, σ_l²), mod 2^b
 * (`@fedge/privacy` `encodeDistributedUpdate`). This is what the SDK and the aggregator's simulator both call, so
 * the simulated devices run the device's code. Δ itself never leaves: only the encoding does.
 */
import { cryptoRandomBytes, encodeDistributedUpdate, paddedLength, type RandomBytes } from "@fedge/privacy";

/** The distributed fields of a round task (names as in `@fedge/protocol` `RoundTask`). */
export interface DistributedDeviceTask {
  privacy_mode: "distributed";
  /** C. */
  clip_norm: number;
  distributed: {
    bits: number;
    scale: number;
    /** d', the update length padded to a power of two. */
    dimension: number;
    share_variance: number;
    sensitivity_bound: number;
    /** base64url of the round's 32-byte public rotation seed. */
    rotation_seed: string;
  };
}

/** What {@link encodeDistributedDeviceUpdate} returns. */
export interface DistributedDeviceUpdate {
  /** The device's input to secure aggregation: d' residues mod 2^b. */
  encoded: Uint32Array;
  /** ‖Δ‖₂ ≤ C before clipping. */
  unclipped: boolean;
  clipFactor: number;
  /** Tries the conditional rounding took. */
  roundingTries: number;
}

/** base64url (no padding) → bytes; throws `RangeError` on anything else. */
function base64UrlBytes(text: string): Uint8Array {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text))
    throw new RangeError("rotation_seed must be base64url");
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4);
  return Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
}

function finitePositive(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v) && v > 0;
}

/**
 * Encodes the device's Δ for a distributed round (see the module header). `random` must be a CSPRNG in production
 * (rounding coins and the noise share). Throws `RangeError` naming a bad task field, or for a Δ of the wrong length
 * or with non-finite values.
 */
export function encodeDistributedDeviceUpdate(
  delta: Float32Array,
  task: DistributedDeviceTask,
  random: RandomBytes = cryptoRandomBytes,
): DistributedDeviceUpdate {
  if (!(delta instanceof Float32Array)) throw new TypeError("delta must be a Float32Array");
  if (task.privacy_mode !== "distributed")
    throw new RangeError(`privacy_mode must be distributed, got ${task.privacy_mode}`);
  const t = task.distributed;
  if (!t || typeof t !== "object") throw new RangeError("distributed is required in privacy mode distributed");
  if (!finitePositive(task.clip_norm))
    throw new RangeError(`clip_norm must be a finite number > 0, got ${task.clip_norm}`);
  if (!(Number.isSafeInteger(t.bits) && t.bits >= 2 && t.bits <= 32))
    throw new RangeError(`distributed.bits must be in [2, 32], got ${t.bits}`);
  if (!finitePositive(t.scale)) throw new RangeError(`distributed.scale must be a finite number > 0, got ${t.scale}`);
  if (t.dimension !== paddedLength(Math.max(1, delta.length))) {
    throw new RangeError(
      `distributed.dimension ${t.dimension} is not the update length ${delta.length} padded to a power of two`,
    );
  }
  if (!(t.share_variance >= 0.25) || !Number.isFinite(t.share_variance)) {
    throw new RangeError(`distributed.share_variance must be finite and >= 1/4, got ${t.share_variance}`);
  }
  if (!Number.isSafeInteger(t.sensitivity_bound) || t.sensitivity_bound < 1) {
    throw new RangeError(`distributed.sensitivity_bound must be a positive integer, got ${t.sensitivity_bound}`);
  }
  const seed = base64UrlBytes(t.rotation_seed);
  if (seed.length !== 32) throw new RangeError("rotation_seed must hold 32 bytes");
  const e = encodeDistributedUpdate(delta, {
    plan: {
      bits: t.bits,
      length: delta.length,
      paddedLength: t.dimension,
      clipNorm: task.clip_norm,
      scale: t.scale,
      sensitivityBound: t.sensitivity_bound,
      localVariance: t.share_variance,
    },
    rotationSeed: seed,
    random,
  });
  return { encoded: e.encoded, unclipped: e.unclipped, clipFactor: e.clipFactor, roundingTries: e.roundingTries };
}
