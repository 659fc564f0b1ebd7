import { seededRandomBytes } from "./samplers/testing.ts";
import { describe, expect, it } from "vitest";
import { addLocalNoise } from "./local-noise.ts";

describe("addLocalNoise", () => {
  it("adds N(0, (zC)²) per coordinate from the injected CSPRNG", () => {
    const n = 200_000;
    const v = new Float32Array(n).fill(0.25);
    addLocalNoise(v, 2, 1.5, seededRandomBytes(7));
    let mean = 0;
    for (const x of v) mean += x;
    mean /= n;
    let varSum = 0;
    for (const x of v) varSum += (x - mean) ** 2;
    const sd = Math.sqrt(varSum / (n - 1));
    expect(mean).toBeCloseTo(0.25, 1);
    expect(Math.abs(mean - 0.25)).toBeLessThan(5 * (3 / Math.sqrt(n)));
    expect(sd / 3).toBeGreaterThan(0.99);
    expect(sd / 3).toBeLessThan(1.01);
  });
  it("z = 0 leaves the update unchanged; bad C or z throw and change nothing", () => {
    const v = new Float32Array([1, 2, 3]);
    addLocalNoise(v, 1, 0, seededRandomBytes(1));
    expect([...v]).toEqual([1, 2, 3]);
    expect(() => addLocalNoise(v, 0, 1, seededRandomBytes(1))).toThrow(RangeError);
    expect(() => addLocalNoise(v, 1, -1, seededRandomBytes(1))).toThrow(RangeError);
    expect(() => addLocalNoise(v, Number.POSITIVE_INFINITY, 1, seededRandomBytes(1))).toThrow(RangeError);
    expect([...v]).toEqual([1, 2, 3]);
  });
});
