/**
 * @module
 * BENCHMARK BASELINE ONLY: analysis/pld.ts as it was before the PLD/ledger speed-up (privacy-math branch), kept verbatim
 * (imports aside) so `npm run bench` can time today's algorithm against the new one in the same run. Not used by the
 * library.
 *
 * Privacy loss distributions (PLDs) of the Poisson-subsampled Gaussian mechanism, composed with the FFT. Pure math.
 *
 * Sources:
 * - PLD accounting with FFT composition: Koskela, Jälkö, Honkela 2020, "Computing Tight Differential Privacy Guarantees
 *   Using FFT" (arXiv 1906.03049) and Koskela, Jälkö, Prediger, Honkela 2021 (arXiv 2006.07134).
 * - Pessimistic discretisation by "connect the dots": Doroshenko, Ghazi, Kamath, Kumar, Manurangsi 2022 (arXiv
 *   2207.04380 §3, Alg. 1). Given the exact privacy profile δ(ε) of one step at grid points ε_i = i·h, the PLD with atoms
 *   ω_i = e^{ε_i}(s_i − s_{i−1}) (s_i the slope of δ against e^ε between grid points; s_{lo−1} the chord to (0, 1);
 *   s_hi = 0) and infinity mass δ(ε_hi) has the piecewise-linear interpolation of δ as its profile. δ is convex in e^ε,
 *   so that profile is ≥ the true one everywhere: a valid dominating pair (Σ ω_i e^{−ε_i} = (1 − δ(ε_lo))/e^{ε_lo} ≤ 1
 *   because δ(ε) ≥ 1 − e^ε). Compositions of dominating pairs dominate the composition (Zhu, Dong, Wang 2022,
 *   arXiv 2106.08567 Thm. 10), so the result is never optimistic.
 * - Exact profile of one step (both adjacency directions, Poisson sampling with rate q, noise σ, sensitivity 1), from
 *   the hockey-stick divergence of mixtures (Zhu, Dong, Wang 2022 §5; Balle, Barthe, Gaboardi 2018 arXiv 1807.01647):
 *   remove: δ(ε) = 1 − e^ε for e^ε ≤ 1 − q, else q·δ_G(log(1 + (e^ε − 1)/q));
 *   add:    δ(ε) = 0 for e^ε ≥ 1/(1 − q), else (1 − (1 − q)e^ε)·δ_G(log(q e^ε/(1 − (1 − q)e^ε)));
 *   δ_G the Gaussian profile of arXiv 1805.06530 Thm. 8. Both directions are composed separately and ε is their max.
 * - Composition is convolution of PLDs; after each convolution the right tail (mass ≤ τ) moves to the infinity mass and
 *   the left tail (mass ≤ τ) moves up onto the lowest kept loss. Both moves make the loss stochastically larger, and
 *   δ(ε) = ω_∞ + Σ ω(ℓ)(1 − e^{ε−ℓ})₊ is monotone in that order, so truncation stays pessimistic. FFT round-off is
 *   bounded (see `convolve`) and that bound is added to the infinity mass as well; negative round-off is zeroed (which
 *   only adds mass).
 */
import { gaussianDelta } from "@fedge/privacy";
import { convolve } from "./fft.ts";

/** A discrete PLD on the grid ℓ = (offset + i)·h, plus mass at +∞. */
export interface Pmf {
  /** Grid index of `probs[0]`. */
  offset: number;
  probs: Float64Array;
  infinityMass: number;
}

/** Neighbouring relation direction: `remove` (P has the extra record's mixture) or `add` (Q has it). */
export type PldDirection = "remove" | "add";

/** The exact privacy profile δ(ε) of one Poisson-subsampled Gaussian step in the given direction. */
export function subsampledGaussianDelta(epsilon: number, q: number, sigma: number, direction: PldDirection): number {
  if (q === 1) return gaussianDelta(epsilon, sigma);
  if (direction === "remove") {
    if (epsilon <= Math.log1p(-q)) return -Math.expm1(epsilon);
    return q * gaussianDelta(Math.log1p(Math.expm1(epsilon) / q), sigma);
  }
  if (epsilon >= -Math.log1p(-q)) return 0;
  const c = 1 - (1 - q) * Math.exp(epsilon);
  return c * gaussianDelta(Math.log(q) + epsilon - Math.log(c), sigma);
}

/** Options for building and composing PLDs. */
export interface PldParams {
  /** Grid spacing h of privacy-loss values. */
  discretization: number;
  /** Tail mass τ cut per truncation (pessimistically, see module doc). */
  tailMass: number;
}

