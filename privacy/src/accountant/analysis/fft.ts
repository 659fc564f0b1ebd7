/**
 * @module
 * An iterative radix-2 complex FFT (Cooley & Tukey 1965) on split re/im Float64Arrays, linear convolution of
 * non-negative sequences through it, and the rounding-error bounds the PLD accountant adds to its infinity mass. Pure.
 *
 * Twiddles are tabulated once per length, stage by stage and contiguously (stage with half-length h keeps
 * w_h^k = e^{−iπk/h}, k < h, at [h, 2h)), each entry from `Math.cos`/`Math.sin` directly (no recurrences), so every
 * twiddle errs by at most a couple of ulps and the butterflies stream through memory.
 *
 * Error bounds (u = 2⁻⁵³, L = log₂ n, η = 10u ≥ the per-butterfly error of Higham, "Accuracy and Stability of
 * Numerical Algorithms", 2nd ed. 2002, §24.1: twiddle error + complex multiply √2γ₂ + add):
 * - normwise (Higham Thm. 24.2): ‖ŷ − y‖₂ ≤ L·η/(1 − L·η)·‖y‖₂;
 * - componentwise, used by the PLD power method: every output X̂_k of the forward transform errs by at most
 *   L·η·(1 + 3u)^L·‖x‖₁. Proof sketch: a value at butterfly level ℓ is a partial DFT of a subsequence S, so its magnitude
 *   is ≤ ‖x_S‖₁; a butterfly a ± ŵb adds at most η(|a| + |b|) ≤ η‖x_S‖₁ of new error and passes the inputs' errors on
 *   multiplied by |ŵ| ≤ 1 + 3u; by induction the error at level ℓ is ≤ ℓ·η·(1 + 3u)^ℓ·‖x_S‖₁.
 */

const twiddleCache = new Map<number, { cos: Float64Array; sin: Float64Array }>();

/** Per-length twiddle table: entries [h, 2h) hold cos/sin(πk/h), k < h, for every stage half-length h. */
function twiddles(n: number) {
  let t = twiddleCache.get(n);
  if (!t) {
    const cos = new Float64Array(Math.max(1, n));
    const sin = new Float64Array(Math.max(1, n));
    for (let h = 1; h < n; h *= 2) {
      for (let k = 0; k < h; k++) {
        cos[h + k] = Math.cos((Math.PI * k) / h);
        sin[h + k] = Math.sin((Math.PI * k) / h);
      }
    }
    t = { cos, sin };
    if (twiddleCache.size > 24) twiddleCache.clear();
    twiddleCache.set(n, t);
  }
  return t;
}

/** Unit roundoff of float64. */
export const UNIT_ROUNDOFF = 2 ** -53;

/** η of the module header: a bound on one butterfly's relative error. */
export const BUTTERFLY_ERROR = 10 * UNIT_ROUNDOFF;

/** Smallest power of two ≥ n. */
export function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * In-place FFT of (re, im), length a power of two. `inverse` computes the unnormalised inverse (caller divides by n).
 * Forward: X_k = Σ x_j e^{−2πijk/n}.
 */
export function fft(re: Float64Array, im: Float64Array, inverse = false): void {
  const n = re.length;
  if (n !== im.length || (n & (n - 1)) !== 0) throw new RangeError("fft: length must be a power of two");
  if (n <= 1) return;
  // bit-reversal permutation
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      const tr = re[i]!;
      re[i] = re[j]!;
      re[j] = tr;
      const ti = im[i]!;
      im[i] = im[j]!;
      im[j] = ti;
    }
  }
  const { cos, sin } = twiddles(n);
  const sign = inverse ? 1 : -1;
  // Two radix-2 stages (half-lengths h and 2h) per pass over memory: the same butterflies in the same order as the
  // textbook radix-2 loop (so the same rounding), but half the passes. w_{2h}^{k+h} = ∓i·w_{2h}^k is applied exactly.
  let half = 1;
  for (; half * 4 <= n; half *= 4) {
    const len = half * 4;
    const h2 = half * 2;
    for (let i = 0; i < n; i += len) {
      for (let k = 0; k < half; k++) {
        const w1r = cos[half + k]!;
        const w1i = sign * sin[half + k]!;
        const w2r = cos[h2 + k]!;
        const w2i = sign * sin[h2 + k]!;
        const i0 = i + k;
        const i1 = i0 + half;
        const i2 = i1 + half;
        const i3 = i2 + half;
        // stage h: (x0, x1) and (x2, x3) with w_h^k
        let br = re[i1]!;
        let bi = im[i1]!;
        let xr = br * w1r - bi * w1i;
        let xi = br * w1i + bi * w1r;
        const a0r = re[i0]! + xr;
        const a0i = im[i0]! + xi;
        const a1r = re[i0]! - xr;
        const a1i = im[i0]! - xi;
        br = re[i3]!;
        bi = im[i3]!;
        xr = br * w1r - bi * w1i;
        xi = br * w1i + bi * w1r;
        const a2r = re[i2]! + xr;
        const a2i = im[i2]! + xi;
        const a3r = re[i2]! - xr;
        const a3i = im[i2]! - xi;
        // stage 2h: (x0, x2) with W = w_{2h}^k, (x1, x3) with ∓i·W
        xr = a2r * w2r - a2i * w2i;
        xi = a2r * w2i + a2i * w2r;
        re[i0] = a0r + xr;
        im[i0] = a0i + xi;
        re[i2] = a0r - xr;
        im[i2] = a0i - xi;
        const yr = a3r * w2r - a3i * w2i;
        const yi = a3r * w2i + a3i * w2r;
        // multiply y by sign·i: forward (sign −1) −i·y = (yi, −yr); inverse +i·y = (−yi, yr)
        xr = -sign * yi;
        xi = sign * yr;
        re[i1] = a1r + xr;
        im[i1] = a1i + xi;
        re[i3] = a1r - xr;
        im[i3] = a1i - xi;
      }
    }
  }
  if (half < n) {
    // one radix-2 stage left (log₂ n odd)
    for (let k = 0; k < half; k++) {
      const wr = cos[half + k]!;
      const wi = sign * sin[half + k]!;
      const a = k;
      const b = a + half;
      const br = re[b]!;
      const bi = im[b]!;
      const xr = br * wr - bi * wi;
      const xi = br * wi + bi * wr;
      const ar = re[a]!;
      const ai = im[a]!;
      re[b] = ar - xr;
      im[b] = ai - xi;
      re[a] = ar + xr;
      im[a] = ai + xi;
    }
  }
}

