import { describe, expect, it } from "vitest";
import { gaussianEpsilon } from "../gaussian-mechanism/analytic-gaussian.ts";
import { gaussianHockeyStick, gaussianPairEpsilon, type Gaussian1d } from "./gaussian-pair-epsilon.ts";

const density = (g: Gaussian1d, x: number) =>
  Math.exp(-0.5 * ((x - g.mean) / g.std) ** 2) / (g.std * Math.sqrt(2 * Math.PI));

/** ∫ max(0, p − e^ε q) dx by composite Simpson on a wide grid: an independent check of the closed form. */
function hockeyStickByQuadrature(eps: number, p: Gaussian1d, q: Gaussian1d): number {
  const lo = Math.min(p.mean - 14 * p.std, q.mean - 14 * q.std);
  const hi = Math.max(p.mean + 14 * p.std, q.mean + 14 * q.std);
  const n = 400_000;
  const h = (hi - lo) / n;
  const f = (x: number) => Math.max(0, density(p, x) - Math.exp(eps) * density(q, x));
  let s = f(lo) + f(hi);
  for (let i = 1; i < n; i++) s += (i % 2 ? 4 : 2) * f(lo + i * h);
  return (s * h) / 3;
}

describe("gaussianPairEpsilon", () => {
  it("with equal variances is the Gaussian mechanism's ε with sensitivity |μ₁ − μ₀| (Balle & Wang Thm. 8)", () => {
    for (const [mu, sigma] of [
      [1, 1],
      [0.3, 0.05],
      [2.5, 0.8],
      [-0.02, 0.01],
    ] as const) {
      for (const delta of [1e-3, 1e-5]) {
        const n0 = { mean: 0.1, std: sigma };
        const n1 = { mean: 0.1 + mu, std: sigma };
        const expected = gaussianEpsilon(delta, sigma, Math.abs(mu));
        expect(gaussianPairEpsilon(delta, n0, n1)).toBeCloseTo(expected, 8);
        expect(gaussianPairEpsilon(delta, n1, n0)).toBeCloseTo(expected, 8);
      }
    }
  });

  it("the hockey-stick divergence matches numerical integration when the variances differ", () => {
    const cases: Array<[number, Gaussian1d, Gaussian1d]> = [
      [0.5, { mean: 1, std: 1.3 }, { mean: 0, std: 1 }],
      [1.5, { mean: 0.2, std: 0.7 }, { mean: 0, std: 1 }],
      [0.1, { mean: 0, std: 2 }, { mean: 0, std: 1 }],
      [2, { mean: -1, std: 1 }, { mean: 0.5, std: 1.01 }],
    ];
    for (const [eps, p, q] of cases) {
      const closed = gaussianHockeyStick(eps, p, q);
      expect(Math.abs(closed - hockeyStickByQuadrature(eps, p, q))).toBeLessThan(1e-9);
    }
  });

  it("is (ε, δ) exactly at the returned ε in the worse direction", () => {
    const n0 = { mean: 0, std: 0.03 };
    const n1 = { mean: 0.05, std: 0.04 };
    const eps = gaussianPairEpsilon(1e-5, n0, n1);
    const worst = (e: number) => Math.max(gaussianHockeyStick(e, n1, n0), gaussianHockeyStick(e, n0, n1));
    expect(worst(eps)).toBeLessThanOrEqual(1e-5);
    expect(worst(eps * (1 - 1e-6))).toBeGreaterThan(1e-5);
  });

  it("is 0 for identical Gaussians and grows with the separation", () => {
    expect(gaussianPairEpsilon(1e-5, { mean: 0, std: 1 }, { mean: 0, std: 1 })).toBe(0);
    let prev = 0;
    for (const mu of [0.5, 1, 2, 4, 8]) {
      const e = gaussianPairEpsilon(1e-5, { mean: 0, std: 1 }, { mean: mu, std: 1.2 });
      expect(e).toBeGreaterThan(prev);
      prev = e;
    }
  });

  it("unequal variances alone are distinguishable (ε > 0 at equal means)", () => {
    expect(gaussianPairEpsilon(1e-5, { mean: 0, std: 1 }, { mean: 0, std: 3 })).toBeGreaterThan(1);
  });

  it("rejects bad parameters with a RangeError", () => {
    expect(() => gaussianPairEpsilon(0, { mean: 0, std: 1 }, { mean: 1, std: 1 })).toThrow(RangeError);
    expect(() => gaussianPairEpsilon(1e-5, { mean: 0, std: 0 }, { mean: 1, std: 1 })).toThrow(RangeError);
    expect(() => gaussianPairEpsilon(1e-5, { mean: Number.NaN, std: 1 }, { mean: 1, std: 1 })).toThrow(RangeError);
  });
});
