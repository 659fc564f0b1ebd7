import { describe, expect, it } from "vitest";
import {
  addGaussianNoise,
  cryptoRandomBytes,
  fillGaussian,
  fillStandardNormal,
  uniform53,
  type RandomBytes,
} from "./index.ts";
import { seededRandomBytes } from "./testing.ts";

/** Φ via the Numerical Recipes erfc Chebyshev fit (relative error < 1.2e-7, ample for KS at D ~ 1e-3). */
function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * z);
  const erfc =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - erfc / 2 : erfc / 2;
}

/** Kolmogorov–Smirnov statistic D of `samples` against N(0, sigma²). */
function ksStatistic(samples: Float64Array, sigma: number): number {
  const sorted = Float64Array.from(samples).sort();
  const n = sorted.length;
  let d = 0;
  for (let i = 0; i < n; i++) {
    const f = normalCdf(sorted[i]! / sigma);
    d = Math.max(d, (i + 1) / n - f, f - i / n);
  }
  return d;
}

/** KS critical value at significance 0.001 (asymptotic: c(α) = √(−ln(α/2)/2) = 1.9495). */
const ksCritical = (n: number) => 1.9495 / Math.sqrt(n);

function moments(x: ArrayLike<number>) {
  let s = 0;
  let s2 = 0;
  let s4 = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    s += v;
    s2 += v * v;
    s4 += v * v * v * v;
  }
  const n = x.length;
  return { mean: s / n, m2: s2 / n, m4: s4 / n };
}

describe("cryptoRandomBytes", () => {
  it("fills buffers larger than the 65,536-byte Web Crypto quota", () => {
    const buf = new Uint8Array(200_000);
    cryptoRandomBytes(buf);
    // every 64 KiB chunk got bytes (probability of an all-zero 1 KiB stretch is negligible)
    for (const off of [0, 70_000, 140_000, 199_000])
      expect(buf.subarray(off, off + 1000).some((b) => b !== 0)).toBe(true);
  });
});

describe("uniform53", () => {
  it("is in [0, 1), uses 53 bits, and has mean 1/2 and variance 1/12", () => {
    const random = seededRandomBytes(1);
    const n = 200_000;
    const xs = new Float64Array(n);
    for (let i = 0; i < n; i++) xs[i] = uniform53(random);
    expect(Math.min(...xs.subarray(0, 1000))).toBeGreaterThanOrEqual(0);
    expect(xs.every((x) => x >= 0 && x < 1 && Number.isInteger(x * 2 ** 53))).toBe(true);
    const m = moments(xs);
    expect(Math.abs(m.mean - 0.5)).toBeLessThan(5 * Math.sqrt(1 / 12 / n));
    expect(Math.abs(m.m2 - m.mean ** 2 - 1 / 12)).toBeLessThan(0.002);
  });

  it("maps all-zero bytes to 0 and all-one bytes to 1 − 2⁻⁵³", () => {
    expect(uniform53((b) => b.fill(0))).toBe(0);
    expect(uniform53((b) => b.fill(255))).toBe(1 - 2 ** -53);
  });

  it("defaults to crypto.getRandomValues", () => {
    const x = uniform53();
    expect(x).toBeGreaterThanOrEqual(0);
    expect(x).toBeLessThan(1);
  });
});

