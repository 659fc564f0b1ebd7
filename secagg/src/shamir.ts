/**
 * @module
 * Shamir t-of-n secret sharing (Shamir, CACM 1979) over the prime field GF(p), p = 2^256 + 297, the smallest prime
 * above 2^256: a 32-byte secret — an X25519 secret key or a mask seed — is one field element, and a share is 33 bytes
 * (GF(2^521 − 1) took 66; the field's size changes nothing in the secrecy below). A secret is f(0) of a random polynomial
 * of degree t − 1; share i is (i, f(i)). Any t shares give f(0) by Lagrange interpolation; any t − 1 shares are
 * consistent with every secret (each is equally likely), so they reveal nothing.
 */
import { SecAggError } from "./errors.ts";

/** The field modulus 2^256 + 297 (prime; the next integer above 2^256 that is). */
export const SHAMIR_PRIME = (1n << 256n) + 297n;
/** Bytes of one share value (⌈257 / 8⌉), big-endian. */
export const SHARE_BYTES = 33;
const SECRET_BYTES = 32;

export interface Share {
  /** The evaluation point, 1 ≤ x ≤ 65535 (a device's 1-based roster position). */
  x: number;
  /** f(x), SHARE_BYTES big-endian bytes. */
  y: Uint8Array;
}

/** Random bytes; `crypto.getRandomValues` unless a test injects its own. */
export type RandomBytes = (length: number) => Uint8Array;
export const cryptoRandomBytes: RandomBytes = (length) => crypto.getRandomValues(new Uint8Array(length));

/** Splits a 32-byte secret into one share per point of `xs`, any `threshold` of which recover it. */
export function splitSecret(
  secret: Uint8Array,
  xs: readonly number[],
  threshold: number,
  random: RandomBytes = cryptoRandomBytes,
): Share[] {
  if (secret.length !== SECRET_BYTES) throw new RangeError(`a shared secret has ${SECRET_BYTES} bytes`);
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > xs.length) {
    throw new RangeError(`threshold must be in [1, ${xs.length}], got ${threshold}`);
  }
  checkPoints(xs);
  const coefficients = [bytesToBigInt(secret)];
  // 48 random bytes (384 bits) reduced mod p: statistical distance from uniform below p / 2^384 < 2^-127.
  for (let i = 1; i < threshold; i++) coefficients.push(bytesToBigInt(random(48)) % SHAMIR_PRIME);
  return xs.map((x) => {
    const bx = BigInt(x);
    let y = 0n;
    for (let i = coefficients.length - 1; i >= 0; i--) y = reduceSmallMultiple(y * bx + coefficients[i]!);
    return { x, y: bigIntToBytes(y, SHARE_BYTES) };
  });
}

/**
 * Recovers the secret from at least `threshold` shares with distinct points (the first `threshold` are used).
 * Throws `SecAggError("below-threshold")` with fewer.
 */
export function combineShares(shares: readonly Share[], threshold: number): Uint8Array {
  if (shares.length < threshold) {
    throw new SecAggError("below-threshold", `${shares.length} shares cannot recover a ${threshold}-of-n secret`);
  }
  const used = shares.slice(0, threshold);
  checkPoints(used.map((s) => s.x));
  const secret = interpolateAtZero(used);
  if (secret >= 1n << 256n) throw new SecAggError("bad-share", "the shares do not interpolate to a 32-byte secret");
  return bigIntToBytes(secret, SECRET_BYTES);
}

/** f(0) of the polynomial through `shares`, by Lagrange: Σ y_i · Π_{j≠i} x_j / (x_j − x_i). */
export function interpolateAtZero(shares: readonly Share[]): bigint {
  let numerator = 1n;
  for (const s of shares) numerator = mod(numerator * BigInt(s.x));
  let acc = 0n;
  for (const si of shares) {
    let denominator = BigInt(si.x);
    for (const sj of shares) if (sj.x !== si.x) denominator = mod(denominator * BigInt(sj.x - si.x));
    acc = mod(acc + bytesToBigInt(si.y) * invert(denominator));
  }
  return mod(acc * numerator);
}

function checkPoints(xs: readonly number[]): void {
  const seen = new Set<number>();
  for (const x of xs) {
    if (!Number.isInteger(x) || x < 1 || x > 0xffff) throw new RangeError(`a share point is in [1, 65535], got ${x}`);
    if (seen.has(x)) throw new RangeError(`share point ${x} appears twice`);
    seen.add(x);
  }
}

const LOW_256 = (1n << 256n) - 1n;

/**
 * v mod p for 0 ≤ v < 2^32·p (Horner's y·x + c with x < 2^16) without a division: with v = h·2^256 + l,
 * v ≡ l − 297·h (mod p) since 2^256 ≡ −297, and l − 297·h lies in (−p, p).
 */
function reduceSmallMultiple(v: bigint): bigint {
  const r = (v & LOW_256) - 297n * (v >> 256n);
  return r < 0n ? r + SHAMIR_PRIME : r;
}

function mod(a: bigint): bigint {
  const r = a % SHAMIR_PRIME;
  return r < 0n ? r + SHAMIR_PRIME : r;
}

/** a⁻¹ mod p by the extended Euclidean algorithm (much faster than a^(p−2) on BigInt). */
function invert(a: bigint): bigint {
  let [r0, r1] = [SHAMIR_PRIME, mod(a)];
  let [t0, t1] = [0n, 1n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [t0, t1] = [t1, t0 - q * t1];
  }
  return mod(t0);
}

export function bytesToBigInt(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

export function bigIntToBytes(value: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let v = value;
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}