/** Below this many multiply-adds the direct O(n·m) convolution is used (exact up to rounding, no FFT noise). */
const DIRECT_LIMIT = 1 << 16;

/**
 * Linear convolution c = a ∗ b (length a.length + b.length − 1) of non-negative sequences. Large inputs go through
 * the FFT: two real sequences share one complex transform (z = a + i·b, A_k = (Z_k + Z̄_{n−k})/2,
 * B_k = (Z_k − Z̄_{n−k})/(2i)), so a product costs two transforms of length n ≥ a.length + b.length − 1; `b === a`
 * squares. `errorBound` bounds Σ|ĉ_k − c_k| over the output (normwise bound of the module header propagated through
 * the product and the inverse, then ‖·‖₁ ≤ √m‖·‖₂, doubled for safety); the PLD accountant adds it to the infinity
 * mass so that round-off can never make it optimistic.
 */
export function convolve(a: Float64Array, b: Float64Array): { out: Float64Array; errorBound: number } {
  const m = a.length + b.length - 1;
  if (a.length * b.length <= DIRECT_LIMIT) {
    const out = new Float64Array(m);
    for (let i = 0; i < a.length; i++) {
      const ai = a[i]!;
      if (ai === 0) continue;
      for (let j = 0; j < b.length; j++) out[i + j] = out[i + j]! + ai * b[j]!;
    }
    return { out, errorBound: m * 2 ** -52 * sumOf(a) * sumOf(b) };
  }
  const n = nextPow2(m);
  const re = new Float64Array(n);
  const im = new Float64Array(n);
  re.set(a);
  const square = b === a;
  if (!square) im.set(b);
  fft(re, im);
  if (square) {
    for (let k = 0; k < n; k++) {
      const xr = re[k]!;
      const xi = im[k]!;
      re[k] = xr * xr - xi * xi;
      im[k] = 2 * xr * xi;
    }
  } else {
    // A_k·B_k from Z: A = (Z_k + conj Z_{-k})/2, B = (Z_k − conj Z_{-k})/(2i); k and −k are done together.
    for (let k = 0; k <= n / 2; k++) {
      const nk = (n - k) & (n - 1);
      const zr = re[k]!;
      const zi = im[k]!;
      const wr = re[nk]!;
      const wi = im[nk]!;
      const ar = (zr + wr) / 2;
      const ai = (zi - wi) / 2;
      const br = (zi + wi) / 2;
      const bi = (wr - zr) / 2;
      const pr = ar * br - ai * bi;
      const pi = ar * bi + ai * br;
      re[k] = pr;
      im[k] = pi;
      re[nk] = pr; // C_{−k} = conj C_k (c is real)
      im[nk] = -pi;
    }
  }
  fft(re, im, true);
  const out = new Float64Array(m);
  const inv = 1 / n;
  for (let k = 0; k < m; k++) out[k] = re[k]! * inv;
  const l = Math.log2(n) * BUTTERFLY_ERROR;
  const forward = l * (norm2(a) + norm2(b)); // ‖Â − A‖₂/√n, ‖B̂ − B‖₂/√n
  const product = forward * (sumOf(a) + sumOf(b)) + 4 * UNIT_ROUNDOFF * sumOf(a) * Math.min(norm2(a), norm2(b));
  const errorBound = 2 * Math.sqrt(m) * (product + l * norm2(out) * (1 + l));
  return { out, errorBound };
}

export function sumOf(x: Float64Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]!;
  return s;
}

export function norm2(x: Float64Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s);
}
