/**
 * @module
 * Exact sampling from the discrete Gaussian N_Z(0, σ²), P[X = x] ∝ exp(−x²/(2σ²)) for x ∈ Z, following
 * Canonne, Kamath & Steinke 2020, "The Discrete Gaussian for Differential Privacy" (arXiv 2004.00010), §5:
 * Algorithm 1 (Bernoulli(exp(−γ)) for rational γ), Algorithm 2 (discrete Laplace Lap_Z(t) by rejection),
 * Algorithm 3 (discrete Gaussian by rejection from Lap_Z(t) with t = ⌊σ⌋ + 1).
 *
 * Every step uses exact integer arithmetic and uniform integers drawn by rejection from the injected
 * {@link RandomBytes}: no floating point touches the output distribution, so the sample is exact. The integers are
 * JavaScript numbers wherever they provably stay at most 2^53 − 1 (every operand and product is checked; below that
 * bound +, −, × and comparison of integers are exact in float64) and BigInt only where they do not: a huge σ², a
 * rational σ² with a large denominator, or a far-tail Laplace draw. Both paths run the same steps and read the same
 * random words in the same order, so they return the same samples from the same bytes (tested against
 * {@link fillDiscreteGaussianBigInt}, the all-BigInt reference, which is the sampler of earlier releases): the number
 * path changes the cost of a device's noise share of 8,192 coordinates (≈ 30 ms → 7 ms here), not one sample.
 *
 * σ² is given as a rational: a positive `number` (converted exactly: every finite double is a dyadic rational),
 * a positive `bigint` (integer σ²), or `{ numerator, denominator }` with positive integers (e.g. σ² = 7/3).
 */
import { cryptoRandomBytes, type RandomBytes } from "./random.ts";

/** σ² as an exact rational. */
export interface Rational {
  numerator: bigint | number;
  denominator: bigint | number;
}

/** The accepted forms of σ²: a positive finite number (taken exactly), a positive bigint, or a positive rational. */
export type DiscreteGaussianVariance = number | bigint | Rational;

/** 2^53 − 1: integers up to it, and their sums, differences and products up to it, are exact in float64. */
const MAX_EXACT = Number.MAX_SAFE_INTEGER;

/**
 * Buffered reader of random bytes: pulls 4 KiB at a time so thousands of small draws cost one source call (and a
 * sample reads no further ahead of the source than the samplers always have, so a seeded source gives the same
 * draws after it as before).
 */
class RandomReader {
  private readonly random: RandomBytes;
  private readonly bytes = new Uint8Array(4096);
  private readonly words = new Uint32Array(this.bytes.buffer);
  private pos = 1024; // in words; starts empty

  constructor(random: RandomBytes) {
    this.random = random;
  }

  u32(): number {
    if (this.pos === 1024) {
      this.random(this.bytes);
      this.pos = 0;
    }
    return this.words[this.pos++]!;
  }

  // --- number arithmetic: the same steps as the BigInt methods below, for integers ≤ 2^53 − 1 -------------------

  /** Uniform integer in [0, n) for 1 ≤ n ≤ 2^53 − 1: as {@link uniform}, the same words in the same order. */
  uniformNumber(n: number): number {
    if (n <= 4294967296) return this.uniformSmall(n);
    // ⌊log₂ n⌋ + 1 = n.toString(2).length of the BigInt path: 33 … 53 here, so two words
    const bits = 64 - Math.clz32(Math.floor(n / 4294967296));
    const topMask = 0xffffffff >>> (64 - bits);
    for (;;) {
      const x = (this.u32() & topMask) * 4294967296 + this.u32();
      if (x < n) return x;
    }
  }

  /** Algorithm 1 for γ = num/den ≥ 0 with safe integers (as {@link bernoulliExp}). */
  bernoulliExpNumber(num: number, den: number): boolean {
    while (num > den) {
      if (!this.bernoulliExp01Number(1, 1)) return false;
      num -= den;
    }
    return this.bernoulliExp01Number(num, den);
  }

