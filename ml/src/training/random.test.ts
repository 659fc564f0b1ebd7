import { describe, expect, it } from "vitest";
import { randomPermutation, UniformSource, xoshiroRandomBytes } from "./random.ts";

describe("xoshiroRandomBytes", () => {
  it("is deterministic per seed, fills any length, and differs across seeds", () => {
    const a = new Uint8Array(37);
    const b = new Uint8Array(37);
    xoshiroRandomBytes(1)(a);
    xoshiroRandomBytes(1)(b);
    expect(a).toEqual(b);
    xoshiroRandomBytes(2)(b);
    expect(a).not.toEqual(b);
    // Seeds differing only in the high 32 bits give different streams.
    xoshiroRandomBytes(2 ** 32)(b);
    xoshiroRandomBytes(0)(a);
    expect(a).not.toEqual(b);
    expect(() => xoshiroRandomBytes(1.5)).toThrow(RangeError);
  });

  it("has roughly uniform bytes", () => {
    const bytes = new Uint8Array(256 * 1000);
    xoshiroRandomBytes(3)(bytes);
    const counts = new Array<number>(256).fill(0);
    for (const v of bytes) counts[v]!++;
    // χ² with 255 degrees of freedom: mean 255, sd ≈ 22.6; 400 is > 6 sd.
    const chi2 = counts.reduce((s, c) => s + (c - 1000) ** 2 / 1000, 0);
    expect(chi2).toBeLessThan(400);
  });
});

describe("UniformSource", () => {
  it("draws unbiased integers below a bound and 53-bit uniforms in [0, 1)", () => {
    const src = new UniformSource(xoshiroRandomBytes(4), 16);
    const counts = [0, 0, 0];
    for (let i = 0; i < 30_000; i++) counts[src.below(3)]!++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(500);
    for (let i = 0; i < 1000; i++) {
      const u = src.uniform53();
      expect(u).toBeGreaterThanOrEqual(0);
      expect(u).toBeLessThan(1);
    }
    expect(src.below(1)).toBe(0);
  });
});

describe("randomPermutation", () => {
  it("returns permutations and every position is uniform", () => {
    const src = new UniformSource(xoshiroRandomBytes(5));
    const n = 5;
    const firstCounts = new Array<number>(n).fill(0);
    for (let t = 0; t < 10_000; t++) {
      const p = randomPermutation(n, src);
      expect([...p].sort()).toEqual([0, 1, 2, 3, 4]);
      firstCounts[p[0]!]!++;
    }
    for (const c of firstCounts) expect(Math.abs(c - 2000)).toBeLessThan(200);
    expect(randomPermutation(0, src)).toEqual(new Uint32Array(0));
  });
});
