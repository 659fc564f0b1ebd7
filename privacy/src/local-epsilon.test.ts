import { describe, expect, it } from "vitest";
import { normalCdf } from "./gaussian-mechanism/special.ts";
import { classicGaussianEpsilon, localReportEpsilon } from "./local-epsilon.ts";

describe("localReportEpsilon (analytic Gaussian mechanism)", () => {
  it("reproduces Balle & Wang's calibration: σ ≈ 3.73 for ε = 1, δ = 1e-5, Δ = 1", () => {
    expect(localReportEpsilon({ noiseMultiplier: 3.73, delta: 1e-5, neighbouring: "add-remove" })).toBeCloseTo(1, 2);
  });
  it("replace-one doubles the sensitivity: ε(z) equals add-remove ε(z/2)", () => {
    for (const z of [0.7, 1, 3, 8]) {
      expect(localReportEpsilon({ noiseMultiplier: z })).toBeCloseTo(
        localReportEpsilon({ noiseMultiplier: z / 2, neighbouring: "add-remove" }),
        9,
      );
    }
  });
  it("satisfies the Theorem 8 condition with equality and is never looser than the classic bound", () => {
    for (const z of [0.8, 1.5, 4, 12]) {
      for (const delta of [1e-3, 1e-5, 1e-7]) {
        const eps = localReportEpsilon({ noiseMultiplier: z, delta, neighbouring: "add-remove" });
        const s = 1 / z;
        const d = normalCdf(s / 2 - eps / s) - Math.exp(eps) * normalCdf(-s / 2 - eps / s);
        expect(Math.abs(d - delta) / delta).toBeLessThan(1e-3);
        expect(eps).toBeLessThanOrEqual(
          classicGaussianEpsilon({ noiseMultiplier: z, delta, neighbouring: "add-remove" }),
        );
      }
    }
  });
  it("decreases in z and in δ; z = 0 is unbounded", () => {
    const e = [1, 2, 4, 8].map((z) => localReportEpsilon({ noiseMultiplier: z }));
    for (let i = 1; i < e.length; i++) expect(e[i]).toBeLessThan(e[i - 1]!);
    expect(localReportEpsilon({ noiseMultiplier: 2, delta: 1e-3 })).toBeLessThan(
      localReportEpsilon({ noiseMultiplier: 2, delta: 1e-6 }),
    );
    expect(localReportEpsilon({ noiseMultiplier: 0 })).toBe(Infinity);
  });
  it("rejects bad parameters", () => {
    expect(() => localReportEpsilon({ noiseMultiplier: -1 })).toThrow(RangeError);
    expect(() => localReportEpsilon({ noiseMultiplier: Number.NaN })).toThrow(RangeError);
    expect(() => localReportEpsilon({ noiseMultiplier: 1, delta: 0 })).toThrow(RangeError);
    expect(() => localReportEpsilon({ noiseMultiplier: 1, delta: 1 })).toThrow(RangeError);
    expect(() => localReportEpsilon({ noiseMultiplier: 1, neighbouring: "x" as never })).toThrow(RangeError);
  });
});
