/**
 * @module
 * Continuous noise from a CSPRNG: 53-bit uniforms and Gaussian samplers fed only by `crypto.getRandomValues`
 * (or an injected {@link RandomBytes}; tests inject a seeded ChaCha20 stream to be deterministic). Never a non-cryptographic PRNG.
 *
 * Gaussians ({@link fillStandardNormal}, {@link fillGaussian}, {@link addGaussianNoise}) use the Ziggurat method
 * (Marsaglia & Tsang 2000, "The Ziggurat Method for Generating Random Variables", J. Stat. Softw. 5(8), §2–§3) with
 * 256 layers, every attempt drawing one fresh 64-bit word from the byte source: 53 bits for the uniform, 8 disjoint
 * bits for the layer and 1 for the sign. Independent layer bits avoid the layer/uniform correlation of the original
 * 32-bit code (Doornik 2005, "An Improved Ziggurat Method to Generate Normal Random Samples", §3). The tail beyond r is
 * sampled by Marsaglia's method (Marsaglia 1964, "Generating a variable from the tail of the normal distribution",
 * Technometrics 6(1)); with 53-bit uniforms it reaches ≈ 13.7σ. ~98.8% of draws return after one table lookup and one
 * multiply; the wedges need one extra uniform and an `exp`, the tail two `log`s. {@link fillStandardNormalBatch} is
 * the same sampler with the fast path run over whole 64 KiB blocks of draws and the misses finished afterwards from
 * fresh draws (same distribution, different byte-to-value order; for sources with no order to reproduce).
 *
 * The Box–Muller transform (Box & Muller 1958, "A note on the generation of random normal deviates", Ann. Math.
 * Statist. 29(2)) is kept as a reference sampler ({@link fillStandardNormalBoxMuller}): z₀ = √(−2 ln u₁)·cos(2πu₂),
 * z₁ = √(−2 ln u₁)·sin(2πu₂) with 53-bit u₁ ∈ (0, 1], tails cut at √(−2 ln 2⁻⁵³) ≈ 8.57σ.
 *
 * Caveat (Mironov 2012, "On significance of the least significant bits for differential privacy", CCS'12): floating-point
 * samplers are not exactly the ideal Gaussian, so the DP guarantee of a float mechanism is approximate; the exact
 * discrete Gaussian in `discrete-gaussian.ts` is the robust choice for the distributed mode.
 */

/** A source of random bytes: fills `buf` completely. The default is {@link cryptoRandomBytes}. */
export type RandomBytes = (buf: Uint8Array) => void;

/** Largest request `crypto.getRandomValues` accepts (Web Crypto quota: 65,536 bytes). */
const MAX_GET_RANDOM = 65536;

/** `crypto.getRandomValues`, in chunks of at most 65,536 bytes so any length works. */
export const cryptoRandomBytes: RandomBytes = (buf: Uint8Array): void => {
  for (let off = 0; off < buf.length; off += MAX_GET_RANDOM) {
    crypto.getRandomValues(buf.subarray(off, Math.min(buf.length, off + MAX_GET_RANDOM)) as Uint8Array<ArrayBuffer>);
  }
};

const TWO_POW_26 = 67108864;
const TWO_POW_MINUS_53 = 1 / 9007199254740992;
const TWO_PI = 2 * Math.PI;

/** Bytes pulled from the source per block by the batch samplers (8,192 Gaussians per block). */
const BLOCK_BYTES = 65536;

/** Builds a 53-bit uniform in [0, 1) from two 32-bit words (27 high bits of `a`, 26 high bits of `b`). */
function u53(a: number, b: number): number {
  return ((a >>> 5) * TWO_POW_26 + (b >>> 6)) * TWO_POW_MINUS_53;
}

/** A uniform double in [0, 1) with 53 random bits (every multiple of 2⁻⁵³ equally likely). */
export function uniform53(random: RandomBytes = cryptoRandomBytes): number {
  const words = new Uint32Array(2);
  random(new Uint8Array(words.buffer));
  return u53(words[0]!, words[1]!);
}

