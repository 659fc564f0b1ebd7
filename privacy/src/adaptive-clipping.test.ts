import { describe, expect, it } from "vitest";
import {
  createAdaptiveClipping,
  nextClipNorm,
  noisyCentredUnclippedFraction,
  noisyUnclippedFraction,
  plainCountUpdateNoiseMultiplier,
  updateNoiseMultiplier,
} from "./adaptive-clipping.ts";
import { RdpAccountant } from "./accountant/rdp.ts";
import { getNoiseMultiplier } from "./accountant/noise-multiplier.ts";
import { seededRandomBytes } from "./samplers/testing.ts";

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

  describe("accounting with the demo's settings (N = 1000, q = 0.3, 12 rounds, ε = 4, δ = 1e-5, σ_b = max(m/20, z))", () => {
    const q = 0.3;
    const m = q * 1000;
    const rounds = 12;
    const delta = 1e-5;
    const z = getNoiseMultiplier({
      targetEpsilon: 4,
      targetDelta: delta,
      sampleRate: q,
      steps: rounds,
    }).noiseMultiplier;
    const sigmaB = Math.max(m / 20, z);
    const epsilonAt = (noiseMultiplier: number) => {
      const acc = new RdpAccountant();
      acc.step({ noiseMultiplier, sampleRate: q }, rounds);
      return acc.getEpsilon(delta);
    };
    /**
     * The count query's L2 sensitivity as the code releases it, measured on neighbouring inputs: the same noise bytes,
     * with and without one more report whose b is 0 or 1 (add/remove adjacency), in units of counts (× m).
     */
    const measuredSensitivity = (release: (unclipped: number, reports: number, seed: number) => number) => {
      let worst = 0;
      for (const [u, n] of [
        [0, 0],
        [120, 290],
        [290, 290],
      ] as const) {
        const base = release(u, n, 11);
        worst = Math.max(
          worst,
          Math.abs(release(u + 1, n + 1, 11) - base) * m,
          Math.abs(release(u, n + 1, 11) - base) * m,
        );
      }
      return worst;
    };
    /** Two Gaussian mechanisms (sum: sensitivity 1 in units of C, noise z_Δ; count: sensitivity Δ_b, noise σ_b). */
    const composed = (zDelta: number, countSensitivity: number) =>
      (zDelta ** -2 + (countSensitivity / sigmaB) ** 2) ** -0.5;

    it("reproduces the issue: the plain count under-reports (z 1.614 vs 1.621, ε 4.010 vs 3.984)", () => {
      expect(z).toBeCloseTo(1.621, 3);
      const zDelta = updateNoiseMultiplier(z, sigmaB); // what the sum got
      const sens = measuredSensitivity((u, _n, seed) => noisyUnclippedFraction(u, m, sigmaB, seededRandomBytes(seed)));
      expect(sens).toBeCloseTo(1, 9);
      const zEffective = composed(zDelta, sens);
      expect(zEffective).toBeCloseTo(1.614, 3);
      expect(epsilonAt(z)).toBeCloseTo(3.984, 3);
      expect(epsilonAt(zEffective)).toBeCloseTo(4.01, 2);
      // …and the plain count is fine when paired with its own share:
      expect(composed(plainCountUpdateNoiseMultiplier(z, sigmaB), sens)).toBeCloseTo(z, 12);
    });

    it("the centred count (TF Privacy QuantileEstimatorQuery) makes the pair exactly the z the ledger is charged", () => {
      const zDelta = updateNoiseMultiplier(z, sigmaB);
      const sens = measuredSensitivity((u, n, seed) =>
        noisyCentredUnclippedFraction(
          { unclippedCount: u, reportCount: n, expectedClients: m, countNoiseStd: sigmaB },
          seededRandomBytes(seed),
        ),
      );
      expect(sens).toBeCloseTo(0.5, 9);
      const zEffective = composed(zDelta, sens);
      expect(zEffective).toBeCloseTo(z, 12);
      expect(epsilonAt(zEffective)).toBeCloseTo(epsilonAt(z), 12);
      expect(epsilonAt(zEffective)).toBeLessThanOrEqual(4);
    });

    it("the centred estimate is unbiased when every expected client reports", () => {
      let sum = 0;
      const trials = 2000;
      const random = seededRandomBytes(5);
      for (let t = 0; t < trials; t++) {
        sum += noisyCentredUnclippedFraction(
          { unclippedCount: 90, reportCount: m, expectedClients: m, countNoiseStd: sigmaB },
          random,
        );
      }
      // E[b̃] = 90/300 = 0.3; sd of the mean = σ_b/(m·√trials) ≈ 0.0011
      expect(Math.abs(sum / trials - 0.3)).toBeLessThan(0.006);
      expect(() =>
        noisyCentredUnclippedFraction({ unclippedCount: 5, reportCount: 4, expectedClients: m, countNoiseStd: 1 }),
      ).toThrow(/unclippedCount/);
    });
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
