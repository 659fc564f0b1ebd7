/**
 * @module
 * Adaptive clipping for DP-FedAvg: Andrew, Thakkar, McMahan, Ramaswamy, "Differentially Private Learning with
 * Adaptive Clipping", NeurIPS 2021, arXiv 1905.03871.
 *
 * Each sampled client reports b_i = 1[‖Δ_i‖ ≤ C] next to its clipped update. The server estimates the unclipped
 * fraction with its own Gaussian noise, b̃ = (Σ b_i + N(0, σ_b²)) / m (m = expected clients per round), and moves the
 * clip norm geometrically toward the target quantile γ (Alg. 1):  C ← C · exp(−η_C · (b̃ − γ)).
 *
 * Privacy (§3.1, Theorem 1): releasing the clipped sum with noise multiplier z_Δ and the count with σ_b is, together,
 * a Gaussian mechanism with noise multiplier z where z⁻² = z_Δ⁻² + (2σ_b)⁻², since the centred count b_i − ½ has
 * sensitivity ½. So for a total budget z, the update noise is z_Δ = (z⁻² − (2σ_b)⁻²)^(−½), and the accountant is fed z.
 * Pure module: randomness is injected.
 */
import { fillGaussian, type RandomBytes } from "./samplers/random.ts";

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

/** The noised unclipped fraction b̃ = (Σ b_i + N(0, σ_b²)) / m. */
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
