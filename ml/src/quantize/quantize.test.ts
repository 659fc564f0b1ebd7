import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { dequantizePerChannelInt8, quantizePerChannelInt8, roundHalfAwayFromZero } from "./quantize.ts";

describe("per-channel symmetric int8 quantization", () => {
  it("rounds half away from zero", () => {
    expect([2.5, -2.5, 0.5, -0.5, 1.49, -1.5, 0].map(roundHalfAwayFromZero)).toEqual([3, -3, 1, -1, 1, -2, 0]);
  });

  it("gives exact values on a hand-worked 4×3 case", () => {
    // Columns: max |W| = 127 (scale 1), all zero (scale 1), 254 (scale 2). Row-major [in=4][out=3].
    const w = new Float32Array([127, 0, 254, 2.5, 0, 5, -2.5, 0, -3, -0.5, 0, 1]);
    const { values, scales } = quantizePerChannelInt8(w, 4, 3);
    expect(Array.from(scales)).toEqual([1, 1, 2]);
    // col 0: 127, 2.5→3, -2.5→-3, -0.5→-1; col 2: 254/2=127, 5/2=2.5→3, -3/2=-1.5→-2, 1/2=0.5→1
    expect(Array.from(values)).toEqual([127, 0, 127, 3, 0, 3, -3, 0, -2, -1, 0, 1]);
    expect(Array.from(dequantizePerChannelInt8({ values, scales }, 4, 3))).toEqual([
      127, 0, 254, 3, 0, 6, -3, 0, -4, -1, 0, 2,
    ]);
  });

  it("uses scale = fp32(max|W|/127) per column and never produces -128", () => {
    const w = new Float32Array([0.3, -1, -0.6, 0.25]); // [2][2]
    const { values, scales } = quantizePerChannelInt8(w, 2, 2);
    expect(scales[0]).toBe(Math.fround(0.6000000238418579 / 127));
    expect(scales[1]).toBe(Math.fround(1 / 127));
    expect(values[2]).toBe(-127); // the column's extreme maps to ∓127
    expect(values[1]).toBe(-127);
    expect(values.includes(-128)).toBe(false);
  });

  it("floors an underflowing scale at 2^-149 and decides ties on the exact quotient", () => {
    const tiny = quantizePerChannelInt8(new Float32Array([2 ** -149, -(2 ** -149)]), 2, 1);
    expect(tiny.scales[0]).toBe(2 ** -149);
    expect(Array.from(tiny.values)).toEqual([1, -1]);
    // s = fp32(127/127) = 1 for column 0; 0.5 and -1.5 are exact ties → away from zero.
    const ties = quantizePerChannelInt8(new Float32Array([127, 0.5, -1.5]), 3, 1);
    expect(Array.from(ties.values)).toEqual([127, 1, -2]);
  });

  it("error bound |W − deq(q)| ≤ scale/2 (+ float32 rounding), property-based", () => {
    const dims = fc.record({ inF: fc.integer({ min: 1, max: 12 }), outF: fc.integer({ min: 1, max: 12 }) });
    fc.assert(
      fc.property(
        dims.chain(({ inF, outF }) =>
          fc.tuple(
            fc.constant(inF),
            fc.constant(outF),
            fc.float32Array({ minLength: inF * outF, maxLength: inF * outF, noNaN: true, noDefaultInfinity: true }),
          ),
        ),
        ([inF, outF, w]) => {
          let q;
          try {
            q = quantizePerChannelInt8(w, inF, outF);
          } catch (e) {
            // Only columns within 2^-24 of the float32 maximum are refused.
            expect(String(e)).toMatch(/too large/);
            expect(w.some((v) => Math.abs(v) > 3.4e38)).toBe(true);
            return;
          }
          const deq = dequantizePerChannelInt8(q, inF, outF);
          for (let i = 0; i < inF; i++) {
            for (let j = 0; j < outF; j++) {
              const k = i * outF + j;
              const s = q.scales[j]!;
              expect(q.values[k]!).toBeGreaterThanOrEqual(-127);
              expect(Math.abs(w[k]! - deq[k]!)).toBeLessThanOrEqual(s / 2 + Math.abs(w[k]!) * 2 ** -22 + 1e-45);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("rejects bad input with RangeError", () => {
    expect(() => quantizePerChannelInt8(new Float32Array([1, Number.NaN]), 1, 2)).toThrow(/not finite/);
    expect(() => quantizePerChannelInt8(new Float32Array([1, Infinity]), 2, 1)).toThrow(RangeError);
    expect(() => quantizePerChannelInt8(new Float32Array([3.4028234663852886e38]), 1, 1)).toThrow(/too large/);
    expect(() => quantizePerChannelInt8(new Float32Array(5), 2, 3)).toThrow(/expected 2×3/);
    expect(() => quantizePerChannelInt8(new Float32Array(0), 0, 3)).toThrow(/inFeatures/);
    expect(() => dequantizePerChannelInt8({ values: new Int8Array(4), scales: new Float32Array([1]) }, 2, 2)).toThrow(
      /scales/,
    );
    expect(() =>
      dequantizePerChannelInt8({ values: new Int8Array(2), scales: new Float32Array([1, 0]) }, 1, 2),
    ).toThrow(/scale\[1\]/);
  });
});
