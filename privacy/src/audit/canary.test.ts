import { describe, expect, it } from "vitest";
import { seededRandomBytes } from "../samplers/testing.ts";
import { cosineSimilarity, randomUnitVector } from "./canary.ts";

describe("canaries", () => {
  it("are unit vectors whose cosines with each other are ≈ N(0, 1/d)", () => {
    const d = 2000;
    const random = seededRandomBytes(7);
    const anchor = randomUnitVector(d, random);
    let norm = 0;
    for (const x of anchor) norm += x * x;
    expect(Math.sqrt(norm)).toBeCloseTo(1, 6);
    const n = 400;
    let ss = 0;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const c = cosineSimilarity(anchor, randomUnitVector(d, random));
      sum += c;
      ss += c * c;
    }
    expect(Math.abs(sum / n)).toBeLessThan(4 / Math.sqrt(n * d));
    expect(ss / n).toBeGreaterThan(0.8 / d);
    expect(ss / n).toBeLessThan(1.2 / d);
  });

  it("cosine is scale-free and 0 against the zero vector", () => {
    expect(cosineSimilarity([1, 2, 3], [2, 4, 6])).toBeCloseTo(1, 12);
    expect(cosineSimilarity([1, 0], [0, 5])).toBe(0);
    expect(cosineSimilarity([0, 0], [1, 1])).toBe(0);
    expect(() => cosineSimilarity([1], [1, 2])).toThrow(RangeError);
  });
});
