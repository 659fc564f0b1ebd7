/**
 * @module
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
 * - A run of T equal steps is composed in one transform, whatever T (`selfComposePmfs`): the spectrum is raised to
 *   the power T on a window sized by Chernoff bounds on the composed loss, as dp_accounting's `self_convolve`
 *   (common.py) does; here the aliased upper tail and a rigorous round-off bound both go to the infinity mass, so the
 *   result stays pessimistic.
 */
import { gaussianDelta } from "../../gaussian-mechanism/analytic-gaussian.ts";
import { BUTTERFLY_ERROR, convolve, fft, nextPow2 } from "./fft.ts";

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

/**
 * `count`-fold self-composition of one PLD; see {@link selfComposePmfs}.
 */
export function selfComposePmf(p: Pmf, count: number, tau: number): Pmf {
  return selfComposePmfs([p], count, tau)[0]!;
}

/**
 * Chernoff bounds on the T-fold sum S of the finite part of `p` (grid indices relative to `p.offset`): the mass with
 * S > hi and the mass with S < lo are each ≤ τ. P[S ≥ x] ≤ e^{−λx}·M(λ)^T for λ > 0 and P[S ≤ x] ≤ e^{−λx}·M(λ)^T for
 * λ < 0, M(λ) = Σ p_i e^{λi}; so x = g(λ) = (T·ln M(λ) + ln(1/τ))/λ bounds the tail by τ, and hi = min_{λ>0} g,
 * lo = max_{λ<0} g (as dp_accounting's `compute_self_convolve_bounds`, which scans a fixed λ grid; here g is unimodal
 * in λ on each side, so a golden-section search on ln|λ| around the Gaussian optimum √(2 ln(1/τ)/(T·Var)) finds it).
 */
export function chernoffWindow(p: Pmf, count: number, tau: number): { lo: number; hi: number } {
  const probs = p.probs;
  const n = probs.length;
  const full = { lo: 0, hi: count * (n - 1) };
  if (n <= 1) return full;
  let mass = 0;
  let mean = 0;
  for (let i = 0; i < n; i++) {
    mass += probs[i]!;
    mean += i * probs[i]!;
  }
  if (!(mass > 0)) return full;
  mean /= mass;
  let variance = 0;
  for (let i = 0; i < n; i++) variance += (i - mean) ** 2 * probs[i]!;
  variance /= mass;
  if (!(variance > 0)) return full;
  const c = Math.round(mean);
  const logInvTau = Math.log(1 / tau);
  // ln M(λ) about the centre c (log-sum-exp), inflated by the summation's relative round-off n·2u (+ slack).
  const slack = 4 * n * 2 ** -53 + 1e-15;
  const lnM = (lambda: number): number => {
    const top = lambda > 0 ? lambda * (n - 1 - c) : -lambda * c;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const w = probs[i]!;
      if (w > 0) sum += w * Math.exp(lambda * (i - c) - top);
    }
    return top + Math.log(sum) + slack;
  };
  const g = (lambda: number) => (count * lnM(lambda) + logInvTau) / lambda; // relative to count·c
  const lambda0 = Math.sqrt((2 * logInvTau) / (count * variance));
  const search = (sign: 1 | -1): number => {
    // minimise sign·g over λ = sign·e^t (golden section on t)
    let a = Math.log(lambda0) - 7;
    let b = Math.log(lambda0) + 7;
    const f = (t: number) => {
      const v = sign * g(sign * Math.exp(t));
      return Number.isFinite(v) ? v : Number.POSITIVE_INFINITY;
    };
    const r = (Math.sqrt(5) - 1) / 2;
    let x1 = b - r * (b - a);
    let x2 = a + r * (b - a);
    let f1 = f(x1);
    let f2 = f(x2);
    for (let it = 0; it < 24; it++) {
      if (f1 <= f2) {
        b = x2;
        x2 = x1;
        f2 = f1;
        x1 = b - r * (b - a);
        f1 = f(x1);
      } else {
        a = x1;
        x1 = x2;
        f1 = f2;
        x2 = a + r * (b - a);
        f2 = f(x2);
      }
    }
    return sign * Math.min(f1, f2); // any λ gives a valid bound; this is the best one found
  };
  const hi = search(1);
  const lo = search(-1);
  return {
    lo: Number.isFinite(lo) ? Math.max(full.lo, Math.floor(count * c + lo)) : full.lo,
    hi: Number.isFinite(hi) ? Math.min(full.hi, Math.ceil(count * c + hi)) : full.hi,
  };
}

