/**
 * @module
 * Randomness for training: shuffling minibatches and initialising weights, from an injected `RandomBytes` source
 * (@fedge/protocol; `cryptoRandomBytes` by default, so a device's batch order cannot be predicted). Neither use is
 * privacy noise. `xoshiroRandomBytes(seed)` gives reproducible builds (seed models, tests).
 */

import type { RandomBytes } from "@fedge/privacy";

/**
 * A deterministic byte stream from a seed: xoshiro128** (Blackman & Vigna, "Scrambled linear pseudorandom number
 * generators", arXiv:1805.01407 §3), state filled by SplitMix32. **NOT for privacy noise, keys or nonces**: it only
 * makes weight initialisation and batch order reproducible.
 * @param seed a safe integer (both 32-bit halves are mixed into the state).
 */
export function xoshiroRandomBytes(seed: number): RandomBytes {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  let sm = (seed >>> 0) ^ Math.imul(Math.floor(seed / 2 ** 32) >>> 0, 0x9e3779b9);
  const splitmix32 = (): number => {
    sm = (sm + 0x9e3779b9) | 0;
    let z = sm;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let s0 = splitmix32();
  let s1 = splitmix32();
  let s2 = splitmix32();
  let s3 = splitmix32();
  if ((s0 | s1 | s2 | s3) === 0) s0 = 1;
  const next = (): number => {
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 11);
    return r;
  };
  return (out) => {
    const length = out.length;
    let i = 0;
    for (; i + 4 <= length; i += 4) {
      const r = next();
      out[i] = r & 0xff;
      out[i + 1] = (r >>> 8) & 0xff;
      out[i + 2] = (r >>> 16) & 0xff;
      out[i + 3] = r >>> 24;
    }
    if (i < length) {
      let r = next();
      for (; i < length; i++, r >>>= 8) out[i] = r & 0xff;
    }
  };
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Buffered uniform draws from a `RandomBytes` source (bytes fetched in blocks, no per-draw allocation). */
export class UniformSource {
  readonly #random: RandomBytes;
  readonly #words: Uint32Array;
  readonly #bytes: Uint8Array;
  #pos: number;

  /** @param blockWords 32-bit words fetched per call to `random` @default 1024 */
  constructor(random: RandomBytes, blockWords = 1024) {
    if (typeof random !== "function") throw new TypeError("random must be a RandomBytes function (buf) => void");
    this.#random = random;
    this.#words = new Uint32Array(blockWords);
    this.#bytes = new Uint8Array(this.#words.buffer);
    this.#pos = blockWords;
  }

  /** A uniform 32-bit unsigned integer (platform byte order; every word is uniform either way). */
  uint32(): number {
    if (this.#pos === this.#words.length) {
      this.#random(this.#bytes);
      this.#pos = 0;
    }
    return this.#words[this.#pos++]!;
  }

  /** A uniform integer in `[0, bound)`, unbiased (rejection sampling), for `1 <= bound <= 2^32`. */
  below(bound: number): number {
    const limit = 2 ** 32 - (2 ** 32 % bound);
    for (;;) {
      const v = this.uint32();
      if (v < limit) return v % bound;
    }
  }

  /** A uniform double in `[0, 1)` with 53 random bits. */
  uniform53(): number {
    const hi = this.uint32() >>> 5; // 27 bits
    const lo = this.uint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** A standard normal draw (Box–Muller). */
  normal(): number {
    const u1 = 1 - this.uniform53(); // (0, 1]
    const u2 = this.uniform53();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
}

/** A uniformly random permutation of `0..n-1` (Fisher–Yates / Durstenfeld). */
export function randomPermutation(
  n: number,
  source: UniformSource,
  out: Uint32Array = new Uint32Array(n),
): Uint32Array {
  for (let i = 0; i < n; i++) out[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = source.below(i + 1);
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return out;
}
