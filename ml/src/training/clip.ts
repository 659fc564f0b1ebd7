/**
 * @module
 * L2 clipping of an update vector, the per-client clipping step of DP-FedAvg (McMahan et al., "Learning Differentially
 * Private Recurrent Language Models", arXiv:1710.06963 §2, Algorithm 1: `Δ · min(1, C/‖Δ‖₂)`).
 */

/** Euclidean norm, summed in float64. Non-finite entries give a non-finite result. */
export function l2Norm(v: Float32Array): number {
  if (!(v instanceof Float32Array)) throw new TypeError("v must be a Float32Array");
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  return Math.sqrt(s);
}

/** Result of `clipToNorm`. */
export interface ClipResult {
  /** A new vector, `v · factor` rounded to float32; `l2Norm(clipped) <= c` always holds. */
  clipped: Float32Array;
  /** `l2Norm(v)` before clipping (float64). */
  norm: number;
  /**
   * The scale applied: `min(1, c / norm)`; when float32 rounding would leave the clipped norm above `c`, the factor
   * is lowered by a few ulps until it does not (exact relation: `clipped[i] = fround(v[i] · factor)`).
   */
  factor: number;
}

/**
 * Scale `v` so that its L2 norm is at most `c`: `v · min(1, c/‖v‖₂)`. Vectors already within the bound are copied
 * unchanged (factor 1). `v` is not modified.
 * @throws {RangeError} when `c` is not a positive finite number or `v` has a non-finite entry.
 */
export function clipToNorm(v: Float32Array, c: number): ClipResult {
  if (!(v instanceof Float32Array)) throw new TypeError("v must be a Float32Array");
  if (typeof c !== "number" || !Number.isFinite(c) || c <= 0) {
    throw new RangeError(`clip norm c must be a positive finite number, got ${c}`);
  }
  const norm = l2Norm(v);
  if (!Number.isFinite(norm)) {
    // Either a NaN/±Infinity entry, or an overflow in the sum of squares (impossible for float32 entries).
    throw new RangeError("cannot clip a vector with non-finite entries");
  }
  if (norm <= c) return { clipped: v.slice(), norm, factor: 1 };
  let factor = c / norm;
  const clipped = new Float32Array(v.length);
  for (let attempt = 0; ; attempt++) {
    for (let i = 0; i < v.length; i++) clipped[i] = v[i]! * factor;
    if (l2Norm(clipped) <= c || attempt >= 64) break;
    factor *= 1 - 2 ** -22;
  }
  return { clipped, norm, factor };
}