/** Largest transform {@link selfComposePmfs} attempts (2²⁶ points: 1 GiB of float64 pairs). */
const MAX_TRANSFORM = 2 ** 26;

/** z^count for a complex z by binary exponentiation (about 2·log₂ count multiplications). */
function complexPower(re: number, im: number, count: number): [number, number] {
  let rr = 1;
  let ri = 0;
  let br = re;
  let bi = im;
  let k = count;
  for (;;) {
    if (k % 2 === 1) {
      const t = rr * br - ri * bi;
      ri = rr * bi + ri * br;
      rr = t;
    }
    k = Math.floor(k / 2);
    if (k === 0) break;
    const t = br * br - bi * bi;
    bi = 2 * br * bi;
    br = t;
    if (br === 0 && bi === 0) return [0, 0];
  }
  return [rr, ri];
}

/**
 * `count`-fold self-composition of one or two PLDs (e.g. the two directions) on the same grid, in one forward and
 * one inverse FFT: the pmfs share a complex transform (real and imaginary parts), each spectrum is raised to the
 * power `count` pointwise, and the inverse returns both compositions at once (as dp_accounting's `self_convolve`,
 * which transforms once and takes the power). Cost O(n log n) for a window of n grid points, whatever `count`.
 *
 * Pessimism:
 * - Window. The transform length n covers the Chernoff window [lo, hi] of {@link chernoffWindow} (tail mass ≤ τ on
 *   each side), and the result is read on [lo, lo + n − 1]. The DFT is cyclic, so mass outside the window aliases
 *   into it: mass below lo lands exactly a multiple of n higher (a pessimistic move), mass above lo + n − 1 ≤ τ lands
 *   lower, so τ is added to the infinity mass for it. When the whole support fits, nothing aliases.
 * - Round-off. Â_k errs by at most e = L·η·(1 + 3u)^L·(‖p₁‖₁ + ‖p₂‖₁) (componentwise bound, `fft.ts`), so
 *   |Â_k^T − A_k^T| ≤ T·e·m_k^{T−1} with m_k = min(1, |Â_k| + e) (|A_k| ≤ 1), plus the power's own rounding
 *   (≤ 4·log₂T·3u relative). The inverse maps a spectral error E to an ℓ1 output error ≤ ‖E‖₂ (Parseval, then
 *   ‖·‖₁ ≤ √n‖·‖₂) and adds its own L·η·‖Ŵ‖₂. That total, doubled, joins the infinity mass; negative outputs are
 *   zeroed (which only adds mass).
 * The ω_∞ of a step composes as 1 − (1 − ω_∞)^T. Finally the tails are truncated pessimistically at τ.
 */
