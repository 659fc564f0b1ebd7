import { describe, expect, it } from "vitest";
import { overflowBound, planDistributedDiscreteGaussian } from "./plan.ts";

const base = { length: 1000, clipNorm: 2, noiseMultiplier: 1.2, expectedClients: 50, minClients: 40, maxClients: 80 };

describe("planDistributedDiscreteGaussian (choice of b, γ and the modulus)", () => {
  it("picks the largest γ whose stated overflow probability meets the target", () => {
    for (const bits of [14, 16, 20, 24]) {
      const plan = planDistributedDiscreteGaussian({ ...base, bits, overflowProbability: 1e-9 });
      expect(plan.paddedLength).toBe(1024);
      expect(plan.overflowProbability).toBeLessThanOrEqual(1e-9);
      // 1% more scale would break the target: γ is the largest that meets it (not merely a safe one).
      const v = (s: number) => s * s * ((80 * 80 * 4) / 1024) + 80 / 4 + 80 * Math.ceil((1.2 * 2 * s) ** 2 / 50 + 1);
      expect(overflowBound(bits, 1024, v(plan.scale * 1.01))).toBeGreaterThan(1e-9);
      // Each share's variance sums to (z·C·γ)² over the expected clients.
      expect(plan.localVariance * 50).toBeGreaterThanOrEqual((1.2 * 2 * plan.scale) ** 2);
      expect(plan.localVariance * 50).toBeLessThan((1.2 * 2 * plan.scale) ** 2 + 50 * 1.0001);
      expect(plan.noiseShares).toEqual({
        dimension: 1024,
        clients: 40,
        localVariance: plan.localVariance,
        sensitivityBound: plan.sensitivityBound,
      });
      expect(plan.explanation).toContain(`2^${bits}`);
    }
  });

  it("more bits give a finer grid and a sensitivity closer to C", () => {
    const a = planDistributedDiscreteGaussian({ ...base, bits: 14 });
    const b = planDistributedDiscreteGaussian({ ...base, bits: 20 });
    expect(b.scale).toBeGreaterThan(a.scale * 50);
    expect(b.sensitivityInflation).toBeLessThan(a.sensitivityInflation);
    expect(b.sensitivityInflation).toBeLessThan(1.001);
    expect(b.sensitivityInflation).toBeGreaterThanOrEqual(1);
  });

  it("refuses what cannot work, naming the parameter", () => {
    expect(() => planDistributedDiscreteGaussian({ ...base, bits: 4 })).toThrow(/bits/);
    expect(() => planDistributedDiscreteGaussian({ ...base, bits: 33 })).toThrow(/bits/);
    expect(() => planDistributedDiscreteGaussian({ ...base, bits: 16, maxClients: 30 })).toThrow(/maxClients/);
    expect(() => planDistributedDiscreteGaussian({ ...base, bits: 16, noiseMultiplier: 0 })).toThrow(/noiseMultiplier/);
    expect(() => planDistributedDiscreteGaussian({ ...base, bits: 16, scale: 1e9 })).toThrow(/scale/);
    // a tiny noise multiplier on a coarse grid leaves shares below σ_l = 1/2 (outside KLS21 Thm. 1)
    expect(() => planDistributedDiscreteGaussian({ ...base, bits: 16, noiseMultiplier: 1e-4, scale: 10 })).toThrow(
      /1\/4/,
    );
  });
});
