/**
 * @module
 * Shamir t-of-n secret sharing (Shamir, CACM 1979) over the binary field GF(2^16), applied to a 32-byte secret — an
 * X25519 secret key or a mask seed — as 16 independent sharings of its 16-bit chunks, the way byte-wise GF(2^8)
 * implementations (e.g. HashiCorp Vault's `shamir`) split longer secrets. Chunk c of the secret is f_c(0) of a random
 * polynomial of degree t − 1 over GF(2^16); share i is (i, f_0(i) … f_15(i)). Any t shares give every f_c(0) by
 * Lagrange interpolation; any t − 1 shares are consistent with every value of every chunk, each equally likely, and the
 * 16 polynomials' coefficients are drawn independently, so t − 1 shares reveal nothing about the whole secret. Each
 * coefficient is 16 uniform random bits: uniform in the field with no reduction.
 *
 * GF(2^16) has 65,535 non-zero points, as many as a roster may hold devices (a device's point is its 1-based roster
 * position). The field is GF(2)[x] / (x^16 + x^12 + x^3 + x + 1), a primitive polynomial; sharing multiplies by each
 * point through two 256-entry tables (1 KiB, built per point) and interpolation works in log/antilog tables, so both are
 * small-integer steps where GF(2^256 + 297) needed 257-bit BigInts. The field's size changes nothing in the secrecy
 * above.
 *
 * Share format v2, 33 bytes: one format byte (2), then the 16 values big-endian. Share format v1 (one 33-byte
 * big-endian value of GF(2^256 + 297)) always began with 0 or 1, so a v1 share is told apart and refused by name.
 */
import { SecAggError } from "./errors.ts";

/** The format byte that starts every share. */
export const SHARE_FORMAT = 2;
/** Bytes of one share: the format byte and 16 values of GF(2^16). */
export const SHARE_BYTES = 33;
const SECRET_BYTES = 32;
const CHUNKS = SECRET_BYTES / 2;
/** x^16 + x^12 + x^3 + x + 1: primitive, so x generates the 65,535 non-zero elements. */
export const GF65536_POLYNOMIAL = 0x1100b;
const ORDER = 0xffff;

export interface Share {
  /** The evaluation point, 1 ≤ x ≤ 65535 (a device's 1-based roster position). */
  x: number;
  /** SHARE_BYTES bytes: the format byte, then f_0(x) … f_15(x), 2 bytes each, big-endian. */
  y: Uint8Array;
}

/** Random bytes; `crypto.getRandomValues` unless a test injects its own. */
export type RandomBytes = (length: number) => Uint8Array;
export const cryptoRandomBytes: RandomBytes = (length) => crypto.getRandomValues(new Uint8Array(length));

interface FieldTables {
  /** LOG[a] = i with x^i = a, for a ≠ 0. */
  log: Uint16Array;
  /** EXP[i] = x^i for 0 ≤ i < 2·65535, so EXP[LOG[a] + LOG[b]] needs no reduction. */
  exp: Uint16Array;
}

let tables: FieldTables | undefined;

/** The log and antilog tables of GF(2^16), built on first use (256 KiB); throws if x does not generate the field. */
export function gf65536Tables(): FieldTables {
  if (tables) return tables;
  const log = new Uint16Array(ORDER + 1);
  const exp = new Uint16Array(2 * ORDER);
  let a = 1;
  for (let i = 0; i < ORDER; i++) {
    if (i > 0 && a === 1) throw new Error("GF(2^16): the polynomial is not primitive");
    exp[i] = a;
    exp[i + ORDER] = a;
    log[a] = i;
    a <<= 1;
    if (a & 0x10000) a ^= GF65536_POLYNOMIAL;
  }
  if (a !== 1) throw new Error("GF(2^16): the polynomial is not primitive");
  tables = { log, exp };
  return tables;
}

/** a · b in GF(2^16). */
export function gf65536Multiply(a: number, b: number): number {
  if (a === 0 || b === 0) return 0;
  const { log, exp } = gf65536Tables();
  return exp[log[a]! + log[b]!]!;
}

/** Splits a 32-byte secret into one share per point of `xs`, any `threshold` of which recover it. */
export function splitSecret(
  secret: Uint8Array,
  xs: readonly number[],
  threshold: number,
  random: RandomBytes = cryptoRandomBytes,
): Share[] {
  return splitSecrets([secret], xs, threshold, random)[0]!;
}

/**
 * Splits each of several 32-byte secrets into one share per point of `xs` (out[s][i] is secret s's share at xs[i]),
 * each with its own random polynomials; one multiplication table per point serves them all.
 */