export function selfComposePmfs(pmfs: readonly Pmf[], count: number, tau: number): Pmf[] {
  if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`count must be a positive integer, got ${count}`);
  if (pmfs.length < 1 || pmfs.length > 2) throw new RangeError("selfComposePmfs takes one or two PLDs");
  if (count === 1) return pmfs.map((p) => p);
  const windows = pmfs.map((p) => {
    const len = p.probs.length;
    if (len === 0) return { lo: 0, hi: 0, tail: 0, empty: true };
    const w = chernoffWindow(p, count, tau);
    const exact = w.lo === 0 && w.hi === count * (len - 1);
    return { lo: w.lo, hi: w.hi, tail: exact ? 0 : tau, empty: false };
  });
  const size = nextPow2(Math.max(2, ...windows.map((w) => w.hi - w.lo + 1)));
  if (size > MAX_TRANSFORM) {
    throw new RangeError(`PLD of ${count} steps needs ${size} grid points; use a coarser discretization`);
  }
  const re = new Float64Array(size);
  const im = new Float64Array(size);
  const mask = size - 1;
  let l1 = 0;
  pmfs.forEach((p, d) => {
    const target = d === 0 ? re : im;
    const probs = p.probs;
    for (let i = 0; i < probs.length; i++) {
      target[i & mask] = target[i & mask]! + probs[i]!;
      l1 += probs[i]!;
    }
  });
  fft(re, im);
  const levels = Math.log2(size);
  const u = 2 ** -53;
  const e = levels * BUTTERFLY_ERROR * (1 + 3 * u) ** levels * l1 + 4 * u * l1;
  const rho = 4 * Math.ceil(Math.log2(count) + 1) * 3 * u;
  let errSq0 = 0;
  let errSq1 = 0;
  const power = (xr: number, xi: number): { r: number; i: number; err: number } => {
    const mag = Math.sqrt(xr * xr + xi * xi); // |x| ≤ 2: no overflow, so no need for Math.hypot
    const m = Math.min(1, mag + e);
    const logM = Math.log(m);
    if ((count - 1) * logM < -740) {
      // |A^T| ≤ m^T underflows: report 0, its error is below 1e-300
      return { r: 0, i: 0, err: 1e-300 };
    }
    const [r, i] = complexPower(xr, xi, count);
    const err = rho * Math.sqrt(r * r + i * i) + count * e * Math.exp((count - 1) * logM);
    return { r, i, err };
  };
  for (let k = 0; k <= size / 2; k++) {
    const nk = (size - k) & mask;
    const zr = re[k]!;
    const zi = im[k]!;
    const wr = re[nk]!;
    const wi = im[nk]!;
    const a = power((zr + wr) / 2, (zi - wi) / 2);
    const b = power((zi + wi) / 2, (wr - zr) / 2);
    // W_k = A^T + i·B^T; W_{−k} = conj(A^T) + i·conj(B^T)
    re[k] = a.r - b.i;
    im[k] = a.i + b.r;
    re[nk] = a.r + b.i;
    im[nk] = b.r - a.i;
    const mult = k === nk ? 1 : 2;
    errSq0 += mult * a.err * a.err;
    errSq1 += mult * b.err * b.err;
  }
  let outSq = 0;
  for (let k = 0; k < size; k++) outSq += re[k]! * re[k]! + im[k]! * im[k]!;
  fft(re, im, true);
  const roundOff =
    2 * (Math.sqrt(errSq0) + Math.sqrt(errSq1) + levels * BUTTERFLY_ERROR * (1 + 1e-6) * Math.sqrt(outSq)) + 4 * u;
  const inv = 1 / size;
  return pmfs.map((p, d) => {
    const w = windows[d]!;
    const omega = -Math.expm1(count * Math.log1p(-p.infinityMass));
    if (w.empty) return { offset: 0, probs: new Float64Array(0), infinityMass: omega };
    const src = d === 0 ? re : im;
    const probs = new Float64Array(size);
    for (let j = 0; j < size; j++) {
      const v = src[(w.lo + j) & mask]! * inv;
      probs[j] = v > 0 ? v : 0;
    }
    const infinityMass = Math.min(1, omega + w.tail + roundOff);
    // The power amplifies the forward transform's round-off T-fold, leaving a positive noise floor far from the
    // mass; trim the tails by up to the round-off bound as well (pessimistically, see truncateTails).
    return truncateTails({ offset: count * p.offset + w.lo, probs, infinityMass }, Math.max(tau, roundOff));
  });
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
