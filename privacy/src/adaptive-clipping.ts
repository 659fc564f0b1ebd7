/**
 * @module
 * Adaptive clipping for DP-FedAvg: Andrew, Thakkar, McMahan, Ramaswamy, "Differentially Private Learning with
 * Adaptive Clipping", NeurIPS 2021, arXiv 1905.03871.
 *
 * Each sampled client reports b_i = 1[‖Δ_i‖ ≤ C] next to its clipped update. The server releases the CENTRED count
 * Σ(b_i − ½) with its own Gaussian noise and estimates the unclipped fraction as
 * b̃ = (Σ(b_i − ½) + N(0, σ_b²)) / m + ½ (m = expected clients per round), then moves the clip norm geometrically toward
 * the target quantile γ (Alg. 1):  C ← C · exp(−η_C · (b̃ − γ)).
 *
 * Privacy (§3.1, Theorem 1): adding or removing one device changes the centred count by exactly ½ (b − ½ = ±½), so
 * its sensitivity is ½ and the count is a Gaussian mechanism with noise multiplier 2σ_b. Together with the clipped sum
 * (sensitivity C, noise z_Δ·C) the pair is one Gaussian mechanism with z⁻² = z_Δ⁻² + (2σ_b)⁻². So for a total budget
 * z the update noise is z_Δ = (z⁻² − (2σ_b)⁻²)^(−½), and the accountant is fed z. This is what TF Privacy's
 * `QuantileEstimatorQuery` does (records ±½, `below_estimate + 0.5` after the noised average).
 *
 * Why the centred count rather than the plain one: the plain count Σ b_i has sensitivity 1, so with the same σ_b it
 * costs four times as much budget ((σ_b)⁻² instead of (2σ_b)⁻²), leaving less for the update. (Noising the plain count
 * while accounting (2σ_b)⁻² — this module before the fix — under-reports ε: with the demo's settings the real
 * multiplier was 1.614 instead of 1.621 and ε ≈ 4.010 instead of 3.984.) {@link noisyUnclippedFraction} is kept for
 * callers that noise the plain count; its share is z_Δ = (z⁻² − σ_b⁻²)^(−½), see {@link plainCountUpdateNoiseMultiplier}.
 *
 * Floating point: the float noise here is open to Mironov 2012's attack (see `discrete-sum.ts`); the aggregator's
 * default central mechanism releases the same centred count with exact discrete Gaussian noise instead
 * (`discreteNoisyUnclippedFraction`, same σ/Δ, same share of the budget).
 *
 * Pure module: randomness is injected.
 */
import { fillGaussian, type RandomBytes } from "./samplers/random.ts";

/** L2 sensitivity of the centred count Σ(b_i − ½) under adding or removing one device (§3.1). */
export const CENTRED_COUNT_SENSITIVITY = 0.5;

export interface AdaptiveClippingOptions {
  /** Target quantile γ of update norms to leave unclipped. @default 0.5 */
  targetQuantile?: number;
  /** Geometric learning rate η_C. @default 0.2 (the paper's choice) */
  learningRate?: number;
  /** Std of the noise on the unclipped count, σ_b. @default expectedClients / 20 (the paper's recommendation) */
  countNoiseStd?: number;
}

export interface AdaptiveClippingState {
  clipNorm: number;
  targetQuantile: number;
  learningRate: number;
  countNoiseStd: number;
}

export function createAdaptiveClipping(
  initialClipNorm: number,
  expectedClients: number,
  options: AdaptiveClippingOptions = {},
): AdaptiveClippingState {
  const targetQuantile = options.targetQuantile ?? 0.5;
  const learningRate = options.learningRate ?? 0.2;
  const countNoiseStd = options.countNoiseStd ?? expectedClients / 20;
  if (!(initialClipNorm > 0) || !Number.isFinite(initialClipNorm)) {
    throw new RangeError(`initialClipNorm must be a positive finite number, got ${initialClipNorm}`);
  }
  if (!(expectedClients > 0)) throw new RangeError(`expectedClients must be > 0, got ${expectedClients}`);
  if (!(targetQuantile > 0 && targetQuantile < 1)) {
    throw new RangeError(`targetQuantile must be in (0, 1), got ${targetQuantile}`);
  }
  if (!(learningRate > 0)) throw new RangeError(`learningRate must be > 0, got ${learningRate}`);
  if (!(countNoiseStd >= 0)) throw new RangeError(`countNoiseStd must be >= 0, got ${countNoiseStd}`);
  return { clipNorm: initialClipNorm, targetQuantile, learningRate, countNoiseStd };
}

