import { describe, expect, it } from "vitest";
import { seededRandomBytes } from "@fedge/privacy/testing";
import {
  GaussianStream,
  NORM_BLOCK,
  blockSumSquares,
  clipFactor,
  quantScale,
  quantizeValue,
  sumSquares,
} from "./math.ts";

describe("math reference", () => {
  it("sumSquares is the float64 sum of squares (8 lanes) and agrees with a naive sum", () => {
    const x = new Float32Array(1001).map((_, i) => Math.fround(Math.sin(i) * 3));
    let naive = 0;
    for (const v of x) naive += v * v;
    expect(Math.abs(sumSquares(x) - naive)).toBeLessThan(1e-12 * naive);
    expect(sumSquares(new Float32Array([3, 4]))).toBe(25);
    expect(sumSquares(new Float32Array(0))).toBe(0);
  });

  it("sumSquares adds the block sums of 65,536-element blocks in block order", () => {
    const n = 2 * NORM_BLOCK + 13;
    const x = new Float32Array(n).map((_, i) => Math.fround(Math.sin(i * 0.01) * (1 + (i % 7))));
    const blocks = [0, 1, 2].map((b) => blockSumSquares(x.subarray(b * NORM_BLOCK, Math.min(n, (b + 1) * NORM_BLOCK))));
    expect(sumSquares(x)).toBe(blocks[0]! + blocks[1]! + blocks[2]!);
    expect(sumSquares(x.subarray(0, NORM_BLOCK))).toBe(blocks[0]);
    let naive = 0;
    for (const v of x) naive += v * v;
    expect(Math.abs(sumSquares(x) - naive)).toBeLessThan(1e-12 * naive);
  });

  it("clipFactor = fround(w·min(1, C/‖u‖))", () => {
    expect(clipFactor(25, 5, 1)).toBe(1);
    expect(clipFactor(100, 5, 2)).toBe(1);
    expect(clipFactor(0, 5, 0.3)).toBe(Math.fround(0.3));
    expect(clipFactor(2, 1, 1)).toBe(Math.fround(1 / Math.SQRT2));
  });

  it("quantizeValue rounds half away from zero and clamps; quantScale of zero is 1", () => {
    expect([2.5, -2.5, 0.5, -0.5, 0.49999997, 126.5, 200, -200].map((w) => quantizeValue(w, 1))).toEqual([
      3, -3, 1, -1, 0, 127, 127, -127,
    ]);
    expect(quantScale(0)).toBe(1);
    expect(quantScale(127)).toBe(1);
    expect(quantScale(1e-45)).toBeGreaterThan(0);
  });

  it("GaussianStream gives the same values whatever the piece sizes", () => {
    const n = 200_003;
    const whole = new Float32Array(n);
    new GaussianStream(n, 2, seededRandomBytes(1)).fill(whole);
    const pieces = new Float32Array(n);
    const s = new GaussianStream(n, 2, seededRandomBytes(1));
    for (let off = 0, step = 1; off < n; off += step, step = step * 3 + 7)
      s.fill(pieces.subarray(off, Math.min(n, off + step)));
    expect(pieces).toEqual(whole);
    const small = new Float32Array(3);
    new GaussianStream(3, 1, seededRandomBytes(2)).fill(small);
    expect(small.every((v) => Number.isFinite(v) && v !== 0)).toBe(true);
  });
});
