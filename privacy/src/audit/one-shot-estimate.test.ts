import { describe, expect, it } from "vitest";
import { gaussianEpsilon } from "../gaussian-mechanism/analytic-gaussian.ts";
import { fillStandardNormal } from "../samplers/random.ts";
import { seededRandomBytes } from "../samplers/testing.ts";
import { estimateEpsilonOneShot, fitGaussian } from "./one-shot-estimate.ts";

function normals(n: number, mean: number, std: number, seed: number): Float64Array {
  const out = new Float64Array(n);
  fillStandardNormal(out, seededRandomBytes(seed));
  for (let i = 0; i < n; i++) out[i] = mean + std * out[i]!;
  return out;
}

describe("fitGaussian", () => {
  it("is the maximum-likelihood fit (population standard deviation)", () => {
    expect(fitGaussian([1, 2, 3, 4])).toEqual({ mean: 2.5, std: Math.sqrt(1.25) });
  });
  it("needs two finite samples", () => {
    expect(() => fitGaussian([1])).toThrow(RangeError);
    expect(() => fitGaussian([1, Number.NaN])).toThrow(RangeError);
  });
});

describe("estimateEpsilonOneShot", () => {
  it("recovers the Gaussian mechanism's ε from samples, with an interval around the estimate", () => {
    // Cosines of a d-dimensional audit: N(0, 1/d) without the canary, shifted by μ with it; μ/σ = 2.
    const sigma = 0.01;
    const mu = 0.02;
    const truth = gaussianEpsilon(1e-5, sigma, mu);
    const est = estimateEpsilonOneShot({
      observed: normals(4000, mu, sigma, 1),
      unobserved: normals(4000, 0, sigma, 2),
      delta: 1e-5,
      resamples: 200,
      random: seededRandomBytes(3),
    });
    // Fitted variances that differ by sampling error alone add a little ε at small δ (at k = 4000, δ = 1e-5, ≈ +8 % here: the estimate leans high).
    expect(Math.abs(est.epsilon - truth) / truth).toBeLessThan(0.1);
    expect(est.interval.lower).toBeLessThanOrEqual(est.epsilon);
    expect(est.interval.upper).toBeGreaterThanOrEqual(est.epsilon);
    expect(est.interval.upper - est.interval.lower).toBeLessThan(0.25 * truth);
    expect(est.observed.count).toBe(4000);
    expect(est.observed.mean).toBeCloseTo(mu, 3);
  });

  it("fewer canaries give a wider interval", () => {
    const run = (k: number) =>
      estimateEpsilonOneShot({
        observed: normals(k, 0.02, 0.01, 10 + k),
        unobserved: normals(k, 0, 0.01, 20 + k),
        delta: 1e-5,
        resamples: 200,
        random: seededRandomBytes(k),
      }).interval;
    const small = run(30);
    const large = run(3000);
    expect(small.upper - small.lower).toBeGreaterThan(3 * (large.upper - large.lower));
  });

  it("is near 0 when the canaries left no trace", () => {
    const est = estimateEpsilonOneShot({
      observed: normals(2000, 0, 0.01, 5),
      unobserved: normals(2000, 0, 0.01, 6),
      delta: 1e-5,
      resamples: 0,
    });
    expect(est.epsilon).toBeLessThan(0.5);
    expect(est.interval).toEqual({ lower: est.epsilon, upper: est.epsilon, confidence: 0.95, resamples: 0 });
  });

  it("rejects bad options with a RangeError", () => {
    const xs = [0, 1, 2];
    expect(() => estimateEpsilonOneShot({ observed: xs, unobserved: xs, delta: 1e-5, confidence: 1 })).toThrow(
      RangeError,
    );
    expect(() => estimateEpsilonOneShot({ observed: xs, unobserved: xs, delta: 1e-5, resamples: -1 })).toThrow(
      RangeError,
    );
    expect(() => estimateEpsilonOneShot({ observed: [1], unobserved: xs, delta: 1e-5 })).toThrow(RangeError);
  });
});
