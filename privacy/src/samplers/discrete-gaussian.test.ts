import { describe, expect, it } from "vitest";
import {
  fillDiscreteGaussian,
  fillDiscreteGaussianBigInt,
  isqrt,
  sampleDiscreteGaussian,
  type DiscreteGaussianVariance,
} from "./discrete-gaussian.ts";
import { seededRandomBytes } from "./testing.ts";

/** Exact-enough pmf of N_Z(0, σ²) on [−K, K] (normaliser summed over ±40σ). */
function pmf(sigma2: number, k: number): (x: number) => number {
  const lim = Math.ceil(40 * Math.sqrt(sigma2)) + 5;
  let z = 0;
  for (let x = -lim; x <= lim; x++) z += Math.exp((-x * x) / (2 * sigma2));
  return (x) => (Math.abs(x) > Math.max(k, lim) ? 0 : Math.exp((-x * x) / (2 * sigma2)) / z);
}

/** Pearson χ² of integer samples against N_Z(0, σ²), bins merged so every expected count is ≥ 5; returns {stat, df}. */
function chiSquare(samples: Int32Array, sigma2: number) {
  const n = samples.length;
  const p = pmf(sigma2, 1000);
  // central bins [−m, m] where n·p ≥ 5, plus two tail bins
  let m = 0;
  while (n * p(m + 1) >= 5 && (n * (1 - centralMass(p, m + 1))) / 2 >= 5) m++;
  const counts = new Map<number, number>();
  for (const s of samples) {
    const key = s < -m ? -m - 1 : s > m ? m + 1 : s;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const tail = (1 - centralMass(p, m)) / 2;
  let stat = 0;
  for (let x = -m - 1; x <= m + 1; x++) {
    const e = n * (Math.abs(x) === m + 1 ? tail : p(x));
    const o = counts.get(x) ?? 0;
    stat += ((o - e) * (o - e)) / e;
  }
  return { stat, df: 2 * m + 2 };
}

function centralMass(p: (x: number) => number, m: number): number {
  let s = 0;
  for (let x = -m; x <= m; x++) s += p(x);
  return s;
}

/** χ² critical value at α = 0.001 (Wilson–Hilferty: k·(1 − 2/(9k) + z·√(2/(9k)))³, z = 3.0902). */
function chiCritical(df: number): number {
  const a = 2 / (9 * df);
  return df * (1 - a + 3.0902 * Math.sqrt(a)) ** 3;
}

function draw(sigma2: DiscreteGaussianVariance, n: number, seed: number): Int32Array {
  const out = new Int32Array(n);
  fillDiscreteGaussian(out, sigma2, seededRandomBytes(seed));
  return out;
}

describe("sampleDiscreteGaussian / fillDiscreteGaussian (Canonne–Kamath–Steinke 2020, arXiv 2004.00010 Alg. 1–3)", () => {
  it.each([
    { name: "σ² = 9 (bigint)", sigma2: 9n as DiscreteGaussianVariance, v: 9 },
    { name: "σ² = 7/3 (rational)", sigma2: { numerator: 7n, denominator: 3n }, v: 7 / 3 },
    { name: "σ² = 0.36 (number, taken exactly)", sigma2: 0.36, v: 0.36 },
    { name: "σ² = 400 (σ = 20)", sigma2: 400, v: 400 },
  ])("$name: χ² at α = 0.001 passes, and the same samples reject 1.05σ", ({ sigma2, v }) => {
    const n = 30_000;
    const xs = draw(sigma2, n, 11);
    const ok = chiSquare(xs, v);
    expect(ok.stat).toBeLessThan(chiCritical(ok.df));
    const wrong = chiSquare(xs, v * 1.05 * 1.05);
    expect(wrong.stat).toBeGreaterThan(chiCritical(wrong.df));
    // moments: mean 0, variance slightly below σ² (exactly σ² − tiny for σ ≥ 1; CKS Cor. 9: Var ≤ σ²)
    let s = 0;
    let s2 = 0;
    for (const x of xs) {
      s += x;
      s2 += x * x;
    }
    expect(Math.abs(s / n)).toBeLessThan(5 * Math.sqrt(v / n));
    expect(Math.abs(s2 / n / v - 1)).toBeLessThan(5 * Math.sqrt(2 / n) + (v < 1 ? 0.1 : 0));
  });

  it("is symmetric and deterministic under a seeded source", () => {
    const a = draw(5n, 2000, 12);
    const b = draw(5n, 2000, 12);
    expect(a).toEqual(b);
    const pos = a.filter((x) => x > 0).length;
    const neg = a.filter((x) => x < 0).length;
    expect(Math.abs(pos - neg)).toBeLessThan(5 * Math.sqrt(pos + neg));
  });

  it("returns bigints and fills BigInt64Array and Float64Array", () => {
    const x = sampleDiscreteGaussian(4n, seededRandomBytes(13));
    expect(typeof x).toBe("bigint");
    const big = new BigInt64Array(50);
    fillDiscreteGaussian(big, 1e6, seededRandomBytes(14));
    expect(big.some((v) => v !== 0n)).toBe(true);
    const f = new Float64Array(50);
    fillDiscreteGaussian(f, { numerator: 1, denominator: 2 }, seededRandomBytes(15));
    expect(f.every((v) => Number.isInteger(v))).toBe(true);
    expect(typeof sampleDiscreteGaussian(1)).toBe("bigint"); // default source: crypto.getRandomValues
  });

  it("handles a huge σ² beyond 2^64 with exact BigInt arithmetic", () => {
    const sigma2 = 10n ** 30n; // σ = 1e15
    const xs = Array.from({ length: 200 }, (_, i) => sampleDiscreteGaussian(sigma2, seededRandomBytes(100 + i)));
    const var_ = xs.reduce((acc, x) => acc + Number(x) ** 2, 0) / xs.length;
    expect(var_ / 1e30).toBeGreaterThan(0.6);
    expect(var_ / 1e30).toBeLessThan(1.5);
  });

  it.each([
    { name: "σ² = 6,562,663 (a device's share at 100 devices, σ = z·C, γ from the plan)", sigma2: 6_562_663 },
    { name: "σ² = 9 (bigint)", sigma2: 9n },
    { name: "σ² = 7/3 (rational)", sigma2: { numerator: 7n, denominator: 3n } },
    { name: "σ² = 0.36 (a double: b = 2^k, so the number path runs only while 2abt² ≤ 2^53)", sigma2: 0.36 },
    { name: "σ² = 1e12 (σ = 10^6, 2abt² past 2^53: BigInt throughout)", sigma2: 1e12 },
    // 2abt² = 8.98e15, just below 2^53: Algorithm 1's K = 2 step and every draw beyond ≈ 2.4σ take BigInt steps
    { name: "σ² = 67,000,000 (number path, many steps in BigInt)", sigma2: 67_000_000 },
  ] as { name: string; sigma2: DiscreteGaussianVariance }[])(
    "$name: the number path draws exactly the BigInt reference's samples from the same bytes",
    ({ sigma2 }) => {
      const n = 20_000;
      const fast = new Float64Array(n);
      const reference = new Float64Array(n);
      fillDiscreteGaussian(fast, sigma2, seededRandomBytes(21));
      fillDiscreteGaussianBigInt(reference, sigma2, seededRandomBytes(21));
      expect(fast).toEqual(reference);
      // one sample at a time, too: the same stream gives the same first sample
      expect(sampleDiscreteGaussian(sigma2, seededRandomBytes(22))).toBe(
        (() => {
          const one = new BigInt64Array(1);
          fillDiscreteGaussianBigInt(one, sigma2, seededRandomBytes(22));
          return one[0]!;
        })(),
      );
    },
  );

  it("draws what the all-BigInt sampler of the previous release drew from the same seeded stream", () => {
    // the first samples of seededRandomBytes(5) at σ² = 6,562,663 under the sampler before the number path (ff51ee3)
    const out = new Float64Array(6);
    fillDiscreteGaussian(out, 6_562_663, seededRandomBytes(5));
    expect(Array.from(out)).toEqual([3659, -1906, -865, 1553, -2673, 2650]);
  });

  it("rejects σ² ≤ 0, NaN, infinity, zero/negative denominators and non-integer parts", () => {
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 0n, -3n]) {
      expect(() => sampleDiscreteGaussian(bad)).toThrow(RangeError);
    }
    expect(() => sampleDiscreteGaussian({ numerator: 1n, denominator: 0n })).toThrow(RangeError);
    expect(() => sampleDiscreteGaussian({ numerator: 1n, denominator: -2n })).toThrow(RangeError);
    expect(() => sampleDiscreteGaussian({ numerator: 1.5, denominator: 2 })).toThrow(RangeError);
  });

  it("isqrt is the exact floor square root", () => {
    for (const n of [0n, 1n, 2n, 3n, 4n, 15n, 16n, 17n, 10n ** 40n, 10n ** 40n - 1n]) {
      const r = isqrt(n);
      expect(r * r <= n && (r + 1n) * (r + 1n) > n).toBe(true);
    }
  });
});