  /** Algorithm 1, γ ∈ [0, 1]; moves to BigInt from the K at which den·K would pass 2^53 − 1. */
  private bernoulliExp01Number(num: number, den: number): boolean {
    let k = 1;
    for (;;) {
      const denK = den * k; // exact whenever the true product ≤ 2^53 − 1; larger shows as > MAX_EXACT
      if (denK > MAX_EXACT) return this.bernoulliExp01(BigInt(num), BigInt(den), BigInt(k));
      if (!(this.uniformNumber(denK) < num)) break;
      k++;
    }
    return (k & 1) === 1;
  }

  /** Algorithm 2 with s = 1 for an integer t with 1 ≤ t ≤ 2^32 (as {@link discreteLaplace}). */
  discreteLaplaceNumber(t: number): number {
    for (;;) {
      const u = this.uniformSmall(t);
      if (!this.bernoulliExpNumber(u, t)) continue;
      let v = 0;
      while (this.bernoulliExpNumber(1, 1)) v++;
      const y = u + t * v;
      // Unreachable in practice: it needs 2^21 straight successes of Bernoulli(e^−1). Refused rather than rounded.
      if (y > MAX_EXACT) throw new RangeError("a discrete Laplace draw left the exact range of float64");
      const negative = (this.u32() & 1) === 1;
      if (negative && y === 0) continue;
      return negative ? -y : y;
    }
  }

  /**
   * Uniform integer in [0, n) for 1 ≤ n ≤ 2³², by rejection (no modulo bias): u % n for a word u below the largest
   * multiple of n. The remainders are taken as u − n·⌊u/n⌋, which is exact (⌊u/n⌋ of a correctly rounded quotient is
   * exact for u, n ≤ 2³²: its error, under 2⁻²⁰/n, never crosses the gap of at least 1/n to the next integer) and
   * avoids float `%`, a slow library call in JavaScript engines.
   */
  private uniformSmall(n: number): number {
    const limit = n * Math.floor(4294967296 / n); // largest multiple of n ≤ 2^32
    for (;;) {
      const u = this.u32();
      if (u < limit) return u - n * Math.floor(u / n);
    }
  }

  /** Uniform bigint in [0, n) for n ≥ 1, by rejection on ⌈log₂ n⌉ random bits. */
  uniform(n: bigint): bigint {
    if (n <= 4294967296n) return BigInt(this.uniformSmall(Number(n)));
    const bits = n.toString(2).length;
    const words = Math.ceil(bits / 32);
    const topMask = bits % 32 === 0 ? 0xffffffff : 2 ** (bits % 32) - 1;
    for (;;) {
      let x = BigInt((this.u32() & topMask) >>> 0);
      for (let i = 1; i < words; i++) x = (x << 32n) | BigInt(this.u32());
      if (x < n) return x;
    }
  }

  /** Bernoulli(num/den), 0 ≤ num ≤ den, den ≥ 1. */
  bernoulli(num: bigint, den: bigint): boolean {
    return this.uniform(den) < num;
  }

  /** Algorithm 1 of arXiv 2004.00010: Bernoulli(exp(−γ)) for γ = num/den ≥ 0. */
  bernoulliExp(num: bigint, den: bigint): boolean {
    // γ > 1: exp(−γ) = exp(−1)^⌊γ⌋ · exp(−(γ − ⌊γ⌋)); stop at the first failure.
    while (num > den) {
      if (!this.bernoulliExp01(1n, 1n)) return false;
      num -= den;
    }
    return this.bernoulliExp01(num, den);
  }

  /** Algorithm 1, γ ∈ [0, 1]: K ← 1; while Bernoulli(γ/K) do K ← K + 1; return K odd (from K = `k`). */
  bernoulliExp01(num: bigint, den: bigint, k = 1n): boolean {
    while (this.bernoulli(num, den * k)) k++;
    return (k & 1n) === 1n;
  }

  /** Algorithm 2 of arXiv 2004.00010 with s = 1: discrete Laplace Lap_Z(t), P[Y = y] ∝ exp(−|y|/t), t ≥ 1 integer. */
  discreteLaplace(t: bigint): bigint {
    for (;;) {
      const u = this.uniform(t);
      if (!this.bernoulliExp(u, t)) continue;
      let v = 0n;
      while (this.bernoulliExp(1n, 1n)) v++;
      const y = u + t * v; // X = U + t·V, Y = ⌊X/s⌋ with s = 1
      const negative = (this.u32() & 1) === 1;
      if (negative && y === 0n) continue;
      return negative ? -y : y;
    }
  }
}

