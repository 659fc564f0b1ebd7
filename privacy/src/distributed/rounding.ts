/**
 * @module
 * Conditional randomized rounding to the integer grid (Kairouz, Liu, Steinke 2021, arXiv 2102.06387 §4.1 and
 * Theorem 1's sensitivity bound): every coordinate y_i goes to ⌊y_i⌋ + Bernoulli(y_i − ⌊y_i⌋), which is unbiased, and
 * the whole vector is rounded again until its squared norm is within the bound
 *   ‖k‖₂² ≤ min{ (Δ + √d)², Δ² + d/4 + √(2 ln(1/β))·(Δ + √d/2) }
 * for an input of norm at most Δ. The first term holds always (each coordinate moves by less than 1); the second holds
 * for one rounding with probability ≥ 1 − β, so the expected number of tries is at most 1/(1 − β) (KLS21 use
 * β = e^(−1/2), 2.54 tries at most on average). The check is exact integer arithmetic against the integer
 * B = ⌊bound⌋, so the rounded vector's L2 sensitivity is √B whatever the float error before it: that is the number
 * the accountant is charged with.
 */
import type { RandomBytes } from "../samplers/random.ts";

/** β = e^(−1/2), the conditional rounding's failure probability per try used by KLS21's experiments. */
export const DEFAULT_ROUNDING_BETA = Math.exp(-0.5);

/** Most tries before {@link conditionalRound} gives up (reached with probability ≤ β^this). */
export const MAX_ROUNDING_TRIES = 1000;

/**
 * B, the integer bound on ‖k‖₂² after conditional randomized rounding of a vector of norm ≤ `norm` (grid units) in
 * `dimension` coordinates with failure probability `beta` per try (β = 0: the unconditional bound (Δ + √d)²). Rounded
 * down (the enforced bound may only be smaller than the formula).
 */
export function roundedNormBound(norm: number, dimension: number, beta: number): number {
  if (!(norm >= 0) || !Number.isFinite(norm)) throw new RangeError(`norm must be finite and >= 0, got ${norm}`);
  if (!Number.isSafeInteger(dimension) || dimension < 1) {
    throw new RangeError(`dimension must be an integer >= 1, got ${dimension}`);
  }
  if (!(beta >= 0 && beta < 1)) throw new RangeError(`beta must be in [0, 1), got ${beta}`);
  const sqrtD = Math.sqrt(dimension);
  let bound = (norm + sqrtD) ** 2;
  if (beta > 0) {
    const conditional = norm * norm + dimension / 4 + Math.sqrt(2 * Math.log(1 / beta)) * (norm + sqrtD / 2);
    bound = Math.min(bound, conditional);
  }
  const b = Math.floor(bound * (1 - 2 ** -40)); // shave the float error of the formula: only ever smaller
  if (!(b < 2 ** 53)) throw new RangeError(`rounded norm bound ${bound} is not exact in float64; use a smaller scale`);
  return b;
}

/**
 * Rounds `y` (grid units) to integers by conditional randomized rounding: coordinate-wise unbiased coins from
 * `random` (one 32-bit word per coordinate; the coin's bias from the 32-bit resolution is below 2⁻³²), again until
 * Σk_i² ≤ `bound`. Returns the integers and the number of tries. Throws `RangeError` after
 * {@link MAX_ROUNDING_TRIES} failures (an input far above the norm the bound was made for).
 */
export function conditionalRound(
  y: Float64Array,
  bound: number,
  random: RandomBytes,
): { rounded: Int32Array; tries: number } {
  if (!Number.isSafeInteger(bound) || bound < 0)
    throw new RangeError(`bound must be a safe integer >= 0, got ${bound}`);
  const n = y.length;
  for (let i = 0; i < n; i++) {
    const v = y[i]!;
    if (!Number.isFinite(v) || Math.abs(v) >= 2 ** 31 - 1) {
      throw new RangeError(`coordinate ${i} (${v}) is not finite or does not fit a 32-bit integer`);
    }
  }
  const out = new Int32Array(n);
  const coins = new Uint32Array(Math.min(n, 16384));
  const coinBytes = new Uint8Array(coins.buffer);
  for (let tries = 1; tries <= MAX_ROUNDING_TRIES; tries++) {
    let sq = 0; // exact: integer partial sums stay ≤ bound + (2³¹)² < 2⁶³ only while ≤ bound; we stop above it
    let ok = true;
    for (let start = 0; start < n && ok; start += coins.length) {
      const count = Math.min(coins.length, n - start);
      random(count === coins.length ? coinBytes : coinBytes.subarray(0, 4 * count));
      for (let j = 0; j < count; j++) {
        const v = y[start + j]!;
        const floor = Math.floor(v);
        const k = floor + (coins[j]! < (v - floor) * 4294967296 ? 1 : 0);
        out[start + j] = k;
        sq += k * k;
        if (sq > bound) {
          ok = false;
          break;
        }
      }
    }
    if (ok) return { rounded: out, tries };
  }
  throw new RangeError(
    `conditional rounding failed ${MAX_ROUNDING_TRIES} times: the input's norm is above what the bound ${bound} allows`,
  );
}
