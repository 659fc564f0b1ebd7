/**
 * @module
 * Continuous noise from a CSPRNG: 53-bit uniforms and Gaussian samplers fed only by `crypto.getRandomValues`
 * (or an injected {@link RandomBytes}; tests inject a seeded ChaCha20 stream to be deterministic). Never `Math.random`.
 *
 * Gaussians use the Box–Muller transform (Box & Muller 1958, "A note on the generation of random normal deviates",
 * Ann. Math. Statist. 29(2)) on pairs of 53-bit uniforms: z₀ = √(−2 ln u₁)·cos(2πu₂), z₁ = √(−2 ln u₁)·sin(2πu₂)
 * with u₁ ∈ (0, 1]. With 53-bit u₁ the tails are cut at √(−2 ln 2⁻⁵³) ≈ 8.57σ (probability < 1e-17).
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

/**
 * Core batch loop: calls `emit(i, z)` for i = 0..n-1 with independent standard normals z, pulling random bytes in
 * blocks of {@link BLOCK_BYTES}. Monomorphic callers below keep it fast (2^20 values in a few tens of ms).
 */
function normalBlocks(
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

/** Fills `out` with independent N(0, 1) samples (Box–Muller on 53-bit uniforms, bytes pulled in 64 KiB blocks). */
export function fillStandardNormal(out: Float32Array | Float64Array, random: RandomBytes = cryptoRandomBytes): void {
  normalBlocks(out.length, random, (start, values, count) => {
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
