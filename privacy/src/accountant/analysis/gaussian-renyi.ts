/**
 * @module
 * Rényi divergence of two isotropic Gaussians with different variances, continuous and on the integer lattice. Pure.
 *
 * - Continuous (Gil, Alajaji, Linder 2013, "Rényi divergence measures for commonly used univariate continuous
 *   distributions", Information Sciences 249, Table 2, normal row; van Erven & Harremoës 2014, "Rényi Divergence and
 *   Kullback-Leibler Divergence", IEEE Trans. Inf. Theory 60(7), §II for the definition
 *   D_α(P‖Q) = 1/(α−1)·ln ∫ p^α q^{1−α}). For P = N(μ₁, σ₁²I_d), Q = N(μ₂, σ₂²I_d) and α > 1:
 *     σ_α² = α·σ₂² + (1−α)·σ₁²,
 *     D_α(P‖Q) = d·[ln(σ₂/σ₁) + ln(σ₂²/σ_α²)/(2(α−1))] + α‖μ₁−μ₂‖²/(2σ_α²)   when σ_α² > 0,
 *   and +∞ otherwise (the integrand's exponent is then a convex quadratic: the integral diverges). The d coordinates
 *   are independent, so their divergences add; the mean terms add up to ‖μ₁−μ₂‖².
 * - On the integer lattice, N_Z(k, σ₁²) against N_Z(0, σ₂²) per coordinate with k integer: the sum over x of
 *   p^α q^{1−α} is a Gaussian of variance v = σ₁²σ₂²/σ_α² sampled on a shifted lattice, and Poisson summation gives
 *   Σ_x e^{−(x−c)²/(2v)} ≤ √(2πv)·θ(v), θ(v) = 1 + 2Σ_{j≥1} e^{−2π²vj²}, while each normaliser is
 *   Σ_x e^{−x²/(2σ²)} = √(2π)σ·Σ_j e^{−2π²σ²j²} ∈ [√(2π)σ, √(2π)σ·θ(σ²)] (Canonne, Kamath, Steinke 2020, arXiv
 *   2004.00010 §2.1 uses the same identity). So the lattice divergence is at most the continuous one plus
 *   d·[ln θ(v)/(α−1) + ln θ(σ₂²)] ({@link latticeGaussianRenyiSlack}); e^{−2π²} ≈ 2.7·10⁻⁹ makes it negligible from
 *   v ≥ 1 on.
 */

/** Two isotropic Gaussians in d coordinates, P = N(μ₁, σ₁²I) and Q = N(μ₂, σ₂²I). */
export interface IsotropicGaussianPair {
  /** d ≥ 1, the coordinates. */
  dimension: number;
  /** ‖μ₁ − μ₂‖² ≥ 0. */
  meanDistanceSquared: number;
  /** σ₁² > 0, P's variance per coordinate. */
  variance1: number;
  /** σ₂² > 0, Q's variance per coordinate. */
  variance2: number;
}

function checkPair(p: IsotropicGaussianPair, order: number): void {
  if (!(p.dimension >= 1) || !Number.isFinite(p.dimension)) {
    throw new RangeError(`dimension must be finite and >= 1, got ${p.dimension}`);
  }
  if (!(p.meanDistanceSquared >= 0) || !Number.isFinite(p.meanDistanceSquared)) {
    throw new RangeError(`meanDistanceSquared must be finite and >= 0, got ${p.meanDistanceSquared}`);
  }
  for (const [name, v] of [
    ["variance1", p.variance1],
    ["variance2", p.variance2],
  ] as const) {
    if (!(v > 0) || !Number.isFinite(v)) throw new RangeError(`${name} must be finite and > 0, got ${v}`);
  }
  if (!(order > 1)) throw new RangeError(`Rényi order must be > 1, got ${order}`);
}

/** σ_α² = α·σ₂² + (1−α)·σ₁²: D_α(P‖Q) is finite exactly when it is > 0. */
export function renyiMixedVariance(p: IsotropicGaussianPair, order: number): number {
  return order * p.variance2 + (1 - order) * p.variance1;
}

/** D_α(N(μ₁, σ₁²I) ‖ N(μ₂, σ₂²I)) in nats for α > 1 (closed form of the module header; +∞ where σ_α² ≤ 0). */
export function isotropicGaussianRenyi(p: IsotropicGaussianPair, order: number): number {
  checkPair(p, order);
  if (order === Number.POSITIVE_INFINITY) {
    return p.variance1 === p.variance2 && p.meanDistanceSquared === 0 ? 0 : Number.POSITIVE_INFINITY;
  }
  const mixed = renyiMixedVariance(p, order);
  if (!(mixed > 0)) return Number.POSITIVE_INFINITY;
  // ln(σ₂/σ₁) + ln(σ₂²/σ_α²)/(2(α−1)), written with log1p so that nearly equal variances keep their precision:
  // σ₂²/σ_α² = 1/(1 + (α−1)(1 − σ₁²/σ₂²)).
  const ratio = p.variance1 / p.variance2;
  const perCoordinate = -0.5 * Math.log(ratio) - Math.log1p((order - 1) * (1 - ratio)) / (2 * (order - 1));
  return p.dimension * perCoordinate + (order * p.meanDistanceSquared) / (2 * mixed);
}

/** θ(v) = Σ_{j∈Z} e^{−2π²vj²} = 1 + 2Σ_{j≥1} e^{−2π²vj²}: the lattice sum of a Gaussian of variance v over √(2πv). */
export function latticeTheta(variance: number): number {
  let sum = 0;
  for (let j = 1; j < 64; j++) {
    const term = Math.exp(-2 * Math.PI * Math.PI * variance * j * j);
    sum += term;
    if (term < 1e-18 * (1 + sum)) break;
  }
  return 1 + 2 * sum;
}

/**
 * How much D_α of the integer-lattice pair (N_Z(k, σ₁²) against N_Z(0, σ₂²) per coordinate, k an integer vector)
 * can exceed the continuous {@link isotropicGaussianRenyi}: d·[ln θ(v)/(α−1) + ln θ(σ₂²)] with v = σ₁²σ₂²/σ_α² (module
 * header). +∞ where σ_α² ≤ 0.
 */
export function latticeGaussianRenyiSlack(p: IsotropicGaussianPair, order: number): number {
  checkPair(p, order);
  const mixed = renyiMixedVariance(p, order);
  if (!(mixed > 0) || order === Number.POSITIVE_INFINITY) return Number.POSITIVE_INFINITY;
  const v = (p.variance1 * p.variance2) / mixed;
  return p.dimension * (Math.log(latticeTheta(v)) / (order - 1) + Math.log(latticeTheta(p.variance2)));
}
