import { describe, expect, it } from "vitest";
import { chooseParameters, hypergeometricUpperTail } from "./parameters.ts";

describe("chooseParameters (SecAgg+ degree and threshold)", () => {
  it("computes the hypergeometric tail exactly (against direct counting)", () => {
    // 10 items, 4 marked, draw 3: P[X ≥ 2] = (C(4,2)·C(6,1) + C(4,3)) / C(10,3) = (36 + 4) / 120.
    expect(hypergeometricUpperTail(10, 4, 3, 2)).toBeCloseTo(40 / 120, 12);
    expect(hypergeometricUpperTail(10, 4, 3, 0)).toBeCloseTo(1, 12);
  });

  it("keeps t > k/2 and survives a third dropping out, at the round sizes of the issue", () => {
    for (const n of [100, 200, 300]) {
      const p = chooseParameters(n, 16, 1000);
      const dropped = Math.floor(n / 3);
      expect(2 * p.threshold).toBeGreaterThan(p.neighbours);
      expect(p.minSurvivors).toBe(n - dropped);
      const failure = n * hypergeometricUpperTail(n - 1, dropped, p.neighbours, p.neighbours - p.threshold + 1);
      expect(failure).toBeLessThanOrEqual(2 ** -30);
      // The smallest such even k: k − 2 fails the bound.
      const k = p.neighbours - 2;
      const smaller = n * hypergeometricUpperTail(n - 1, dropped, k, k - (k / 2 + 1) + 1);
      expect(smaller).toBeGreaterThan(2 ** -30);
    }
  });

  it("is sparse at 300 devices and complete (SecAgg) for small rounds", () => {
    expect(chooseParameters(300, 16, 10).neighbours).toBeLessThan(200);
    expect(chooseParameters(5, 16, 10).neighbours).toBe(4);
  });

  it("refuses rounds it cannot run", () => {
    expect(() => chooseParameters(2, 16, 10)).toThrow(RangeError);
    expect(() => chooseParameters(10, 0, 10)).toThrow(RangeError);
    expect(() => chooseParameters(10, 16, 0)).toThrow(RangeError);
  });
});
