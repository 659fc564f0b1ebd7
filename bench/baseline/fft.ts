/**
 * @module
 * BENCHMARK BASELINE ONLY: analysis/fft.ts as it was before the PLD/ledger speed-up (privacy-math branch), kept verbatim
 * (imports aside) so `npm run bench` can time today's algorithm against the new one in the same run. Not used by the
 * library.
 *
 * A small iterative radix-2 complex FFT (Cooley & Tukey 1965) on split re/im Float64Arrays, and linear convolution of
 * non-negative sequences through it. Pure math, used by the PLD accountant.
 */

const twiddleCache = new Map<number, { cos: Float64Array; sin: Float64Array }>();

function twiddles(n: number) {
  let t = twiddleCache.get(n);
  if (!t) {
    const cos = new Float64Array(n / 2);
    const sin = new Float64Array(n / 2);
    for (let k = 0; k < n / 2; k++) {
      cos[k] = Math.cos((2 * Math.PI * k) / n);
      sin[k] = Math.sin((2 * Math.PI * k) / n);
    }
    t = { cos, sin };
    if (twiddleCache.size > 32) twiddleCache.clear();
    twiddleCache.set(n, t);
  }
  return t;
}

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
  for (let len = 2; len <= n; len <<= 1) {
    const half = len >> 1;
    const step = n / len;
    for (let i = 0; i < n; i += len) {
      for (let k = 0, t = 0; k < half; k++, t += step) {
        const wr = cos[t]!;
        const wi = sign * sin[t]!;
        const a = i + k;
        const b = a + half;
        const xr = re[b]! * wr - im[b]! * wi;
        const xi = re[b]! * wi + im[b]! * wr;
        re[b] = re[a]! - xr;
        im[b] = im[a]! - xi;
        re[a] = re[a]! + xr;
        im[a] = im[a]! + xi;
      }
    }
  }
}

/** Below this many multiply-adds the direct O(n·m) convolution is used (exact up to rounding, no FFT noise). */
const DIRECT_LIMIT = 1 << 16;

/**
 * Linear convolution c = a ∗ b (length a.length + b.length − 1). Uses the FFT for large inputs; `b === a` squares
 * with one forward transform. FFT round-off is returned in `errorBound`: a conservative bound on Σ|ĉ_k − c_k| (after Higham,
 * "Accuracy and Stability of Numerical Algorithms", 2nd ed. 2002, §24.1 Thm. 24.2), which the
 * PLD accountant adds to the infinity mass so that round-off can never make it optimistic.
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
  const ar = new Float64Array(n);
  const ai = new Float64Array(n);
  ar.set(a);
  fft(ar, ai);
  let br: Float64Array;
  let bi: Float64Array;
  if (b === a) {
    br = ar;
    bi = ai;
  } else {
    br = new Float64Array(n);
    bi = new Float64Array(n);
    br.set(b);
    fft(br, bi);
  }
  for (let k = 0; k < n; k++) {
    const xr = ar[k]! * br[k]! - ai[k]! * bi[k]!;
    const xi = ar[k]! * bi[k]! + ai[k]! * br[k]!;
    ar[k] = xr;
    ai[k] = xi;
  }
  fft(ar, ai, true);
  const out = new Float64Array(m);
  const inv = 1 / n;
  for (let k = 0; k < m; k++) out[k] = ar[k]! * inv;
  // Higham 2002 Thm. 24.2: each transform errs by ≤ log₂n·η·‖·‖₂ with η ≈ 8u here; propagated through the product
  // and the inverse this gives ‖ĉ − c‖₂ ≲ log₂n·η·(‖a‖₂‖b‖₁ + 2‖a‖₁‖b‖₂), and ‖·‖₁ ≤ √m‖·‖₂. Doubled for safety.
  const errorBound = 2 * Math.sqrt(m) * Math.log2(n) * 8 * 2 ** -53 * (norm2(a) * sumOf(b) + 2 * sumOf(a) * norm2(b));
  return { out, errorBound };
}

function sumOf(x: Float64Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]!;
  return s;
}

function norm2(x: Float64Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s);
}
