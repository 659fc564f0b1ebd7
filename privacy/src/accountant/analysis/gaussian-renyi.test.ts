import { describe, expect, it } from "vitest";
import {
  isotropicGaussianRenyi,
  latticeGaussianRenyiSlack,
  latticeTheta,
  renyiMixedVariance,
} from "./gaussian-renyi.ts";

/** D_α(N(μ, σ₁²) ‖ N(0, σ₂²)) in one dimension by the trapezoid rule on ln ∫ p^α q^{1−α}, in log space. */
function integratedRenyi(mu: number, v1: number, v2: number, alpha: number): number {
  const logP = (x: number) => -((x - mu) ** 2) / (2 * v1) - 0.5 * Math.log(2 * Math.PI * v1);
  const logQ = (x: number) => -(x * x) / (2 * v2) - 0.5 * Math.log(2 * Math.PI * v2);
  const f = (x: number) => alpha * logP(x) + (1 - alpha) * logQ(x);
  // p^α q^{1−α} is a Gaussian bump of variance v1·v2/σ_α² centred at α·μ·v2/σ_α²: integrate 40 deviations around it
  const mixed = alpha * v2 + (1 - alpha) * v1;
  const width = Math.abs((alpha * mu * v2) / mixed) + 40 * Math.sqrt((v1 * v2) / mixed);
  const n = 60_000;
  const h = (2 * width) / n;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i <= n; i++) max = Math.max(max, f(-width + i * h));
  let sum = 0;
  for (let i = 0; i <= n; i++) sum += (i === 0 || i === n ? 0.5 : 1) * Math.exp(f(-width + i * h) - max);
  return (max + Math.log(sum * h)) / (alpha - 1);
}

describe("Rényi divergence of isotropic Gaussians (Gil, Alajaji, Linder 2013)", () => {
  it("matches numerical integration in one dimension, both variance orders, up to the finite edge", () => {
    for (const [mu, v1, v2] of [
      [0, 2, 1],
      [1, 2, 1],
      [0.7, 1, 2],
      [2, 3, 2.5],
      [0, 1.01, 1],
    ] as const) {
      for (const alpha of [1.1, 1.5, 2, 3, 5.5]) {
        const pair = { dimension: 1, meanDistanceSquared: mu * mu, variance1: v1, variance2: v2 };
        if (!(renyiMixedVariance(pair, alpha) > 0.05)) {
          expect(isotropicGaussianRenyi(pair, alpha)).toBe(Number.POSITIVE_INFINITY);
          continue;
        }
        expect(isotropicGaussianRenyi(pair, alpha)).toBeCloseTo(integratedRenyi(mu, v1, v2, alpha), 7);
      }
    }
  });

  it("reduces to the published special cases: αΔ²/(2σ²) at equal variances, the KL divergence as α → 1", () => {
    // Mironov 2017 (arXiv 1702.07476) Prop. 7: the Gaussian mechanism's RDP is αΔ²/(2σ²).
    for (const alpha of [1.5, 2, 32]) {
      expect(
        isotropicGaussianRenyi({ dimension: 7, meanDistanceSquared: 9, variance1: 4, variance2: 4 }, alpha),
      ).toBeCloseTo((alpha * 9) / (2 * 4), 12);
    }
    // KL(N(μ, σ₁²) ‖ N(0, σ₂²)) = ln(σ₂/σ₁) + (σ₁² + μ²)/(2σ₂²) − ½ per coordinate (van Erven & Harremoës 2014, Thm. 5).
    const kl = 3 * (0.5 * Math.log(2 / 3) + 3 / 4 - 0.5) + 0.25 / 4;
    const near = isotropicGaussianRenyi(
      { dimension: 3, meanDistanceSquared: 0.25, variance1: 3, variance2: 2 },
      1 + 1e-7,
    );
    expect(near).toBeCloseTo(kl, 6);
  });

  it("is infinite exactly when σ_α² = ασ₂² + (1−α)σ₁² ≤ 0, and grows with d for unequal variances", () => {
    const pair = { dimension: 10, meanDistanceSquared: 0, variance1: 160, variance2: 159 };
    expect(isotropicGaussianRenyi(pair, 160)).toBe(Number.POSITIVE_INFINITY);
    expect(isotropicGaussianRenyi(pair, 159.99)).toBeLessThan(Number.POSITIVE_INFINITY);
    expect(isotropicGaussianRenyi({ ...pair, variance1: 159, variance2: 160 }, 1e6)).toBeLessThan(
      Number.POSITIVE_INFINITY,
    );
    // ≈ d·α/(4g²) for variances (g+1) and g at small α (the variance term of a distributed round)
    const d8192 = isotropicGaussianRenyi({ ...pair, dimension: 8192 }, 2);
    expect(d8192).toBeCloseTo((8192 * 2) / (4 * 159 * 159), 2);
    expect(isotropicGaussianRenyi({ ...pair, dimension: 8192 }, 2)).toBeCloseTo(
      819.2 * isotropicGaussianRenyi(pair, 2),
      9,
    );
  });

  it("on the integer lattice: the exact sum stays within the continuous value plus the stated slack", () => {
    const logSum = (f: (x: number) => number, L: number) => {
      let m = Number.NEGATIVE_INFINITY;
      for (let x = -L; x <= L; x++) m = Math.max(m, f(x));
      let s = 0;
      for (let x = -L; x <= L; x++) s += Math.exp(f(x) - m);
      return m + Math.log(s);
    };
    let slackUsed = false;
    for (const [k, v1, v2] of [
      [1, 0.3, 0.25],
      [2, 0.5, 0.6],
      [1, 2, 1],
      [3, 10, 9],
    ] as const) {
      const L = 200;
      const z1 = logSum((x) => -(x * x) / (2 * v1), L);
      const z2 = logSum((x) => -(x * x) / (2 * v2), L);
      for (const alpha of [1.5, 2, 4]) {
        const pair = { dimension: 1, meanDistanceSquared: k * k, variance1: v1, variance2: v2 };
        if (!(renyiMixedVariance(pair, alpha) > 0)) continue;
        const exact =
          logSum((x) => alpha * (-((x - k) ** 2) / (2 * v1) - z1) + (1 - alpha) * (-(x * x) / (2 * v2) - z2), L) /
          (alpha - 1);
        const continuous = isotropicGaussianRenyi(pair, alpha);
        expect(exact).toBeLessThanOrEqual(continuous + latticeGaussianRenyiSlack(pair, alpha) + 1e-12);
        if (exact > continuous + 1e-9) slackUsed = true;
      }
    }
    expect(slackUsed).toBe(true); // at σ² ≈ 1/4 the lattice sum exceeds the continuous value: the slack is needed
    expect(latticeTheta(1)).toBeCloseTo(1 + 2 * Math.exp(-2 * Math.PI ** 2), 15);
  });

  it("refuses bad parameters with a RangeError naming them", () => {
    const ok = { dimension: 1, meanDistanceSquared: 0, variance1: 1, variance2: 1 };
    expect(() => isotropicGaussianRenyi({ ...ok, variance1: 0 }, 2)).toThrow(/variance1/);
    expect(() => isotropicGaussianRenyi({ ...ok, meanDistanceSquared: -1 }, 2)).toThrow(/meanDistanceSquared/);
    expect(() => isotropicGaussianRenyi(ok, 1)).toThrow(/order/);
  });
});
