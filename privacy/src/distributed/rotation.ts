/**
 * @module
 * The randomized Hadamard transform that flattens an update before it is rounded (Kairouz, Liu, Steinke 2021, "The
 * Distributed Discrete Gaussian Mechanism for Federated Learning with Secure Aggregation", arXiv 2102.06387 §4.2):
 * x ↦ H·D·x/√d', with d' the length padded to a power of two, D = diag(±1) Rademacher signs and H the d'×d' Walsh–
 * Hadamard matrix. The map is orthogonal (norms are kept), and each output coordinate Σ_j ±x_j/√d' is sub-Gaussian
 * with variance proxy ‖x‖²/d' over the signs (Hoeffding), so no coordinate carries much more than its share of the
 * norm: what lets a small modulus hold the sum (`plan.ts`).
 *
 * The signs come from the round's PUBLIC rotation seed expanded with ChaCha20 (`samplers/chacha20.ts`): every device
 * and the server derive the same D, and the server inverts it with x = D·H·y/√d' (H is symmetric and H² = d'·I).
 * Privacy never rests on the rotation being secret.
 */
import { chacha20Stream } from "../samplers/chacha20.ts";

/** Length of a rotation seed in bytes (a ChaCha20 key). */
export const ROTATION_SEED_BYTES = 32;

/** The smallest power of two ≥ `length` (≥ 1). */
export function paddedLength(length: number): number {
  if (!Number.isSafeInteger(length) || length < 1)
    throw new RangeError(`length must be an integer >= 1, got ${length}`);
  if (length > 2 ** 30) throw new RangeError(`length must be at most 2^30, got ${length}`);
  let p = 1;
  while (p < length) p *= 2;
  return p;
}

/** The ±1 diagonal D of the rotation for `seed` (32 bytes) and padded length d' (a power of two). */
export function rotationSigns(seed: Uint8Array, padded: number): Int8Array {
  if (!(seed instanceof Uint8Array) || seed.length !== ROTATION_SEED_BYTES) {
    throw new RangeError(`rotation seed must be ${ROTATION_SEED_BYTES} bytes`);
  }
  if (paddedLength(padded) !== padded) throw new RangeError(`padded length must be a power of two, got ${padded}`);
  const bits = new Uint8Array(Math.ceil(padded / 8));
  chacha20Stream(seed)(bits);
  const signs = new Int8Array(padded);
  for (let i = 0; i < padded; i++) signs[i] = (bits[i >>> 3]! >>> (i & 7)) & 1 ? -1 : 1;
  return signs;
}

/** In-place unnormalised fast Walsh–Hadamard transform (x ← H·x) of a power-of-two length, O(d' log d'). */
export function walshHadamard(x: Float64Array): void {
  const n = x.length;
  if (paddedLength(n) !== n) throw new RangeError(`length must be a power of two, got ${n}`);
  for (let h = 1; h < n; h *= 2) {
    for (let i = 0; i < n; i += 2 * h) {
      for (let j = i; j < i + h; j++) {
        const a = x[j]!;
        const b = x[j + h]!;
        x[j] = a + b;
        x[j + h] = a - b;
      }
    }
  }
}

/** y = H·D·x/√d': `x` (any length ≤ d') padded with zeros to d' = `signs.length`, in float64. */
export function rotate(x: ArrayLike<number>, signs: Int8Array): Float64Array {
  const n = signs.length;
  if (x.length > n) throw new RangeError(`vector of ${x.length} values does not fit the rotation of ${n}`);
  const y = new Float64Array(n);
  for (let i = 0; i < x.length; i++) y[i] = signs[i]! * x[i]!;
  walshHadamard(y);
  const norm = 1 / Math.sqrt(n);
  for (let i = 0; i < n; i++) y[i] = y[i]! * norm;
  return y;
}

/** x = D·H·y/√d', the inverse of {@link rotate} (in place on `y`, which must have length d'). */
export function unrotate(y: Float64Array, signs: Int8Array): Float64Array {
  const n = signs.length;
  if (y.length !== n) throw new RangeError(`vector of ${y.length} values, the rotation has ${n}`);
  walshHadamard(y);
  const norm = 1 / Math.sqrt(n);
  for (let i = 0; i < n; i++) y[i] = signs[i]! * y[i]! * norm;
  return y;
}