/** Exact σ² = a/b with a, b > 0 (bigints). */
interface Variance {
  a: bigint;
  b: bigint;
}

/** Exact rational value of a positive finite double: mantissa · 2^exponent. */
function rationalOfNumber(x: number): Variance {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const hi = view.getUint32(0);
  const lo = view.getUint32(4);
  const biased = (hi >>> 20) & 0x7ff;
  let mantissa = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let exponent: number;
  if (biased === 0) {
    exponent = -1074; // subnormal
  } else {
    mantissa |= 1n << 52n;
    exponent = biased - 1075;
  }
  while (mantissa > 0n && (mantissa & 1n) === 0n && exponent < 0) {
    mantissa >>= 1n;
    exponent++;
  }
  return exponent >= 0 ? { a: mantissa << BigInt(exponent), b: 1n } : { a: mantissa, b: 1n << BigInt(-exponent) };
}

function toBigIntStrict(v: bigint | number, name: string): bigint {
  if (typeof v === "bigint") return v;
  if (typeof v === "number" && Number.isSafeInteger(v)) return BigInt(v);
  throw new RangeError(`${name} must be a safe integer or a bigint, got ${String(v)}`);
}

function gcd(x: bigint, y: bigint): bigint {
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

/** Validates σ² and returns it as an exact reduced rational a/b. Throws `RangeError` on anything not positive/finite. */
function parseVariance(sigma2: DiscreteGaussianVariance): Variance {
  let a: bigint;
  let b: bigint;
  if (typeof sigma2 === "number") {
    if (!Number.isFinite(sigma2) || sigma2 <= 0) throw new RangeError(`sigma2 must be > 0 and finite, got ${sigma2}`);
    ({ a, b } = rationalOfNumber(sigma2));
  } else if (typeof sigma2 === "bigint") {
    a = sigma2;
    b = 1n;
  } else if (sigma2 !== null && typeof sigma2 === "object") {
    a = toBigIntStrict(sigma2.numerator, "sigma2.numerator");
    b = toBigIntStrict(sigma2.denominator, "sigma2.denominator");
    if (b <= 0n) throw new RangeError(`sigma2.denominator must be > 0, got ${b}`);
  } else {
    throw new RangeError(`sigma2 must be a number, bigint or {numerator, denominator}`);
  }
  if (a <= 0n) throw new RangeError(`sigma2 must be > 0, got ${a}/${b}`);
  const g = gcd(a, b);
  return { a: a / g, b: b / g };
}

/** ⌊√n⌋ for n ≥ 0 (Newton's method on bigints). */
export function isqrt(n: bigint): bigint {
  if (n < 0n) throw new RangeError("isqrt of a negative number");
  if (n < 2n) return n;
  let x = BigInt(Math.floor(Math.sqrt(Number(n)))) + 1n; // close start, then Newton down to the floor
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) break;
    x = y;
  }
  while (x * x > n) x--;
  while ((x + 1n) * (x + 1n) <= n) x++;
  return x;
}

/** Algorithm 3 of arXiv 2004.00010 for σ² = a/b, t = ⌊σ⌋ + 1. */
function discreteGaussianWith(reader: RandomReader, v: Variance, t: bigint): bigint {
  // Accept Y ~ Lap_Z(t) with probability exp(−(|Y| − σ²/t)²/(2σ²)) = exp(−(|Y|·b·t − a)² / (2·a·b·t²)).
  const den = 2n * v.a * v.b * t * t;
  const bt = v.b * t;
  for (;;) {
    const y = reader.discreteLaplace(t);
    const abs = y < 0n ? -y : y;
    const d = abs * bt - v.a;
    if (reader.bernoulliExp(d * d, den)) return y;
  }
}

/** σ² = a/b and t as numbers, when they and 2·a·b·t² (Algorithm 3's denominator) are all at most 2^53 − 1. */
interface NumberVariance {
  a: number;
  /** b·t */
  bt: number;
  t: number;
  /** 2·a·b·t² */
  den: number;
}

function numberVariance(v: Variance, t: bigint): NumberVariance | undefined {
  const max = BigInt(MAX_EXACT);
  const den = 2n * v.a * v.b * t * t;
  if (den > max || t > 4294967296n) return undefined; // den bounds a, b, t and b·t too
  return { a: Number(v.a), bt: Number(v.b * t), t: Number(t), den: Number(den) };
}