/** Smallest grid range [iLo, iHi] outside which the connect-the-dots PLD loses at most τ of precision. */
function gridRange(
  f: (eps: number) => number,
  h: number,
  tau: number,
  lowerExact: number | null,
  upperZero: number | null,
) {
  // upper: smallest ε with δ(ε) ≤ τ (doubling, then bisection to ~h)
  let hi: number;
  if (upperZero !== null && f(upperZero) <= tau) {
    let lo = Math.min(0, upperZero);
    hi = upperZero;
    while (hi - lo > h) {
      const mid = (lo + hi) / 2;
      if (f(mid) <= tau) hi = mid;
      else lo = mid;
    }
  } else {
    let lo = 0;
    hi = 1;
    while (f(hi) > tau) {
      lo = hi;
      hi *= 2;
      if (hi > 1e6) throw new RangeError("PLD: privacy loss tail does not decay (noise multiplier too small?)");
    }
    while (hi - lo > h) {
      const mid = (lo + hi) / 2;
      if (f(mid) <= tau) hi = mid;
      else lo = mid;
    }
  }
  // lower: largest ε with δ(ε) − (1 − e^ε) ≤ τ (the chord to (0, 1) then deviates from the truth by ≤ τ)
  let lo: number;
  if (lowerExact !== null) {
    lo = lowerExact;
  } else {
    const gap = (eps: number) => f(eps) + Math.expm1(eps);
    let a = 0;
    lo = -1;
    while (gap(lo) > tau) {
      a = lo;
      lo *= 2;
      if (lo < -1e6) throw new RangeError("PLD: privacy loss lower tail does not decay");
    }
    while (a - lo > 0.05) {
      const mid = (a + lo) / 2;
      if (gap(mid) > tau) a = mid;
      else lo = mid;
    }
  }
  return { iLo: Math.floor(lo / h), iHi: Math.max(Math.ceil(hi / h), Math.floor(lo / h) + 1) };
}

/**
 * Connect-the-dots PLD (arXiv 2207.04380 Alg. 1) of a mechanism with privacy profile `f`, on grid i·h, i ∈ [iLo, iHi].
 *
 * Numerics: for ε < 0, δ(ε) = 1 − e^ε + g(ε) with g(ε) = e^ε·δ_rev(−ε), where δ_rev is the profile of the reversed pair
 * (H_γ(P‖Q) = 1 − γ + γ·H_{1/γ}(Q‖P)). The linear part 1 − e^ε has no curvature, so slopes there are taken from g,
 * which is small and known to full relative precision; second differences of δ itself would cancel catastrophically.
 */
export function connectTheDots(
  f: (eps: number) => number,
  fRev: (eps: number) => number,
  h: number,
  iLo: number,
  iHi: number,
): Pmf {
  const n = iHi - iLo + 1;
  const useG = (i: number) => iLo + i <= 0; // grid point ε_i ≤ 0
  const v = new Float64Array(n); // g_i where useG(i), else δ_i
  for (let i = 0; i < n; i++) {
    const eps = (iLo + i) * h;
    v[i] = useG(i) ? Math.exp(eps) * fRev(-eps) : f(eps);
  }
  const valueAs = (i: number, g: boolean): number => {
    // δ_i in the representation `g` (g = δ − 1 + e^ε)
    const eps = (iLo + i) * h;
    if (useG(i) === g) return v[i]!;
    return g ? v[i]! + Math.expm1(eps) : v[i]! - Math.expm1(eps);
  };
  const probs = new Float64Array(n);
  const em1 = Math.expm1(h);
  const x0 = Math.exp(iLo * h);
  // previous slope, kept in g-representation when `prevG` (slope of δ = slope of g − 1)
  let prevG = true;
  let prevSlope = valueAs(0, true) / x0; // chord from (0, 1) to (x_lo, δ_lo): slope of g is g_lo / x_lo
  for (let i = 0; i < n; i++) {
    const xi = Math.exp((iLo + i) * h);
    let g: boolean;
    let slope: number;
    if (i < n - 1) {
      g = useG(i + 1);
      slope = (valueAs(i + 1, g) - valueAs(i, g)) / (xi * em1);
    } else {
      g = false;
      slope = 0; // flat after the last grid point (its δ becomes the infinity mass)
    }
    const diff = g === prevG ? slope - prevSlope : g ? slope - 1 - prevSlope : slope - (prevSlope - 1);
    const w = xi * diff;
    probs[i] = w > 0 ? w : 0;
    prevSlope = slope;
    prevG = g;
  }
  return trimZeros({ offset: iLo, probs, infinityMass: valueAs(n - 1, false) });
}

/** PLD of one Poisson-subsampled Gaussian step (rate q, noise multiplier σ) in one direction. */
export function subsampledGaussianPmf(q: number, sigma: number, direction: PldDirection, params: PldParams): Pmf {
  const { discretization: h, tailMass: tau } = params;
  const reverse: PldDirection = direction === "remove" ? "add" : "remove";
  const f = (eps: number) => subsampledGaussianDelta(eps, q, sigma, direction);
  const fRev = (eps: number) => subsampledGaussianDelta(eps, q, sigma, reverse);
  const lowerExact = q < 1 && direction === "remove" ? Math.log1p(-q) : null;
  const upperZero = q < 1 && direction === "add" ? -Math.log1p(-q) : null;
  const { iLo, iHi } = gridRange(f, h, tau, lowerExact, upperZero);
  return connectTheDots(f, fRev, h, iLo, iHi);
}

