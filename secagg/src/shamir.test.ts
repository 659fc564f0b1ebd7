import { describe, expect, it } from "vitest";
import { bytesToBigInt, combineShares, interpolateAtZero, splitSecret } from "./shamir.ts";

const secret = () => crypto.getRandomValues(new Uint8Array(32));

describe("Shamir t-of-n over GF(2^521 − 1)", () => {
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
});