export function splitSecrets(
  secrets: readonly Uint8Array[],
  xs: readonly number[],
  threshold: number,
  random: RandomBytes = cryptoRandomBytes,
): Share[][] {
  for (const secret of secrets) {
    if (secret.length !== SECRET_BYTES) throw new RangeError(`a shared secret has ${SECRET_BYTES} bytes`);
  }
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > xs.length) {
    throw new RangeError(`threshold must be in [1, ${xs.length}], got ${threshold}`);
  }
  checkPoints(xs);
  const width = threshold * CHUNKS;
  // coefficients[s·width + i·16 + c]: the x^i coefficient of chunk c's polynomial of secret s; i = 0 is the secret.
  const coefficients = new Uint16Array(secrets.length * width);
  const noise = random(2 * (width - CHUNKS) * secrets.length);
  for (const [s, secret] of secrets.entries()) {
    const base = s * width;
    for (let c = 0; c < CHUNKS; c++) coefficients[base + c] = (secret[2 * c]! << 8) | secret[2 * c + 1]!;
    const from = s * (width - CHUNKS);
    for (let j = 0; j < width - CHUNKS; j++) {
      coefficients[base + CHUNKS + j] = (noise[2 * (from + j)]! << 8) | noise[2 * (from + j) + 1]!;
    }
  }
  const out = secrets.map(() => new Array<Share>(xs.length));
  const times = new Uint16Array(512);
  for (const [p, x] of xs.entries()) {
    multiplicationTable(x, times);
    for (let s = 0; s < secrets.length; s++) {
      const base = s * width;
      const top = base + width - CHUNKS;
      const y = new Uint8Array(SHARE_BYTES);
      y[0] = SHARE_FORMAT;
      for (let c = 0; c < CHUNKS; c++) {
        // Horner: f(x) = (…(a_{t−1}·x + a_{t−2})·x + …)·x + a_0; addition in GF(2^16) is XOR.
        let v = coefficients[top + c]!;
        for (let i = top - CHUNKS + c; i >= base; i -= CHUNKS) {
          v = times[v & 0xff]! ^ times[256 + (v >>> 8)]! ^ coefficients[i]!;
        }
        y[1 + 2 * c] = v >>> 8;
        y[2 + 2 * c] = v & 0xff;
      }
      out[s]![p] = { x, y };
    }
  }
  return out;
}

/**
 * Multiplication by x as two 256-entry tables, out[b] = b·x and out[256 + b] = (b·2^8)·x, so v·x is
 * out[v & 255] ⊕ out[256 + (v >> 8)]: multiplication by a constant is linear over GF(2), and 1 KiB stays in the L1
 * cache where the 384 KiB log/antilog tables would not. Built from the 16 doublings x·2^i by XOR.
 */
function multiplicationTable(x: number, out: Uint16Array): void {
  let power = x;
  out[0] = 0;
  out[256] = 0;
  for (let i = 0; i < 16; i++) {
    const half = i < 8 ? 0 : 256;
    const bit = 1 << (i & 7);
    // every b in [bit, 2·bit) is bit ⊕ (b − bit), whose product is already in the table
    for (let b = bit; b < 2 * bit; b++) out[half + b] = power ^ out[half + b - bit]!;
    power <<= 1;
    if (power & 0x10000) power ^= GF65536_POLYNOMIAL;
  }
}

/**
 * Recovers the secret from at least `threshold` shares with distinct points (the first `threshold` are used).
 * Throws `SecAggError("below-threshold")` with fewer, `SecAggError("bad-message")` for a share of another format.
 */
export function combineShares(shares: readonly Share[], threshold: number): Uint8Array {
  if (shares.length < threshold) {
    throw new SecAggError("below-threshold", `${shares.length} shares cannot recover a ${threshold}-of-n secret`);
  }
  return interpolateAtZero(shares.slice(0, threshold));
}

/**
 * The secret at x = 0 of the polynomials through `shares`, by Lagrange: Σ_i y_i · λ_i with
 * λ_i = Π_{j≠i} x_j / (x_j − x_i), and x_j − x_i = x_j ⊕ x_i in characteristic 2. The λ_i are computed once, in the
 * log domain, for all 16 chunks.
 */
export function interpolateAtZero(shares: readonly Share[]): Uint8Array {
  checkPoints(shares.map((s) => s.x));
  for (const s of shares) checkShareFormat(s.y);
  const { log, exp } = gf65536Tables();
  const secret = new Uint8Array(SECRET_BYTES);
  const acc = new Uint16Array(CHUNKS);
  for (const si of shares) {
    let logLambda = 0;
    for (const sj of shares) {
      if (sj.x === si.x) continue;
      logLambda += log[sj.x]! - log[sj.x ^ si.x]! + ORDER;
    }
    logLambda %= ORDER;
    for (let c = 0; c < CHUNKS; c++) {
      const y = (si.y[1 + 2 * c]! << 8) | si.y[2 + 2 * c]!;
      if (y !== 0) acc[c] = acc[c]! ^ exp[log[y]! + logLambda]!;
    }
  }
  for (let c = 0; c < CHUNKS; c++) {
    secret[2 * c] = acc[c]! >>> 8;
    secret[2 * c + 1] = acc[c]! & 0xff;
  }
  return secret;
}

/**
 * Refuses a share that is not of format v2 with `SecAggError("bad-message")`, naming v1 (GF(2^256 + 297), which began
 * with 0 or 1) so a device or edge of the earlier release is told what differs.
 */
export function checkShareFormat(y: Uint8Array): void {
  if (y.length === SHARE_BYTES && y[0] === SHARE_FORMAT) return;
  if (y.length === SHARE_BYTES && y[0]! <= 1) {
    throw new SecAggError(
      "bad-message",
      "a share of format v1 (GF(2^256 + 297)) is refused: this round's shares are format v2 (GF(2^16)); update the device or edge",
    );
  }
  throw new SecAggError("bad-message", `a share is ${SHARE_BYTES} bytes of format ${SHARE_FORMAT}`);
}

function checkPoints(xs: readonly number[]): void {
  const seen = new Set<number>();
  for (const x of xs) {
    if (!Number.isInteger(x) || x < 1 || x > 0xffff) throw new RangeError(`a share point is in [1, 65535], got ${x}`);
    if (seen.has(x)) throw new RangeError(`share point ${x} appears twice`);
    seen.add(x);
  }
}
