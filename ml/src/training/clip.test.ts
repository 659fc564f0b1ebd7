import { describe, expect, it } from "vitest";
import { clipToNorm, l2Norm } from "./clip.ts";
import { UniformSource, xoshiroRandomBytes } from "./random.ts";

function randomVector(n: number, scale: number, seed: number): Float32Array {
  const src = new UniformSource(xoshiroRandomBytes(seed));
  return Float32Array.from({ length: n }, () => scale * src.normal());
}

describe("l2Norm", () => {
  it("is the float64 Euclidean norm of the float32 values", () => {
    expect(l2Norm(Float32Array.from([3, 4]))).toBe(5);
    expect(l2Norm(new Float32Array(0))).toBe(0);
    const v = randomVector(1000, 1, 1);
    let s = 0;
    for (const a of v) s += a * a;
    expect(l2Norm(v)).toBe(Math.sqrt(s));
    // 1 + 10⁶ · (10⁻⁴)²: a float32 running sum would stay at 1 (each 1e-8 is below half an ulp of 1).
    const w = new Float32Array(1_000_001).fill(1e-4);
    w[0] = 1;
    expect(l2Norm(w)).toBeCloseTo(Math.sqrt(1.01), 6);
    expect(l2Norm(Float32Array.from([1, NaN]))).toBeNaN();
  });
});

describe("clipToNorm", () => {
  it("scales a long vector down to norm ≤ C with factor C/‖v‖", () => {
    for (const [n, scale, c, seed] of [
      [10, 1, 0.5, 2],
      [10_000, 0.01, 0.1, 3],
      [50_890, 1, 1, 4],
      [7, 1e10, 1e-6, 5],
    ] as const) {
      const v = randomVector(n, scale, seed);
      const before = v.slice();
      const norm = l2Norm(v);
      const r = clipToNorm(v, c);
      expect(r.norm).toBe(norm);
      expect(l2Norm(r.clipped)).toBeLessThanOrEqual(c);
      expect(l2Norm(r.clipped)).toBeGreaterThan(c * (1 - 1e-6));
      expect(Math.abs(r.factor - c / norm) / (c / norm)).toBeLessThan(1e-6);
      expect(r.clipped).toEqual(v.map((a) => a * r.factor));
      expect(v).toEqual(before); // input untouched
    }
  });

  it("gives exactly min(1, C/‖v‖) when no float32 correction is needed", () => {
    const r = clipToNorm(Float32Array.from([3, 4]), 2.5);
    expect(r.factor).toBe(0.5);
    expect(Array.from(r.clipped)).toEqual([1.5, 2]);
    expect(r.norm).toBe(5);
  });

  it("returns an unchanged copy (factor 1) when the norm is within C, including zero vectors", () => {
    const v = Float32Array.from([0.3, -0.4]);
    const r = clipToNorm(v, 1);
    expect(r.factor).toBe(1);
    expect(r.clipped).toEqual(v);
    expect(r.clipped).not.toBe(v);
    const exact = clipToNorm(Float32Array.from([3, 4]), 5);
    expect(exact.factor).toBe(1);
    expect(clipToNorm(new Float32Array(4), 1)).toEqual({ clipped: new Float32Array(4), norm: 0, factor: 1 });
  });

  it("rejects bad bounds and non-finite vectors", () => {
    const v = Float32Array.from([1, 2]);
    for (const c of [0, -1, NaN, Infinity])
      expect(() => clipToNorm(v, c)).toThrow(/clip norm c must be a positive finite number/);
    expect(() => clipToNorm(Float32Array.from([1, NaN]), 1)).toThrow(RangeError);
    expect(() => clipToNorm(Float32Array.from([Infinity]), 1)).toThrow(/non-finite/);
    expect(() => clipToNorm([1, 2] as unknown as Float32Array, 1)).toThrow(TypeError);
  });
});