function checkSigma(sigma: number): void {
  if (typeof sigma !== "number" || !Number.isFinite(sigma) || sigma < 0) {
    throw new RangeError(`sigma must be a finite number >= 0, got ${String(sigma)}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Ziggurat tables (Marsaglia & Tsang 2000, §2–§3), computed once at module load from the unnormalised density
// f(x) = exp(−x²/2). Layer 0 is the base strip [0, x₀) × [0, f(r)) plus the tail x > r, with x₀ = v/f(r); layer
// i ≥ 1 is the rectangle [0, xᵢ) × [f(xᵢ), f(xᵢ₊₁)) with x₁ = r, xᵢ₊₁ = √(−2 ln(v/xᵢ + f(xᵢ))) and x₂₅₆ = 0. Every
// layer has area v = r·f(r) + ∫_r^∞ f. r is the root that closes the top layer (x₂₅₅·(1 − f(x₂₅₅)) = v), found by
// bisection; it reproduces the paper's 256-layer constants r = 3.6541528853610088, v = 4.92867323399e-3 (§3).
// ---------------------------------------------------------------------------------------------------------------

/** Number of ziggurat layers (a power of two: 8 bits of each 64-bit draw pick the layer). */
const ZIG_LAYERS = 256;

function zigDensity(x: number): number {
  return Math.exp(-0.5 * x * x);
}

/** ∫_r^∞ exp(−t²/2) dt = exp(−r²/2) / (r + 1/(r + 2/(r + 3/(r + …)))) (Laplace's continued fraction, r > 0). */
function gaussTailArea(r: number): number {
  let d = r;
  for (let k = 400; k >= 1; k--) d = r + k / d;
  return zigDensity(r) / d;
}

/** Top-layer closure residual for a candidate r: negative when r is too small (the layers run out early). */
function zigResidual(r: number): number {
  const v = r * zigDensity(r) + gaussTailArea(r);
  let x = r;
  for (let i = 2; i < ZIG_LAYERS; i++) {
    const t = v / x + zigDensity(x);
    if (t >= 1) return -1;
    x = Math.sqrt(-2 * Math.log(t));
  }
  return x * (1 - zigDensity(x)) - v;
}

function buildZiggurat() {
  let lo = 3;
  let hi = 4;
  for (let k = 0; k < 200; k++) {
    const mid = (lo + hi) / 2;
    if (mid === lo || mid === hi) break;
    if (zigResidual(mid) < 0) lo = mid;
    else hi = mid;
  }
  const r = Math.abs(zigResidual(lo)) <= Math.abs(zigResidual(hi)) ? lo : hi;
  const v = r * zigDensity(r) + gaussTailArea(r);
  const x = new Float64Array(ZIG_LAYERS + 1); // x[i]: width of layer i; x[256] = 0
  x[0] = v / zigDensity(r);
  x[1] = r;
  for (let i = 2; i < ZIG_LAYERS; i++) x[i] = Math.sqrt(-2 * Math.log(v / x[i - 1]! + zigDensity(x[i - 1]!)));
  x[ZIG_LAYERS] = 0;
  const ratio = new Float64Array(ZIG_LAYERS); // u < ratio[i] ⇔ u·x[i] < x[i+1]: inside the layer's core rectangle
  const fx = new Float64Array(ZIG_LAYERS + 1); // f(x[i]), for the wedge test
  for (let i = 0; i < ZIG_LAYERS; i++) ratio[i] = x[i + 1]! / x[i]!;
  for (let i = 0; i <= ZIG_LAYERS; i++) fx[i] = zigDensity(x[i]!);
  fx[0] = 0; // unused (layer 0 has no wedge)
  return { r, v, x, ratio, fx };
}

const ZIG = buildZiggurat();
const ZIG_R = ZIG.r;
const ZIG_X = ZIG.x;
const ZIG_RATIO = ZIG.ratio;
const ZIG_F = ZIG.fx;

/** The computed ziggurat constants (r: start of the tail, v: area of each layer) — for tests and documentation. */
export function zigguratConstants(): { layers: number; r: number; v: number } {
  return { layers: ZIG_LAYERS, r: ZIG.r, v: ZIG.v };
}

/** Most 64-bit draws pulled from the source at once by the batch samplers (64 KiB). */
const ZIG_BLOCK_DRAWS = BLOCK_BYTES / 8;

/** A buffered stream of 64-bit draws (two 32-bit words each) from a {@link RandomBytes}. */
interface DrawSource {
  readonly random: RandomBytes;
  readonly bytes: Uint8Array;
  readonly words: Uint32Array;
  /** Next unread word (even). */
  pos: number;
}

/** A source sized for about `n` samples: n + 1.6% + 16 draws (one pull nearly always), at most 64 KiB per pull. */
function drawSource(n: number, random: RandomBytes): DrawSource {
  const draws = Math.min(ZIG_BLOCK_DRAWS, n + (n >>> 6) + 16);
  const bytes = new Uint8Array(8 * draws);
  return { random, bytes, words: new Uint32Array(bytes.buffer), pos: 2 * draws };
}

/** The next 53-bit uniform in [0, 1) from `s` (one 64-bit draw). */
function drawU53(s: DrawSource): number {
  if (s.pos === s.words.length) {
    s.random(s.bytes);
    s.pos = 0;
  }
  const a = s.words[s.pos]!;
  const b = s.words[s.pos + 1]!;
  s.pos += 2;
  return u53(a, b);
}

/** Marsaglia (1964): the normal tail beyond r: x = −ln(U₁)/r, y = −ln(U₂) until 2y > x², then r + x (U ∈ (0, 1]). */
function zigTail(s: DrawSource): number {
  for (;;) {
    const x = -Math.log(1 - drawU53(s)) / ZIG_R;
    const y = -Math.log(1 - drawU53(s));
    if (y + y > x * x) return ZIG_R + x;
  }
}

/**
 * The rare path of one sample whose first draw (`u`, `layer`, `negative`) missed the core rectangle: the tail (layer
 * 0) or the wedge test f(x[i]) + U·(f(x[i+1]) − f(x[i])) < f(u·x[i]) with a fresh U; on rejection, fresh 64-bit draws
 * until one is accepted.
 */
function zigSlow(u: number, layer: number, negative: boolean, s: DrawSource): number {
  for (;;) {
    if (u < ZIG_RATIO[layer]!) {
      const z = u * ZIG_X[layer]!;
      return negative ? -z : z;
    }
    if (layer === 0) {
      const z = zigTail(s);
      return negative ? -z : z;
    }
    const z = u * ZIG_X[layer]!;
    const f0 = ZIG_F[layer]!;
    if (f0 + drawU53(s) * (ZIG_F[layer + 1]! - f0) < zigDensity(z)) return negative ? -z : z;
    if (s.pos === s.words.length) {
      s.random(s.bytes);
      s.pos = 0;
    }
    const a = s.words[s.pos]!;
    const b = s.words[s.pos + 1]!;
    s.pos += 2;
    u = u53(a, b);
    layer = (a & 31) | ((b & 7) << 5);
    negative = (b & 8) !== 0;
  }
}

/**
 * Writes `count` independent N(0, 1) samples to `dst[start..start+count)` (Ziggurat, one 64-bit draw per attempt).
 * Draw layout: word a gives its 27 high bits to the uniform and its 5 low bits to the layer; word b gives its 26 high
 * bits to the uniform, bits 0–2 to the layer and bit 3 to the sign ({@link u53} uses exactly the high bits).
 */
function zigguratFill(dst: Float64Array, start: number, count: number, s: DrawSource): void {
  const words = s.words;
  const x = ZIG_X;
  const ratio = ZIG_RATIO;
  let pos = s.pos;
  const end = start + count;
  for (let k = start; k < end; k++) {
    if (pos === words.length) {
      s.random(s.bytes);
      pos = 0;
    }
    const a = words[pos]!;
    const b = words[pos + 1]!;
    pos += 2;
    const u = ((a >>> 5) * TWO_POW_26 + (b >>> 6)) * TWO_POW_MINUS_53;
    const layer = (a & 31) | ((b & 7) << 5);
    if (u < ratio[layer]!) {
      dst[k] = u * x[layer]! * (1 - ((b & 8) >>> 2)); // sign bit → ±1 without a branch (bit 3 is a coin flip)
    } else {
      s.pos = pos;
      dst[k] = zigSlow(u, layer, (b & 8) !== 0, s);
      pos = s.pos;
    }
  }
  s.pos = pos;
}

/** Calls `sink(start, values, count)` with consecutive blocks of N(0, 1) samples (Ziggurat) until `n` are produced. */
function normalBlocks(
  n: number,
  random: RandomBytes,
  sink: (start: number, values: Float64Array, count: number) => void,
): void {
  if (n === 0) return;
  const s = drawSource(n, random);
  const values = new Float64Array(Math.min(n, ZIG_BLOCK_DRAWS));
  for (let start = 0; start < n; start += values.length) {
    const count = Math.min(values.length, n - start);
    zigguratFill(values, 0, count, s);
    sink(start, values, count);
  }
}

/**
 * Fills `out` with independent N(0, 1) samples (Ziggurat on 53-bit uniforms, bytes pulled in blocks of at most
 * 64 KiB; the number of bytes pulled depends on the values drawn, ≈ 8 per sample).
 */
export function fillStandardNormal(out: Float32Array | Float64Array, random: RandomBytes = cryptoRandomBytes): void {
  if (out instanceof Float64Array) {
    if (out.length > 0) zigguratFill(out, 0, out.length, drawSource(out.length, random));
    return;
  }
  normalBlocks(out.length, random, (start, values, count) => {
    out.set(count === values.length ? values : values.subarray(0, count), start);
  });
}

/** Draws per block of {@link fillStandardNormalBatch}: one 64 KiB pull (the Web Crypto quota per call). */
const BATCH_DRAWS = MAX_GET_RANDOM / 8;

/**
 * Fills `out` with independent N(0, 1) samples by the same Ziggurat as {@link fillStandardNormal} (same tables, same
 * 64-bit draw layout, same rare path), ≈ 1.6× faster on large arrays: each block of 8,192 draws is pulled in one
 * call, the fast path (one lookup and one multiply, ~98.8% of draws) runs over the whole block in a tight loop that
 * only records the indices it misses, and those few samples are then finished by the rare path ({@link zigSlow}, the
 * wedge test or the tail) from fresh draws of a separate buffer. Every sample still starts from its own fresh draw and
 * every draw is used once, so the samples are independent and exactly Ziggurat-distributed; only the mapping from
 * bytes to values differs from {@link fillStandardNormal} (which is the canonical, reproducible order): use this one
 * where no order has to be reproduced (the default crypto.getRandomValues source, drawn piece by piece in parallel).
 */
export function fillStandardNormalBatch(out: Float64Array, random: RandomBytes = cryptoRandomBytes): void {
  const n = out.length;
  if (n === 0) return;
  const draws = Math.min(n, BATCH_DRAWS);
  const bytes = new Uint8Array(8 * draws);
  const words = new Uint32Array(bytes.buffer);
  const missed = new Int32Array(draws);
  // the rare path's fresh draws: ~1.2% of samples miss, a few of those need more than one retry
  const spare = drawSource(Math.min(n, BATCH_DRAWS) >>> 5, random);
  const x = ZIG_X;
  const ratio = ZIG_RATIO;
  for (let start = 0; start < n; start += draws) {
    const count = Math.min(draws, n - start);
    random(count === draws ? bytes : bytes.subarray(0, 8 * count));
    let misses = 0;
    for (let j = 0; j < count; j++) {
      const a = words[2 * j]!;
      const b = words[2 * j + 1]!;
      const u = ((a >>> 5) * TWO_POW_26 + (b >>> 6)) * TWO_POW_MINUS_53;
      const layer = (a & 31) | ((b & 7) << 5);
      if (u < ratio[layer]!) out[start + j] = u * x[layer]! * (1 - ((b & 8) >>> 2));
      else missed[misses++] = j;
    }
    for (let m = 0; m < misses; m++) {
      const j = missed[m]!;
      const a = words[2 * j]!;
      const b = words[2 * j + 1]!;
      out[start + j] = zigSlow(u53(a, b), (a & 31) | ((b & 7) << 5), (b & 8) !== 0, spare);
    }
  }
}

/**
 * Box–Muller batch loop (the reference sampler): calls `sink` with blocks of independent standard normals, pulling
 * random bytes in blocks of {@link BLOCK_BYTES} (16 bytes per pair).
 */
function boxMullerBlocks(
  n: number,
  random: RandomBytes,
  sink: (start: number, values: Float64Array, count: number) => void,
) {
  if (n === 0) return;
  const blockBytes = Math.min(BLOCK_BYTES, 16 * Math.ceil(n / 2));
  const bytes = new Uint8Array(blockBytes);
  const words = new Uint32Array(bytes.buffer);
  const perBlock = blockBytes / 8; // 4 words per pair → 2 values per 16 bytes
  const values = new Float64Array(perBlock);
  for (let start = 0; start < n; start += perBlock) {
    random(bytes);
    const count = Math.min(perBlock, n - start);
    for (let j = 0, w = 0; j < count; j += 2, w += 4) {
      const u1 = 1 - u53(words[w]!, words[w + 1]!); // (0, 1]
      const u2 = u53(words[w + 2]!, words[w + 3]!);
      const r = Math.sqrt(-2 * Math.log(u1));
      const theta = TWO_PI * u2;
      values[j] = r * Math.cos(theta);
      values[j + 1] = r * Math.sin(theta); // j + 1 < perBlock always (perBlock even); unused if past count
    }
    sink(start, values, count);
  }
}

/**
 * Reference sampler: fills `out` with independent N(0, 1) samples by Box–Muller on 53-bit uniforms (exactly 8 bytes
 * per value, 16 per pair, pulled in 64 KiB blocks). Slower than {@link fillStandardNormal}; kept to compare
 * distributions in tests and benchmarks.
 */
export function fillStandardNormalBoxMuller(
  out: Float32Array | Float64Array,
  random: RandomBytes = cryptoRandomBytes,
): void {
  boxMullerBlocks(out.length, random, (start, values, count) => {
    out.set(count === values.length ? values : values.subarray(0, count), start);
  });
}
/** Fills `out` with independent N(0, σ²) samples (σ = 0 writes zeros and pulls no bytes). Throws `RangeError` if σ is negative or not finite. */
export function fillGaussian(
  out: Float32Array | Float64Array,
  sigma: number,
  random: RandomBytes = cryptoRandomBytes,
): void {
  checkSigma(sigma);
  if (sigma === 0) {
    out.fill(0);
    return;
  }
  normalBlocks(out.length, random, (start, values, count) => {
    for (let j = 0; j < count; j++) out[start + j] = sigma * values[j]!;
  });
}

/**
 * Adds independent N(0, σ²) noise to every element in place: `target[i] += σ·z_i` (the Gaussian mechanism's noise
 * for a clipped sum; noise is drawn in float64 and the sum is rounded once to float32). σ = 0 leaves `target` unchanged.
 */
export function addGaussianNoise(target: Float32Array, sigma: number, random: RandomBytes = cryptoRandomBytes): void {
  checkSigma(sigma);
  if (sigma === 0) return;
  normalBlocks(target.length, random, (start, values, count) => {
    for (let j = 0; j < count; j++) target[start + j] = target[start + j]! + sigma * values[j]!;
  });
}