function trimZeros(p: Pmf): Pmf {
  let a = 0;
  let b = p.probs.length;
  while (a < b && p.probs[a] === 0) a++;
  while (b > a && p.probs[b - 1] === 0) b--;
  if (a === 0 && b === p.probs.length) return p;
  if (a === b) return { offset: 0, probs: new Float64Array(0), infinityMass: p.infinityMass };
  return { offset: p.offset + a, probs: p.probs.slice(a, b), infinityMass: p.infinityMass };
}

/** Pessimistic tail truncation: left tail (≤ τ) moves up onto the first kept atom, right tail (≤ τ) goes to +∞. */
export function truncateTails(p: Pmf, tau: number): Pmf {
  const probs = p.probs;
  let a = 0;
  let left = 0;
  while (a < probs.length - 1 && left + probs[a]! <= tau) left += probs[a++]!;
  let b = probs.length;
  let right = 0;
  while (b - 1 > a && right + probs[b - 1]! <= tau) right += probs[--b]!;
  const kept = probs.slice(a, b);
  if (kept.length > 0) kept[0] = kept[0]! + left;
  return trimZeros({ offset: p.offset + a, probs: kept, infinityMass: p.infinityMass + right });
}

/** Composition of two PLDs on the same grid (convolution), then pessimistic truncation. */
export function composePmf(x: Pmf, y: Pmf, tau: number): Pmf {
  if (x.probs.length === 0 || y.probs.length === 0) {
    return { offset: 0, probs: new Float64Array(0), infinityMass: 1 - (1 - x.infinityMass) * (1 - y.infinityMass) };
  }
  const { out, errorBound } = convolve(x.probs, y.probs);
  for (let i = 0; i < out.length; i++) if (out[i]! < 0) out[i] = 0;
  const infinityMass = Math.min(1, 1 - (1 - x.infinityMass) * (1 - y.infinityMass) + errorBound);
  return truncateTails({ offset: x.offset + y.offset, probs: out, infinityMass }, tau);
}

/** `count`-fold self-composition by repeated squaring (O(log count) convolutions). */
export function selfComposePmf(p: Pmf, count: number, tau: number): Pmf {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`count must be a positive integer, got ${count}`);
  let result: Pmf | null = null;
  let base = p;
  let k = count;
  for (;;) {
    if (k & 1) result = result ? composePmf(result, base, tau) : base;
    k = Math.floor(k / 2);
    if (k === 0) break;
    base = composePmf(base, base, tau);
  }
  return result!;
}

/** δ(ε) = ω_∞ + Σ ω(ℓ)(1 − e^{ε−ℓ})₊ of a discrete PLD. */
export function pmfDelta(p: Pmf, epsilon: number, h: number): number {
  let d = p.infinityMass;
  for (let i = p.probs.length - 1; i >= 0; i--) {
    const l = (p.offset + i) * h;
    if (l <= epsilon) break;
    d += p.probs[i]! * -Math.expm1(epsilon - l);
  }
  return d;
}

/** The smallest ε ≥ 0 with δ(ε) ≤ `delta` for a discrete PLD (exact for the discrete PLD; `Infinity` if ω_∞ > δ). */
export function pmfEpsilon(p: Pmf, delta: number, h: number): number {
  if (p.infinityMass > delta) return Number.POSITIVE_INFINITY;
  const probs = p.probs;
  const em = Math.exp(-h);
  // S = Σ_{k≥j} p_k, A = Σ_{k≥j} p_k e^{−(k−j)h}; δ(ℓ_{j−1}) = ω_∞ + S − e^{−h}A.
  let s = 0;
  let a = 0;
  for (let j = probs.length; j >= 1; j--) {
    if (j < probs.length) {
      s += probs[j]!;
      a = probs[j]! + em * a;
    }
    const dPrev = p.infinityMass + s - em * a;
    if (dPrev > delta) {
      // ε ∈ [ℓ_{j−1}, ℓ_j]: ω_∞ + S − e^{ε−ℓ_j}A = δ
      const eps = (p.offset + j) * h + Math.log((p.infinityMass + s - delta) / a);
      return Math.max(0, eps);
    }
  }
  // ε below the lowest atom: ω_∞ + S₀ − e^{ε−ℓ₀}A₀ = δ
  s += probs[0] ?? 0;
  a = (probs[0] ?? 0) + em * a;
  if (a === 0) return 0;
  return Math.max(0, p.offset * h + Math.log((p.infinityMass + s - delta) / a));
}