/**
 * Noise multiplier left for the clipped sum when the count takes its share (Theorem 1): z_Δ = (z⁻² − (2σ_b)⁻²)^(−½).
 * Throws when σ_b is too small to fit inside the total budget z (2σ_b ≤ z).
 */
export function updateNoiseMultiplier(totalNoiseMultiplier: number, countNoiseStd: number): number {
  if (!(totalNoiseMultiplier > 0)) throw new RangeError(`noise multiplier must be > 0, got ${totalNoiseMultiplier}`);
  if (countNoiseStd === 0) throw new RangeError("adaptive clipping with a noiseless count is not private");
  const rest = totalNoiseMultiplier ** -2 - (2 * countNoiseStd) ** -2;
  if (!(rest > 0)) {
    throw new RangeError(
      `count noise σ_b=${countNoiseStd} is too small for total noise multiplier ${totalNoiseMultiplier}: need 2σ_b > z`,
    );
  }
  return rest ** -0.5;
}

/**
 * The update's share when the PLAIN count Σ b_i (sensitivity 1) is noised with σ_b: z_Δ = (z⁻² − σ_b⁻²)^(−½). Use it
 * only with {@link noisyUnclippedFraction}; the centred count ({@link noisyCentredUnclippedFraction}) pairs with
 * {@link updateNoiseMultiplier}.
 */
export function plainCountUpdateNoiseMultiplier(totalNoiseMultiplier: number, countNoiseStd: number): number {
  return updateNoiseMultiplier(totalNoiseMultiplier, countNoiseStd / 2);
}

/** Inputs of {@link noisyCentredUnclippedFraction}. */
export interface CentredCountInput {
  /** Σ b_i: reports with ‖Δ_i‖ ≤ C. */
  unclippedCount: number;
  /** n: reports aggregated this round (centring uses it; it is never released on its own). */
  reportCount: number;
  /** m = q·N, the fixed denominator. */
  expectedClients: number;
  /** σ_b. */
  countNoiseStd: number;
}

function checkCount(c: CentredCountInput): void {
  const { unclippedCount: u, reportCount: n, expectedClients: m, countNoiseStd: s } = c;
  if (!(Number.isSafeInteger(n) && n >= 0)) throw new RangeError(`reportCount must be an integer >= 0, got ${n}`);
  if (!(Number.isSafeInteger(u) && u >= 0 && u <= n)) {
    throw new RangeError(`unclippedCount must be an integer in [0, reportCount], got ${u}`);
  }
  if (!(m > 0 && Number.isFinite(m))) throw new RangeError(`expectedClients must be > 0, got ${m}`);
  if (!(s >= 0 && Number.isFinite(s))) throw new RangeError(`countNoiseStd must be finite and >= 0, got ${s}`);
}

/**
 * b̃ = (Σ(b_i − ½) + N(0, σ_b²)) / m + ½: the centred count of Andrew et al. §3.1 / TF Privacy
 * `QuantileEstimatorQuery` (sensitivity {@link CENTRED_COUNT_SENSITIVITY}), float Gaussian noise from `random`.
 */
export function noisyCentredUnclippedFraction(input: CentredCountInput, random?: RandomBytes): number {
  checkCount(input);
  const noise = new Float64Array(1);
  if (input.countNoiseStd > 0) fillGaussian(noise, input.countNoiseStd, random);
  return (input.unclippedCount - input.reportCount / 2 + noise[0]!) / input.expectedClients + 0.5;
}

/**
 * @deprecated Noises the PLAIN count (sensitivity 1): its privacy share is σ_b⁻², not (2σ_b)⁻², so it must be paired
 * with {@link plainCountUpdateNoiseMultiplier}, never with {@link updateNoiseMultiplier}. Prefer
 * {@link noisyCentredUnclippedFraction}.
 *
 * The noised unclipped fraction b̃ = (Σ b_i + N(0, σ_b²)) / m.
 */
export function noisyUnclippedFraction(
  unclippedCount: number,
  expectedClients: number,
  countNoiseStd: number,
  random?: RandomBytes,
): number {
  const noise = new Float64Array(1);
  if (countNoiseStd > 0) fillGaussian(noise, countNoiseStd, random);
  return (unclippedCount + noise[0]!) / expectedClients;
}

/** One geometric step of Alg. 1: C ← C · exp(−η_C (b̃ − γ)). */
export function nextClipNorm(state: AdaptiveClippingState, noisyFraction: number): AdaptiveClippingState {
  return {
    ...state,
    clipNorm: state.clipNorm * Math.exp(-state.learningRate * (noisyFraction - state.targetQuantile)),
  };
}
