import { describe, expect, it } from "vitest";
import {
  createAdaptiveClipping,
  nextClipNorm,
  noisyUnclippedFraction,
  updateNoiseMultiplier,
} from "./adaptive-clipping.ts";

/** Empirical γ-quantile of a sorted sample. */
function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

describe("adaptive clipping (Andrew et al. 2021)", () => {
  it("splits the noise budget as z⁻² = z_Δ⁻² + (2σ_b)⁻² (Theorem 1)", () => {
    const z = 1.0;
    const sigmaB = 5;
    const zDelta = updateNoiseMultiplier(z, sigmaB);
    expect(zDelta ** -2 + (2 * sigmaB) ** -2).toBeCloseTo(z ** -2, 12);
    expect(zDelta).toBeGreaterThan(z);
    expect(() => updateNoiseMultiplier(1, 0.4)).toThrow(/too small/);
    expect(() => updateNoiseMultiplier(1, 0)).toThrow(/not private/);
  });

  it("moves the clip norm geometrically: up when too many are clipped, down when too few", () => {
    const s = createAdaptiveClipping(1, 100, { targetQuantile: 0.5, learningRate: 0.2 });
    expect(nextClipNorm(s, 0.1).clipNorm).toBeCloseTo(Math.exp(0.2 * 0.4), 12);
    expect(nextClipNorm(s, 0.9).clipNorm).toBeCloseTo(Math.exp(-0.2 * 0.4), 12);
    expect(nextClipNorm(s, 0.5).clipNorm).toBe(1);
  });

  it.each([0.3, 0.5, 0.8])(
    "converges to the target quantile %s of synthetic update norms with noisy counts",
    (gamma) => {
      // Norms log-normally distributed around 3, 200 clients per round, σ_b = m/20 as the paper recommends.
      const m = 200;
      const norms: number[] = [];
      const u = new Float64Array(2);
      for (let i = 0; i < m; i++) {
        const a = (crypto.getRandomValues(new Uint32Array(1))[0]! + 1) / 2 ** 32;
        const b = crypto.getRandomValues(new Uint32Array(1))[0]! / 2 ** 32;
        u[0] = Math.sqrt(-2 * Math.log(a)) * Math.cos(2 * Math.PI * b);
        norms.push(3 * Math.exp(0.5 * u[0]));
      }
      const sorted = [...norms].sort((x, y) => x - y);
      let state = createAdaptiveClipping(0.1, m, { targetQuantile: gamma });
      for (let round = 0; round < 150; round++) {
        const unclipped = norms.filter((n) => n <= state.clipNorm).length;
        state = nextClipNorm(state, noisyUnclippedFraction(unclipped, m, state.countNoiseStd));
      }
      const achieved = norms.filter((n) => n <= state.clipNorm).length / m;
      expect(Math.abs(achieved - gamma)).toBeLessThan(0.1);
      expect(state.clipNorm).toBeGreaterThan(quantile(sorted, Math.max(0, gamma - 0.15)));
      expect(state.clipNorm).toBeLessThan(quantile(sorted, Math.min(0.999, gamma + 0.15)));
    },
  );

  it("rejects bad parameters with errors that name them", () => {
    expect(() => createAdaptiveClipping(0, 10)).toThrow(/initialClipNorm/);
    expect(() => createAdaptiveClipping(1, 0)).toThrow(/expectedClients/);
    expect(() => createAdaptiveClipping(1, 10, { targetQuantile: 1 })).toThrow(/targetQuantile/);
    expect(() => createAdaptiveClipping(1, 10, { learningRate: -1 })).toThrow(/learningRate/);
  });
});
