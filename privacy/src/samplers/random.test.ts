import { describe, expect, it, vi } from "vitest";
import {
  addGaussianNoise,
  cryptoRandomBytes,
  fillGaussian,
  fillStandardNormal,
  fillStandardNormalBatch,
  fillStandardNormalBoxMuller,
  uniform53,
  zigguratConstants,
  type RandomBytes,
} from "./random.ts";
import { seededRandomBytes } from "./testing.ts";
import { normalCdf } from "../gaussian-mechanism/special.ts";

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
    // neighbouring values are uncorrelated
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
    // one pull of 8 bytes per expected draw (+1.6% + 16 spare draws), in 64-bit draws
    expect(pulled).toBe(8 * 26);
    pulled = 0;
    fillStandardNormal(new Float64Array(100_000), counting);
    expect(pulled % 65536).toBe(0); // 64 KiB pulls
    expect(pulled).toBeGreaterThanOrEqual(8 * 100_000);
    expect(pulled).toBeLessThanOrEqual(8 * 100_000 * 1.02 + 65536);
  });

  it("writes the same values to Float32Array (rounded) and Float64Array, and fillGaussian is σ·fillStandardNormal", () => {
    const n = 20_000;
    const a = new Float64Array(n);
    const b = new Float32Array(n);
    const c = new Float64Array(n);
    fillStandardNormal(a, seededRandomBytes(9));
    fillStandardNormal(b, seededRandomBytes(9));
    fillGaussian(c, 2.5, seededRandomBytes(9));
    for (let i = 0; i < n; i++) {
      expect(b[i]).toBe(Math.fround(a[i]!));
      expect(c[i]).toBe(2.5 * a[i]!);
    }
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

/** Upper tail Q(t) = P(Z > t) = Φ(−t) (erfc fit, relative error < 1.2e-7 even far out). */
const upperTail = (t: number) => normalCdf(-t);

describe("Ziggurat sampler", () => {
  it("derives the 256-layer constants of Marsaglia & Tsang (2000) §3", () => {
    const c = zigguratConstants();
    expect(c.layers).toBe(256);
    expect(c.r).toBeCloseTo(3.6541528853610088, 13);
    expect(c.v).toBeCloseTo(4.92867323399e-3, 13);
  });

  it("hits the 3σ and 4σ tails at the rate of Φ and reaches beyond r (the tail branch)", () => {
    const n = 1 << 21;
    const xs = new Float64Array(n);
    fillStandardNormal(xs, seededRandomBytes(10));
    const { r } = zigguratConstants();
    for (const t of [3, r, 4]) {
      let count = 0;
      for (let i = 0; i < n; i++) if (Math.abs(xs[i]!) > t) count++;
      const p = 2 * normalCdf(-t);
      // binomial bounds: |count − np| < 4.4·√(np(1 − p)) (two-sided α ≈ 1e-5)
      expect(Math.abs(count - n * p)).toBeLessThan(4.4 * Math.sqrt(n * p * (1 - p)));
      expect(count).toBeGreaterThan(0);
    }
  });

  it("has the right shape in the tail: |z| given |z| > 3 passes KS (α = 0.001), and fails for 1.05σ", () => {
    const n = 1 << 22;
    const xs = new Float64Array(n);
    fillStandardNormal(xs, seededRandomBytes(11));
    const tail: number[] = [];
    for (let i = 0; i < n; i++) if (Math.abs(xs[i]!) > 3) tail.push(Math.abs(xs[i]!));
    const sorted = Float64Array.from(tail).sort();
    const m = sorted.length;
    expect(m).toBeGreaterThan(10_000);
    expect(sorted[m - 1]).toBeGreaterThan(zigguratConstants().r + 1); // deep into the Marsaglia (1964) tail
    /** KS of the sorted tail values x > t0 against P(|Z| ≤ x | |Z| > t0) for Z ~ N(0, σ²). */
    const ks = (values: Float64Array, t0: number, sigma: number) => {
      const q0 = upperTail(t0 / sigma);
      let d = 0;
      for (let i = 0; i < values.length; i++) {
        const f = 1 - upperTail(values[i]! / sigma) / q0;
        d = Math.max(d, (i + 1) / values.length - f, f - i / values.length);
      }
      return d;
    };
    expect(ks(sorted, 3, 1)).toBeLessThan(ksCritical(m));
    expect(ks(sorted, 3, 1.05)).toBeGreaterThan(ksCritical(m));
    // beyond r every value comes from the Marsaglia (1964) tail sampler: its shape alone
    const { r } = zigguratConstants();
    const beyond = sorted.filter((v) => v > r);
    expect(beyond.length).toBeGreaterThan(900);
    expect(ks(beyond, r, 1)).toBeLessThan(ksCritical(beyond.length));
    // sign symmetry in the tail
    let pos = 0;
    for (let i = 0; i < n; i++) if (xs[i]! > 3) pos++;
    expect(Math.abs(pos - m / 2)).toBeLessThan(4.4 * Math.sqrt(m / 4));
  });

  it("matches the Box–Muller reference: two-sample KS (α = 0.001), both pass one-sample KS", () => {
    const n = 200_000;
    const zig = new Float64Array(n);
    const bm = new Float64Array(n);
    fillStandardNormal(zig, seededRandomBytes(12));
    fillStandardNormalBoxMuller(bm, seededRandomBytes(13));
    expect(ksStatistic(bm, 1)).toBeLessThan(ksCritical(n));
    expect(ksStatistic(bm, 1.05)).toBeGreaterThan(ksCritical(n));
    const a = zig.sort();
    const b = bm.sort();
    let d = 0;
    for (let i = 0, j = 0; i < n && j < n;) {
      if (a[i]! <= b[j]!) i++;
      else j++;
      d = Math.max(d, Math.abs(i - j) / n);
    }
    expect(d).toBeLessThan(1.9495 * Math.sqrt(2 / n)); // c(α)·√((n + m)/(nm))
    // scaled by 1.05 the Ziggurat samples are told apart from the reference
    const scaled = a.map((v) => 1.05 * v);
    let d2 = 0;
    for (let i = 0, j = 0; i < n && j < n;) {
      if (scaled[i]! <= b[j]!) i++;
      else j++;
      d2 = Math.max(d2, Math.abs(i - j) / n);
    }
    expect(d2).toBeGreaterThan(1.9495 * Math.sqrt(2 / n));
  });

  it("the Box–Muller reference consumes exactly 8 bytes per value (16 per pair)", () => {
    let pulled = 0;
    fillStandardNormalBoxMuller(new Float32Array(10), (buf) => {
      pulled += buf.length;
      seededRandomBytes(14)(buf);
    });
    expect(pulled).toBe(80);
  });
});

describe("fillStandardNormalBatch (the same Ziggurat, fast path over whole blocks)", () => {
  /** KS of sorted values x > t0 against P(|Z| ≤ x | |Z| > t0), Z ~ N(0, 1). */
  const tailKs = (values: Float64Array, t0: number) => {
    const q0 = upperTail(t0);
    let d = 0;
    for (let i = 0; i < values.length; i++) {
      const f = 1 - upperTail(values[i]!) / q0;
      d = Math.max(d, (i + 1) / values.length - f, f - i / values.length);
    }
    return d;
  };

  it("passes KS (α = 0.001) and the moment checks, rejects 1.05σ, and matches fillStandardNormal (two-sample KS)", () => {
    const n = 200_000;
    const xs = new Float64Array(n);
    fillStandardNormalBatch(xs, seededRandomBytes(20));
    expect(ksStatistic(xs, 1)).toBeLessThan(ksCritical(n));
    expect(ksStatistic(xs, 1.05)).toBeGreaterThan(ksCritical(n));
    expect(ksStatistic(xs, 1 / 1.05)).toBeGreaterThan(ksCritical(n));
    const m = moments(xs);
    expect(Math.abs(m.mean)).toBeLessThan(5 / Math.sqrt(n));
    expect(Math.abs(m.m2 - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
    expect(Math.abs(m.m4 - 3)).toBeLessThan(5 * Math.sqrt(96 / n));
    const ref = new Float64Array(n);
    fillStandardNormal(ref, seededRandomBytes(21));
    const a = xs.sort();
    const b = ref.sort();
    let d = 0;
    for (let i = 0, j = 0; i < n && j < n;) {
      if (a[i]! <= b[j]!) i++;
      else j++;
      d = Math.max(d, Math.abs(i - j) / n);
    }
    expect(d).toBeLessThan(1.9495 * Math.sqrt(2 / n));
    // neighbours (same block, one draw each) are uncorrelated
    fillStandardNormalBatch(xs, seededRandomBytes(22));
    let c = 0;
    for (let i = 0; i + 1 < n; i++) c += xs[i]! * xs[i + 1]!;
    expect(Math.abs(c / (n - 1))).toBeLessThan(5 / Math.sqrt(n));
  });

  it("takes the rare path for the misses: tail rates of Φ at 3, r and 4, tail shape beyond 3 and beyond r", () => {
    const n = 1 << 22;
    const xs = new Float64Array(n);
    fillStandardNormalBatch(xs, seededRandomBytes(23));
    const { r } = zigguratConstants();
    for (const t of [3, r, 4]) {
      let count = 0;
      for (let i = 0; i < n; i++) if (Math.abs(xs[i]!) > t) count++;
      const p = 2 * normalCdf(-t);
      expect(Math.abs(count - n * p)).toBeLessThan(4.4 * Math.sqrt(n * p * (1 - p)));
    }
    const tail = Float64Array.from(xs.filter((v) => Math.abs(v) > 3).map(Math.abs)).sort();
    expect(tailKs(tail, 3)).toBeLessThan(ksCritical(tail.length));
    const beyond = tail.filter((v) => v > r);
    expect(beyond.length).toBeGreaterThan(900);
    expect(tailKs(beyond, r)).toBeLessThan(ksCritical(beyond.length));
    expect(beyond[beyond.length - 1]).toBeGreaterThan(r + 1);
  });

  it("is deterministic under a seeded source, writes every element of odd lengths, and pulls 64 KiB blocks", () => {
    for (const n of [1, 7, 8193, 70_001]) {
      const a = new Float64Array(n).fill(Number.NaN);
      const b = new Float64Array(n);
      fillStandardNormalBatch(a, seededRandomBytes(24));
      fillStandardNormalBatch(b, seededRandomBytes(24));
      expect(a.every(Number.isFinite)).toBe(true);
      expect(a).toEqual(b);
    }
    const pulls: number[] = [];
    const counting: RandomBytes = (buf) => {
      pulls.push(buf.length);
      seededRandomBytes(25)(buf);
    };
    fillStandardNormalBatch(new Float64Array(100_000), counting);
    const total = pulls.reduce((x, y) => x + y, 0);
    expect(Math.max(...pulls)).toBe(65536); // the Web Crypto quota per call
    expect(total).toBeGreaterThanOrEqual(8 * 100_000);
    expect(total).toBeLessThanOrEqual(8 * 100_000 * 1.02 + 4 * 65536);
  });

  it("defaults to crypto.getRandomValues (8 bytes per sample and a little for the misses)", () => {
    const spy = vi.spyOn(crypto, "getRandomValues");
    try {
      const n = 50_000;
      fillStandardNormalBatch(new Float64Array(n));
      const pulled = spy.mock.calls.reduce((sum, [buf]) => sum + (buf as Uint8Array).byteLength, 0);
      expect(pulled).toBeGreaterThanOrEqual(8 * n);
      expect(pulled).toBeLessThanOrEqual(8 * n * 1.02 + 4 * 65536);
    } finally {
      spy.mockRestore();
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