describe("fillStandardNormal / fillGaussian", () => {
  it("passes KS (α = 0.001) and moment checks for σ = 1, and the same test rejects 1.05σ", () => {
    const n = 200_000;
    const xs = new Float64Array(n);
    fillStandardNormal(xs, seededRandomBytes(2));
    const d = ksStatistic(xs, 1);
    expect(d).toBeLessThan(ksCritical(n));
    // power check: the same samples judged against a wrong σ must fail
    expect(ksStatistic(xs, 1.05)).toBeGreaterThan(ksCritical(n));
    expect(ksStatistic(xs, 1 / 1.05)).toBeGreaterThan(ksCritical(n));
    const m = moments(xs);
    expect(Math.abs(m.mean)).toBeLessThan(5 / Math.sqrt(n));
    expect(Math.abs(m.m2 - 1)).toBeLessThan(5 * Math.sqrt(2 / n)); // sd of sample variance = √(2/n)
    expect(Math.abs(m.m4 - 3)).toBeLessThan(5 * Math.sqrt(96 / n)); // Var(z⁴) = 105 − 9 = 96
  });

  it("fillGaussian scales by σ (KS against σ = 3.7 passes, against 1.05·3.7 fails)", () => {
    const n = 200_000;
    const xs = new Float64Array(n);
    fillGaussian(xs, 3.7, seededRandomBytes(3));
    expect(ksStatistic(xs, 3.7)).toBeLessThan(ksCritical(n));
    expect(ksStatistic(xs, 3.7 * 1.05)).toBeGreaterThan(ksCritical(n));
    const m = moments(xs);
    expect(Math.abs(m.m2 / 3.7 ** 2 - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
  });

  it("fills Float32Array of odd length and any size (2^20 + 3), every element written", () => {
    const n = (1 << 20) + 3;
    const xs = new Float32Array(n).fill(Number.NaN);
    fillGaussian(xs, 2, seededRandomBytes(4));
    expect(xs.every(Number.isFinite)).toBe(true);
    const m = moments(xs);
    expect(Math.abs(m.m2 / 4 - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
    // independent halves of each Box–Muller pair: cos and sin parts are uncorrelated
    let c = 0;
    for (let i = 0; i + 1 < n; i += 2) c += xs[i]! * xs[i + 1]!;
    expect(Math.abs(c / (n / 2) / 4)).toBeLessThan(5 / Math.sqrt(n / 2));
    expect(xs[n - 1]).not.toBe(xs[n - 2]);
  });

  it("is deterministic under a seeded source and consumes bytes only from it", () => {
    const a = new Float64Array(1000);
    const b = new Float64Array(1000);
    fillStandardNormal(a, seededRandomBytes(5));
    fillStandardNormal(b, seededRandomBytes(5));
    expect(a).toEqual(b);
    let pulled = 0;
    const counting: RandomBytes = (buf) => {
      pulled += buf.length;
      seededRandomBytes(6)(buf);
    };
    fillStandardNormal(new Float64Array(10), counting);
    expect(pulled).toBe(80); // 8 bytes per value, 16 per Box–Muller pair
  });

  it("handles empty arrays and σ = 0", () => {
    fillStandardNormal(new Float64Array(0));
    const z = new Float64Array(5).fill(9);
    fillGaussian(z, 0, seededRandomBytes(7));
    expect(Array.from(z)).toEqual([0, 0, 0, 0, 0]);
  });

  it("rejects negative, NaN and infinite σ with RangeError", () => {
    for (const s of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => fillGaussian(new Float64Array(2), s)).toThrow(RangeError);
      expect(() => addGaussianNoise(new Float32Array(2), s)).toThrow(RangeError);
    }
  });
});

describe("addGaussianNoise", () => {
  it("adds N(0, σ²) in place: target − original passes KS for σ and fails for 1.05σ", () => {
    const n = 200_000;
    const target = new Float32Array(n);
    for (let i = 0; i < n; i++) target[i] = (i % 7) - 3;
    const original = Float32Array.from(target);
    addGaussianNoise(target, 0.5, seededRandomBytes(8));
    const diff = new Float64Array(n);
    for (let i = 0; i < n; i++) diff[i] = target[i]! - original[i]!;
    expect(ksStatistic(diff, 0.5)).toBeLessThan(ksCritical(n));
    expect(ksStatistic(diff, 0.525)).toBeGreaterThan(ksCritical(n));
  });

  it("σ = 0 leaves the target unchanged and pulls no bytes", () => {
    const t = Float32Array.from([1, 2, 3]);
    addGaussianNoise(t, 0, () => {
      throw new Error("no bytes expected");
    });
    expect(Array.from(t)).toEqual([1, 2, 3]);
  });
});
