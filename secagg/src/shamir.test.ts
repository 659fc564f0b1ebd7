import { describe, expect, it } from "vitest";
import { bytesToBigInt, combineShares, interpolateAtZero, SHAMIR_PRIME, SHARE_BYTES, splitSecret } from "./shamir.ts";

const secret = () => crypto.getRandomValues(new Uint8Array(32));

describe("Shamir t-of-n over GF(2^256 + 297)", () => {
  it("recovers the secret from any t of n shares", () => {
    const s = secret();
    const shares = splitSecret(s, [1, 2, 3, 4, 5, 6, 7], 4);
    for (const subset of [
      [0, 1, 2, 3],
      [3, 4, 5, 6],
      [6, 0, 4, 2],
    ]) {
      expect(
        Array.from(
          combineShares(
            subset.map((i) => shares[i]!),
            4,
          ),
        ),
      ).toEqual(Array.from(s));
    }
  });

  it("refuses fewer than t shares, and t − 1 shares interpolate to another value", () => {
    const s = secret();
    const shares = splitSecret(s, [3, 9, 12, 20, 31], 5);
    expect(() => combineShares(shares.slice(0, 4), 5)).toThrow(expect.objectContaining({ reason: "below-threshold" }));
    expect(interpolateAtZero(shares.slice(0, 4))).not.toBe(bytesToBigInt(s));
  });

  it("rejects repeated or out-of-range points and a bad threshold", () => {
    expect(() => splitSecret(secret(), [1, 1, 2], 2)).toThrow(RangeError);
    expect(() => splitSecret(secret(), [0, 1, 2], 2)).toThrow(RangeError);
    expect(() => splitSecret(secret(), [1, 2, 3], 4)).toThrow(RangeError);
    expect(() => splitSecret(new Uint8Array(31), [1, 2, 3], 2)).toThrow(RangeError);
  });

  it("works in a prime field just above 2^256: 33-byte shares, and the largest 32-byte secret comes back", () => {
    const p = SHAMIR_PRIME;
    expect(p > 1n << 256n && p - (1n << 256n) === 297n).toBe(true);
    // Miller–Rabin with the first 20 prime bases (a composite passes all with probability < 4^−20)
    const power = (b: bigint, e: bigint) => {
      let r = 1n;
      for (b %= p; e > 0n; e >>= 1n, b = (b * b) % p) if (e & 1n) r = (r * b) % p;
      return r;
    };
    let d = p - 1n;
    let s = 0;
    while ((d & 1n) === 0n) [d, s] = [d >> 1n, s + 1];
    for (const a of [2n, 3n, 5n, 7n, 11n, 13n, 17n, 19n, 23n, 29n, 31n, 37n, 41n, 43n, 47n, 53n, 59n, 61n, 67n, 71n]) {
      let x = power(a, d);
      let witness = x !== 1n && x !== p - 1n;
      for (let i = 1; i < s && witness; i++) {
        x = (x * x) % p;
        if (x === p - 1n) witness = false;
      }
      expect(witness).toBe(false);
    }
    const top = new Uint8Array(32).fill(0xff);
    const shares = splitSecret(top, [1, 2, 3, 4], 3);
    expect(shares.every((sh) => sh.y.length === SHARE_BYTES && SHARE_BYTES === 33)).toBe(true);
    expect(Array.from(combineShares(shares.slice(1), 3))).toEqual(Array.from(top));
  });
});
