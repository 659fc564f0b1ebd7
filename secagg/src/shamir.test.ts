import { describe, expect, it } from "vitest";
import {
  checkShareFormat,
  combineShares,
  gf65536Multiply,
  gf65536Tables,
  GF65536_POLYNOMIAL,
  interpolateAtZero,
  SHARE_BYTES,
  SHARE_FORMAT,
  splitSecret,
  splitSecrets,
} from "./shamir.ts";

const secret = () => crypto.getRandomValues(new Uint8Array(32));

/** Carry-less multiplication reduced by the field polynomial, bit by bit: an independent reference for the tables. */
function slowMultiply(a: number, b: number): number {
  let r = 0;
  for (let i = 15; i >= 0; i--) {
    r <<= 1;
    if (r & 0x10000) r ^= GF65536_POLYNOMIAL;
    if ((b >> i) & 1) r ^= a;
  }
  return r;
}

describe("Shamir t-of-n over GF(2^16), 16 chunks of a 32-byte secret", () => {
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

  it("recovers at the roster's extremes: points up to 65535, t = k/2 + 1 of a large neighbourhood", () => {
    const s = secret();
    const points = Array.from({ length: 166 }, (_, i) => 65535 - 397 * i);
    const shares = splitSecret(s, points, 84);
    expect(Array.from(combineShares(shares.slice(82), 84))).toEqual(Array.from(s));
    expect(Array.from(combineShares([...shares].reverse(), 84))).toEqual(Array.from(s));
  });

  it("splits several secrets at once, each recoverable alone, with polynomials of their own", () => {
    const [a, b] = [secret(), secret()];
    const [sa, sb] = splitSecrets([a, b], [5, 6, 7, 8], 3);
    expect(Array.from(combineShares(sa!.slice(1), 3))).toEqual(Array.from(a));
    expect(Array.from(combineShares(sb!.slice(0, 3), 3))).toEqual(Array.from(b));
    // the same secret twice gets two independent sharings
    const [s1, s2] = splitSecrets([a, a], [1, 2, 3], 2);
    expect(Array.from(s1![0]!.y)).not.toEqual(Array.from(s2![0]!.y));
  });

  it("refuses fewer than t shares, and t − 1 shares interpolate to another value", () => {
    const s = secret();
    const shares = splitSecret(s, [3, 9, 12, 20, 31], 5);
    expect(() => combineShares(shares.slice(0, 4), 5)).toThrow(expect.objectContaining({ reason: "below-threshold" }));
    expect(Array.from(interpolateAtZero(shares.slice(0, 4)))).not.toEqual(Array.from(s));
  });

  it("t − 1 shares are uniform whatever the secret: each value of a chunk is equally likely (bounded χ² test)", () => {
    // Two shares (t = 3) of the all-zero and the all-ones secret: the first chunk's values at points 1 and 2, over
    // 4,096 sharings each, bucketed jointly by their top 2 bits. Both must look uniform (χ², 15 dof, < 37.7: p ≈ 0.001).
    for (const fill of [0x00, 0xff]) {
      const counts = new Array<number>(16).fill(0);
      for (let r = 0; r < 4096; r++) {
        const [a, b] = splitSecret(new Uint8Array(32).fill(fill), [1, 2, 3], 3);
        counts[((a!.y[1]! >> 6) << 2) | (b!.y[1]! >> 6)]!++;
      }
      const chi2 = counts.reduce((sum, c) => sum + (c - 256) ** 2 / 256, 0);
      expect(chi2).toBeLessThan(37.7);
    }
  });

  it("rejects repeated or out-of-range points and a bad threshold", () => {
    expect(() => splitSecret(secret(), [1, 1, 2], 2)).toThrow(RangeError);
    expect(() => splitSecret(secret(), [0, 1, 2], 2)).toThrow(RangeError);
    expect(() => splitSecret(secret(), [1, 2, 65536], 2)).toThrow(RangeError);
    expect(() => splitSecret(secret(), [1, 2, 3], 4)).toThrow(RangeError);
    expect(() => splitSecret(new Uint8Array(31), [1, 2, 3], 2)).toThrow(RangeError);
  });

  it("multiplies in GF(2^16) as the bitwise reference does, and x generates all 65,535 non-zero elements", () => {
    const { exp } = gf65536Tables();
    expect(new Set(exp.subarray(0, 65535)).size).toBe(65535);
    expect(exp.subarray(0, 65535).includes(0)).toBe(false);
    const pairs = crypto.getRandomValues(new Uint16Array(2000));
    for (let i = 0; i < pairs.length; i += 2) {
      expect(gf65536Multiply(pairs[i]!, pairs[i + 1]!)).toBe(slowMultiply(pairs[i]!, pairs[i + 1]!));
    }
    expect(gf65536Multiply(0, 1234)).toBe(0);
  });

  it("writes format v2 shares of 33 bytes and refuses v1 shares (GF(2^256 + 297)) by name", () => {
    const shares = splitSecret(secret(), [1, 2, 3, 4], 3);
    expect(shares.every((sh) => sh.y.length === SHARE_BYTES && sh.y[0] === SHARE_FORMAT)).toBe(true);
    const v1 = shares.map((sh) => ({ x: sh.x, y: Uint8Array.of(0, ...sh.y.subarray(1)) }));
    expect(() => combineShares(v1, 3)).toThrow(
      expect.objectContaining({ reason: "bad-message", message: expect.stringMatching(/format v1/) }),
    );
    expect(() => checkShareFormat(new Uint8Array(32))).toThrow(expect.objectContaining({ reason: "bad-message" }));
  });
});
