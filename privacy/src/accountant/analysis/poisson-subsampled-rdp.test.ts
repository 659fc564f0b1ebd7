import { describe, expect, it } from "vitest";
import { poissonSubsampledRdp } from "./poisson-subsampled-rdp.ts";
import { rdpOfStep } from "./rdp.ts";

describe("Zhu & Wang 2019's general Poisson-subsampling bound", () => {
  it("is sound against the exact sampled Gaussian (above it), below the unsampled curve, and exact at order 2", () => {
    const z = Math.sqrt(10);
    const gaussian = (a: number) => a / (2 * z * z);
    const orders = [2, 3, 4, 8, 16, 32, 64];
    for (const q of [0.001, 0.01, 0.1, 0.5]) {
      const sampled = poissonSubsampledRdp(q, orders, gaussian);
      orders.forEach((a, k) => {
        expect(sampled[k]).toBeGreaterThanOrEqual(rdpOfStep(q, z, a) * (1 - 1e-9));
        expect(sampled[k]).toBeLessThanOrEqual(gaussian(a) * (1 + 1e-12));
      });
      // Order 2 carries no factor-3 term: Zhu & Wang's bound equals the exact sampled Gaussian there.
      expect(sampled[0]).toBeCloseTo(rdpOfStep(q, z, 2), 12);
    }
    expect(Array.from(poissonSubsampledRdp(1, orders, gaussian))).toEqual(orders.map(gaussian));
  });

  it("is infinite from the first order whose base divergence is, and refuses bad rates and orders", () => {
    const base = (a: number) => (a < 4 ? a / 10 : Number.POSITIVE_INFINITY);
    const curve = poissonSubsampledRdp(0.1, [2, 3, 3.5, 4], base);
    expect(Number.isFinite(curve[1]!)).toBe(true);
    expect(curve[2]).toBe(0.35); // ⌈3.5⌉ = 4: no amplification, the unsampled value at 3.5 still holds
    expect(curve[3]).toBe(Number.POSITIVE_INFINITY);
    expect(() => poissonSubsampledRdp(0, [2], base)).toThrow(RangeError);
    expect(() => poissonSubsampledRdp(0.1, [1], base)).toThrow(RangeError);
  });
});
