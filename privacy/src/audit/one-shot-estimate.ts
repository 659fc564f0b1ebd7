/**
 * @module
 * The one-shot empirical privacy estimate of Andrew, Kairouz, Oh, Oprea, McMahan, Suriyakumar, "One-shot Empirical
 * Privacy Estimation for Federated Learning" (ICLR 2024, arXiv 2302.03098, Alg. 2). k canary clients, each
 * contributing a random unit direction, are inserted into training; k' more random directions are drawn and never
 * inserted. After the run, the cosine of the final model delta (final − initial, flattened) with each direction is
 * taken. In high dimension the never-inserted cosines are ≈ N(0, 1/d), and each inserted canary shifts its own
 * cosine by its share of the delta; the paper fits a Gaussian to each set and reports the ε of distinguishing the two
 * Gaussians at δ (`gaussian-pair-epsilon.ts`). Pure math; the randomness of the bootstrap is injected.
 *
 * The interval is a percentile bootstrap over canaries (not the paper's method; the paper reports the point
 * estimate): both cosine sets are resampled with replacement, ε̂ is recomputed, and the α/2 and 1 − α/2 quantiles are
 * reported. It measures the estimate's sampling error from the finite number of canaries, nothing more.
 */
import { cryptoRandomBytes, uniform53, type RandomBytes } from "../samplers/random.ts";
import { gaussianPairEpsilon, type Gaussian1d } from "./gaussian-pair-epsilon.ts";

/** Input of {@link estimateEpsilonOneShot}. */
export interface OneShotAuditInput {
  /** Cosines of the final model delta with the canaries that were inserted (k ≥ 2). */
  observed: ArrayLike<number>;
  /** Cosines with canaries drawn the same way but never inserted (k' ≥ 2). */
  unobserved: ArrayLike<number>;
  /** δ at which ε̂ is read. */
  delta: number;
  /**
   * Coverage of the bootstrap interval.
   * @default 0.95
   */
  confidence?: number;
  /**
   * Bootstrap resamples (0 gives the point estimate as both ends).
   * @default 1000
   */
  resamples?: number;
  /**
   * Randomness of the bootstrap's resampling.
   * @default cryptoRandomBytes
   */
  random?: RandomBytes;
}

/** The estimate and the Gaussians it came from. */
export interface OneShotAuditEstimate {
  /** ε̂ of distinguishing `unobserved` from `observed` at `delta`. */
  epsilon: number;
  /** Percentile-bootstrap interval of ε̂ over canaries. */
  interval: { lower: number; upper: number; confidence: number; resamples: number };
  delta: number;
  /** Gaussian fitted to the never-inserted cosines (N(μ₀, σ₀²)). */
  unobserved: Gaussian1d & { count: number };
  /** Gaussian fitted to the inserted cosines (N(μ₁, σ₁²)). */
  observed: Gaussian1d & { count: number };
}

/** Maximum-likelihood Gaussian (mean, population standard deviation) of `xs`. */
export function fitGaussian(xs: ArrayLike<number>): Gaussian1d {
  const n = xs.length;
  if (n < 2) throw new RangeError(`a Gaussian needs at least 2 samples, got ${n}`);
  let mean = 0;
  for (let i = 0; i < n; i++) {
    const x = xs[i]!;
    if (!Number.isFinite(x)) throw new RangeError(`sample ${i} is not finite: ${x}`);
    mean += x;
  }
  mean /= n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (xs[i]! - mean) ** 2;
  return { mean, std: Math.sqrt(ss / n) };
}

function epsilonOf(observed: ArrayLike<number>, unobserved: ArrayLike<number>, delta: number): number {
  const n0 = fitGaussian(unobserved);
  const n1 = fitGaussian(observed);
  if (n0.std === 0 || n1.std === 0) return Number.POSITIVE_INFINITY; // point masses: perfectly distinguishable unless equal
  return gaussianPairEpsilon(delta, n0, n1);
}

function resample(xs: ArrayLike<number>, random: RandomBytes): Float64Array {
  const out = new Float64Array(xs.length);
  for (let i = 0; i < out.length; i++) out[i] = xs[Math.floor(uniform53(random) * xs.length)]!;
  return out;
}

/** The q-quantile of sorted values (linear interpolation, as numpy's default). */
function quantile(sorted: Float64Array, q: number): number {
  const pos = q * (sorted.length - 1);
  const i = Math.floor(pos);
  const f = pos - i;
  if (i + 1 >= sorted.length) return sorted[sorted.length - 1]!;
  const a = sorted[i]!;
  const b = sorted[i + 1]!;
  return f === 0 ? a : a + f * (b - a);
}

/** ε̂ with a bootstrap interval (see the module header). */
export function estimateEpsilonOneShot(input: OneShotAuditInput): OneShotAuditEstimate {
  const { observed, unobserved, delta } = input;
  const confidence = input.confidence ?? 0.95;
  const resamples = input.resamples ?? 1000;
  const random = input.random ?? cryptoRandomBytes;
  if (!(confidence > 0 && confidence < 1)) throw new RangeError(`confidence must be in (0, 1), got ${confidence}`);
  if (!Number.isSafeInteger(resamples) || resamples < 0)
    throw new RangeError(`resamples must be an integer >= 0, got ${resamples}`);
  const n0 = fitGaussian(unobserved);
  const n1 = fitGaussian(observed);
  const epsilon = epsilonOf(observed, unobserved, delta);
  let lower = epsilon;
  let upper = epsilon;
  if (resamples > 0) {
    const eps = new Float64Array(resamples);
    for (let b = 0; b < resamples; b++)
      eps[b] = epsilonOf(resample(observed, random), resample(unobserved, random), delta);
    eps.sort();
    lower = quantile(eps, (1 - confidence) / 2);
    upper = quantile(eps, 1 - (1 - confidence) / 2);
  }
  return {
    epsilon,
    interval: { lower, upper, confidence, resamples },
    delta,
    unobserved: { ...n0, count: unobserved.length },
    observed: { ...n1, count: observed.length },
  };
}
