import { describe, expect, it } from "vitest";
import { analyticGaussianSigma, gaussianDelta, gaussianEpsilon } from "./analytic-gaussian.ts";
import { normalCdf } from "./special.ts";

describe("Gaussian mechanism privacy curve (Balle & Wang 2018, arXiv 1805.06530)", () => {
  it("δ(ε) matches Thm. 8 evaluated directly where no cancellation occurs", () => {
    for (const [eps, s] of [
      [0.5, 1],
      [1, 2],
      [2, 0.7],
    ] as const) {
      const direct = normalCdf(1 / (2 * s) - eps * s) - Math.exp(eps) * normalCdf(-1 / (2 * s) - eps * s);
      expect(gaussianDelta(eps, s)).toBeCloseTo(direct, 14);
    }
    expect(gaussianDelta(0, 1)).toBeCloseTo(2 * normalCdf(0.5) - 1, 14); // ε = 0: total variation
  });

  it("δ is decreasing in ε and positive deep in the tail", () => {
    let prev = 1;
    for (let e = 0; e <= 30; e += 2) {
      const d = gaussianDelta(e, 1);
      expect(d).toBeLessThan(prev);
      expect(d).toBeGreaterThan(0);
      prev = d;
    }
  });

  it("gaussianEpsilon inverts gaussianDelta", () => {
    for (const s of [0.5, 1, 3]) {
      const e = gaussianEpsilon(1e-5, s);
      expect(gaussianDelta(e, s)).toBeLessThanOrEqual(1e-5);
      expect(gaussianDelta(e * (1 - 1e-9), s)).toBeGreaterThan(1e-5 * (1 - 1e-6));
    }
  });

  it("analytic Gaussian calibration (Alg. 1) is consistent with Thm. 8, both cases A and B", () => {
    for (const [eps, delta] of [
      [1, 1e-5],
      [0.1, 1e-5],
      [5, 1e-3],
      [0.05, 0.3], // δ above δ(0) threshold: case A
    ] as const) {
      const sigma = analyticGaussianSigma(eps, delta);
      expect(Math.abs(gaussianDelta(eps, sigma) - delta)).toBeLessThan(1e-11);
      expect(gaussianEpsilon(delta, sigma)).toBeCloseTo(eps, 6);
    }
    // known value: ε = 1, δ = 1e-5, Δ = 1 → σ ≈ 3.73 (arXiv 1805.06530 Fig. 1 shows the analytic σ well below the
    // classical √(2 ln(1.25/δ))/ε = 4.84)
    const s = analyticGaussianSigma(1, 1e-5);
    expect(s).toBeGreaterThan(3.6);
    expect(s).toBeLessThan(Math.sqrt(2 * Math.log(1.25 / 1e-5)));
    expect(analyticGaussianSigma(1, 1e-5, 2)).toBeCloseTo(2 * s, 10);
  });

  it("rejects bad parameters", () => {
    expect(() => analyticGaussianSigma(0, 1e-5)).toThrow(RangeError);
    expect(() => analyticGaussianSigma(1, 0)).toThrow(RangeError);
    expect(() => gaussianEpsilon(1, 1)).toThrow(RangeError);
  });
});
