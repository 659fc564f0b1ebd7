/**
 * @module
 * Exact sampling from the discrete Gaussian N_Z(0, σ²), P[X = x] ∝ exp(−x²/(2σ²)) for x ∈ Z, following
 * Canonne, Kamath & Steinke 2020, "The Discrete Gaussian for Differential Privacy" (arXiv 2004.00010), §5:
 * Algorithm 1 (Bernoulli(exp(−γ)) for rational γ), Algorithm 2 (discrete Laplace Lap_Z(t) by rejection),
 * Algorithm 3 (discrete Gaussian by rejection from Lap_Z(t) with t = ⌊σ⌋ + 1).
 *
 * Every step uses exact integer arithmetic (BigInt) and uniform integers drawn by rejection from the injected
 * {@link RandomBytes}: no floating point touches the output distribution, so the sample is exact.
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

/** Buffered reader of random bytes: pulls 4 KiB at a time so thousands of small draws cost one source call. */
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

  /** Uniform integer in [0, n) for 1 ≤ n ≤ 2³², by rejection (no modulo bias). */
  private uniformSmall(n: number): number {
    const limit = 4294967296 - (4294967296 % n); // largest multiple of n ≤ 2^32
    for (;;) {
      const u = this.u32();
      if (u < limit) return u % n;
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

  /** Algorithm 1, γ ∈ [0, 1]: K ← 1; while Bernoulli(γ/K) do K ← K + 1; return K odd. */
  private bernoulliExp01(num: bigint, den: bigint): boolean {
    let k = 1n;
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

/** One exact sample from the discrete Gaussian N_Z(0, σ²) (arXiv 2004.00010, Alg. 3). */
export function sampleDiscreteGaussian(
  sigma2: DiscreteGaussianVariance,
  random: RandomBytes = cryptoRandomBytes,
): bigint {
  const v = parseVariance(sigma2);
  return discreteGaussianWith(new RandomReader(random), v, isqrt(v.a / v.b) + 1n);
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
