/**
 * @module
 * The (ε, δ) that separates two one-dimensional Gaussians: the smallest ε ≥ 0 with
 * H_{e^ε}(P ‖ Q) ≤ δ and H_{e^ε}(Q ‖ P) ≤ δ for P = N(μ₁, σ₁²), Q = N(μ₀, σ₀²). This is the quantity the one-shot
 * audit of Andrew et al. 2024 ("One-shot Empirical Privacy Estimation for Federated Learning", ICLR 2024, arXiv
 * 2302.03098, §3 and Alg. 2) reads off its two fitted Gaussians: no test of a mechanism that outputs N(μ₀, σ₀²)
 * without the canary and N(μ₁, σ₁²) with it can beat this (ε, δ). Pure math.
 *
 * H_{e^ε}(P ‖ Q) = P(S) − e^ε Q(S) with S = {x : log p(x) − log q(x) > ε}. The log-likelihood ratio is a quadratic in
 * x, so S is a half-line (equal variances), an interval, or the complement of one, and P(S), Q(S) are sums of normal
 * CDFs. With σ₀ = σ₁ = σ this is the Gaussian mechanism with sensitivity |μ₁ − μ₀| (Balle & Wang 2018, arXiv
 * 1805.06530 Thm. 8).
 */
import { normalCdf } from "../gaussian-mechanism/special.ts";

/** A one-dimensional Gaussian N(mean, std²). */
export interface Gaussian1d {
  mean: number;
  /** Standard deviation, > 0. */
  std: number;
}

function checkGaussian(g: Gaussian1d, name: string): void {
  if (!Number.isFinite(g.mean)) throw new RangeError(`${name}.mean must be finite, got ${g.mean}`);
  if (!(g.std > 0 && Number.isFinite(g.std))) throw new RangeError(`${name}.std must be > 0 and finite, got ${g.std}`);
}

/** Φ(z) with Φ(±∞) exact (the log-space erfc is for finite arguments). */
function phi(z: number): number {
  if (z === Number.POSITIVE_INFINITY) return 1;
  if (z === Number.NEGATIVE_INFINITY) return 0;
  return normalCdf(z);
}

/** P(X ∈ (lo, hi)) for X ~ N(mean, std²), evaluated on the side of the mean that keeps precision in the tails. */
function intervalMass(g: Gaussian1d, lo: number, hi: number): number {
  if (!(hi > lo)) return 0;
  const a = (lo - g.mean) / g.std;
  const b = (hi - g.mean) / g.std;
  if (a >= 0) return Math.max(0, phi(-a) - phi(-b)); // both in the upper half: use upper tails
  return Math.max(0, phi(b) - phi(a));
}

/** The set {x : ax² + bx + c > 0} as disjoint open intervals (±∞ allowed). */
function positiveSet(a: number, b: number, c: number): Array<[number, number]> {
  const inf = Number.POSITIVE_INFINITY;
  if (a === 0) {
    if (b === 0) return c > 0 ? [[-inf, inf]] : [];
    const r = -c / b;
    return b > 0 ? [[r, inf]] : [[-inf, r]];
  }
  const disc = b * b - 4 * a * c;
  if (disc <= 0) return a > 0 ? [[-inf, inf]] : [];
  // Numerically stable roots (no cancellation when a ≈ 0, the near-equal-variance case).
  const q = -0.5 * (b + (b >= 0 ? 1 : -1) * Math.sqrt(disc));
  const r1 = q / a;
  const r2 = c / q;
  const lo = Math.min(r1, r2);
  const hi = Math.max(r1, r2);
  return a > 0
    ? [
        [-inf, lo],
        [hi, inf],
      ]
    : [[lo, hi]];
}

/** H_{e^ε}(P ‖ Q) = sup_S P(S) − e^ε Q(S) for two 1-D Gaussians (exact up to the normal CDF's accuracy). */
export function gaussianHockeyStick(epsilon: number, p: Gaussian1d, q: Gaussian1d): number {
  checkGaussian(p, "p");
  checkGaussian(q, "q");
  if (epsilon === Number.POSITIVE_INFINITY) return 0;
  // log p(x) − log q(x) − ε = a x² + b x + c
  const vp = p.std * p.std;
  const vq = q.std * q.std;
  const a = 1 / (2 * vq) - 1 / (2 * vp);
  const b = p.mean / vp - q.mean / vq;
  const c = (q.mean * q.mean) / (2 * vq) - (p.mean * p.mean) / (2 * vp) + Math.log(q.std / p.std) - epsilon;
  const eEps = Math.exp(epsilon);
  let delta = 0;
  for (const [lo, hi] of positiveSet(a, b, c)) {
    delta += intervalMass(p, lo, hi) - eEps * intervalMass(q, lo, hi);
  }
  return Math.min(1, Math.max(0, delta));
}

/**
 * The smallest ε ≥ 0 such that distinguishing `n0` from `n1` is (ε, δ)-indistinguishable in both directions
 * (bisection to 1e-12 relative; returns the side that satisfies δ). `Infinity` when no ε up to 1e6 does.
 */
export function gaussianPairEpsilon(delta: number, n0: Gaussian1d, n1: Gaussian1d): number {
  if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
  checkGaussian(n0, "n0");
  checkGaussian(n1, "n1");
  const worst = (eps: number) => Math.max(gaussianHockeyStick(eps, n1, n0), gaussianHockeyStick(eps, n0, n1));
  if (worst(0) <= delta) return 0;
  let lo = 0;
  let hi = 1;
  while (worst(hi) > delta) {
    lo = hi;
    hi *= 2;
    if (hi > 1e6) return Number.POSITIVE_INFINITY;
  }
  for (let i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (worst(mid) > delta) lo = mid;
    else hi = mid;
  }
  return hi;
}
