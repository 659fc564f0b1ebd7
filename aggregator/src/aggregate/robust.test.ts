import { describe, expect, it } from "vitest";
import { coordinateMedian, trimmedMean } from "./robust.ts";

const f = (...xs: number[]) => Float32Array.from(xs);

describe("robust aggregation (Yin et al. 2018)", () => {
  it("takes the coordinate-wise median, odd and even counts", () => {
    expect(Array.from(coordinateMedian([f(1, 10), f(3, -5), f(2, 100)]))).toEqual([2, 10]);
    expect(Array.from(coordinateMedian([f(1), f(4), f(2), f(100)]))).toEqual([3]);
  });

  it("trims ⌊βK⌋ from each end before averaging, ignoring an outlier", () => {
    const updates = [f(1, 1), f(2, 2), f(3, 3), f(4, 4), f(1e6, -1e6)];
    expect(Array.from(trimmedMean(updates, 0.2))).toEqual([3, 2]);
    expect(Array.from(trimmedMean([f(1), f(2), f(6)], 0))).toEqual([3]);
  });

  it("rejects empty input, ragged lengths and a bad trim fraction", () => {
    expect(() => coordinateMedian([])).toThrow(/at least one/);
    expect(() => trimmedMean([f(1, 2), f(1)], 0.1)).toThrow(/lengths differ/);
    expect(() => trimmedMean([f(1)], 0.5)).toThrow(/trimFraction/);
  });
});