/**
 * Algorithm 3 in number arithmetic: the steps and random words of {@link discreteGaussianWith}; a Laplace draw so far
 * in the tail that |y|·b·t or d² passes 2^53 − 1 takes its acceptance test in BigInt.
 */
function discreteGaussianNumber(reader: RandomReader, v: NumberVariance): number {
  for (;;) {
    const y = reader.discreteLaplaceNumber(v.t);
    const abs = y < 0 ? -y : y;
    const ybt = abs * v.bt;
    const d = ybt - v.a;
    const accept =
      ybt <= MAX_EXACT && Math.abs(d) <= 94906265 // ⌊√(2^53 − 1)⌋: d² stays exact
        ? reader.bernoulliExpNumber(d * d, v.den)
        : reader.bernoulliExp((BigInt(abs) * BigInt(v.bt) - BigInt(v.a)) ** 2n, BigInt(v.den));
    if (accept) return y;
  }
}

/** One exact sample from the discrete Gaussian N_Z(0, σ²) (arXiv 2004.00010, Alg. 3). */
export function sampleDiscreteGaussian(
  sigma2: DiscreteGaussianVariance,
  random: RandomBytes = cryptoRandomBytes,
): bigint {
  const v = parseVariance(sigma2);
  const t = isqrt(v.a / v.b) + 1n;
  const reader = new RandomReader(random);
  const fast = numberVariance(v, t);
  return fast ? BigInt(discreteGaussianNumber(reader, fast)) : discreteGaussianWith(reader, v, t);
}

/**
 * Fills `out` with independent exact N_Z(0, σ²) samples. For `Int32Array`/`Float64Array` outputs a sample outside the
 * exactly representable range throws `RangeError` (practically impossible unless σ is astronomically large).
 */
export function fillDiscreteGaussian(
  out: BigInt64Array | Int32Array | Float64Array,
  sigma2: DiscreteGaussianVariance,
  random: RandomBytes = cryptoRandomBytes,
): void {
  const v = parseVariance(sigma2);
  const t = isqrt(v.a / v.b) + 1n;
  const fast = numberVariance(v, t);
  if (!fast) return fillWithBigInt(out, v, t, random);
  const reader = new RandomReader(random);
  const limit = out instanceof Int32Array ? 2147483647 : MAX_EXACT;
  for (let i = 0; i < out.length; i++) {
    const y = discreteGaussianNumber(reader, fast);
    if (out instanceof BigInt64Array) out[i] = BigInt(y);
    else if (y > limit || y < -limit)
      throw new RangeError(`discrete Gaussian sample ${y} does not fit in the output array`);
    else out[i] = y;
  }
}

/**
 * REFERENCE: {@link fillDiscreteGaussian} with every step in BigInt, whatever the sizes. Slower; it exists so tests can
 * check that the number path draws exactly the same samples from the same bytes.
 */
export function fillDiscreteGaussianBigInt(
  out: BigInt64Array | Int32Array | Float64Array,
  sigma2: DiscreteGaussianVariance,
  random: RandomBytes = cryptoRandomBytes,
): void {
  const v = parseVariance(sigma2);
  fillWithBigInt(out, v, isqrt(v.a / v.b) + 1n, random);
}

function fillWithBigInt(
  out: BigInt64Array | Int32Array | Float64Array,
  v: Variance,
  t: bigint,
  random: RandomBytes,
): void {
  const reader = new RandomReader(random);
  if (out instanceof BigInt64Array) {
    for (let i = 0; i < out.length; i++) {
      const y = discreteGaussianWith(reader, v, t);
      if (y !== BigInt.asIntN(64, y)) throw new RangeError(`discrete Gaussian sample ${y} does not fit in int64`);
      out[i] = y;
    }
    return;
  }
  const limit = out instanceof Int32Array ? 2147483647n : 9007199254740991n;
  for (let i = 0; i < out.length; i++) {
    const y = discreteGaussianWith(reader, v, t);
    if (y > limit || y < -limit) throw new RangeError(`discrete Gaussian sample ${y} does not fit in the output array`);
    out[i] = Number(y);
  }
}
