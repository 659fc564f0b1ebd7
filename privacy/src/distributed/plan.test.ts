import { describe, expect, it } from "vitest";
import { distributedSharesOf } from "../ledger.ts";
import { distributedNoiseOf, overflowBound, planDistributedDiscreteGaussian } from "./plan.ts";

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
      // 40 released inputs, less the protected device's own share: 39 are charged.
      expect(plan.noiseShares).toEqual({
        dimension: 1024,
        clients: 39,
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

  it("charges the honest shares other than the protected device's own, and the wire says the same", () => {
    const plan = planDistributedDiscreteGaussian({ ...base, bits: 16 });
    expect(plan.guaranteedShares).toBe(39);
    expect(plan.corruptClients).toBe(0);
    const wire = distributedNoiseOf(plan);
    // no colluders: the wire keeps its old form (no corrupt_devices), noise_shares is the release threshold
    expect(wire).not.toHaveProperty("corrupt_devices");
    expect(wire.noise_shares).toBe(40);
    expect(distributedSharesOf(wire)).toEqual(plan.noiseShares);
    // the threshold 1 or 2 − 1 leaves nothing (or one share) to protect a device
    expect(() => planDistributedDiscreteGaussian({ ...base, bits: 16, minClients: 1 })).toThrow(/minClients/);
    expect(planDistributedDiscreteGaussian({ ...base, bits: 16, minClients: 2 }).noiseShares.clients).toBe(1);
  });

  it("with a colluding fraction f: counts n_min − 1 − ⌊f·n_max⌋ shares and scales the shares to the honest devices", () => {
    const honest = planDistributedDiscreteGaussian({ ...base, bits: 20 });
    const plan = planDistributedDiscreteGaussian({ ...base, bits: 20, corruptFraction: 0.1 });
    expect(plan.corruptFraction).toBe(0.1);
    expect(plan.corruptClients).toBe(8); // ⌊0.1 · 80⌋
    expect(plan.guaranteedShares).toBe(40 - 1 - 8);
    expect(plan.noiseShares.clients).toBe(31);
    // the 45 honest devices of a round of the expected 50 carry σ = z·C between them
    expect(plan.localVariance * 45).toBeGreaterThanOrEqual((1.2 * 2 * plan.scale) ** 2);
    expect(plan.localVariance * 45).toBeLessThan((1.2 * 2 * plan.scale) ** 2 + 45);
    expect(plan.localVariance / plan.scale ** 2).toBeGreaterThan((honest.localVariance / honest.scale ** 2) * 1.1);
    const wire = distributedNoiseOf(plan);
    expect(wire).toMatchObject({ noise_shares: 40, corrupt_devices: 8 });
    expect(distributedSharesOf(wire)).toEqual(plan.noiseShares);
    expect(plan.explanation).toMatch(/31 shares \(40 released inputs − the protected device's own − 8 colluding\)/);
  });

  it("refuses a colluding fraction outside [0, 1/3) or one that leaves no honest share", () => {
    for (const f of [-0.1, 1 / 3, 0.5, Number.NaN]) {
      expect(() => planDistributedDiscreteGaussian({ ...base, bits: 16, corruptFraction: f })).toThrow(
        /corruptFraction/,
      );
    }
    // 0.3 · 80 = 24 colluders of a 20-input threshold: nothing honest is left
    expect(() => planDistributedDiscreteGaussian({ ...base, bits: 16, minClients: 20, corruptFraction: 0.3 })).toThrow(
      /minClients: 20 inputs leave no honest noise share/,
    );
    expect(() =>
      distributedSharesOf({
        ...distributedNoiseOf(planDistributedDiscreteGaussian({ ...base, bits: 16 })),
        corrupt_devices: 39,
      }),
    ).toThrow(/noise_shares >= corrupt_devices \+ 2/);
  });
});
