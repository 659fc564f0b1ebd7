import { describe, expect, it } from "vitest";
import { activationQParams, dequantizePerAxis, extendRange, quantizePerAxis } from "./per-axis.ts";
import { quantizePerChannelInt8 } from "./quantize.ts";

function hashValues(n: number, scale: number, shift = 0): Float32Array {
  return Float32Array.from(
    { length: n },
    (_, i) => Math.fround((Math.sin(i * 12.9898) * 43758.5453) % 1) * scale + shift,
  );
}

describe("quantizePerAxis", () => {
  it("symmetric along axis 1 of a matrix is exactly the MLP exporter's rule", () => {
    const w = hashValues(12 * 7, 0.3);
    const a = quantizePerAxis(w, [12, 7], 1, "symmetric");
    const b = quantizePerChannelInt8(w, 12, 7);
    expect(a.values).toEqual(b.values);
    expect(a.scales).toEqual(b.scales);
    expect(a.zeroPoints).toBeUndefined();
  });

  it("keeps |w - deq(q)| <= s/2 per channel, symmetric and asymmetric, along any axis", () => {
    const dims = [4, 3, 5, 5];
    const w = hashValues(4 * 3 * 25, 0.8, 0.2);
    for (const mode of ["symmetric", "asymmetric"] as const) {
      for (const axis of [0, 1]) {
        const q = quantizePerAxis(w, dims, axis, mode);
        expect(q.scales.length).toBe(dims[axis]);
        const deq = dequantizePerAxis(q, dims, axis);
        const inner = dims.slice(axis + 1).reduce((x, y) => x * y, 1);
        for (let i = 0; i < w.length; i++) {
          const c = Math.floor(i / inner) % dims[axis]!;
          expect(Math.abs(w[i]! - deq[i]!)).toBeLessThanOrEqual(q.scales[c]! / 2 + 1e-7);
        }
      }
    }
    // Asymmetric keeps zero exact and uses the whole int8 range on a one-sided channel.
    const pos = new Float32Array([0, 0.5, 1, 2]);
    const q = quantizePerAxis(pos, [1, 4], 0, "asymmetric");
    expect(q.zeroPoints![0]).toBe(-128);
    expect(dequantizePerAxis(q, [1, 4], 0)[0]).toBe(0);
    expect(Math.max(...q.values)).toBe(127);
    expect(() => quantizePerAxis(pos, [1, 4], 2, "symmetric")).toThrow(/axis/);
    expect(() => quantizePerAxis(new Float32Array([Number.NaN]), [1], 0, "symmetric")).toThrow(/finite/);
  });

  it("derives uint8 activation parameters that keep zero exact", () => {
    expect(activationQParams([0, 2.55])).toEqual({ scale: Math.fround(0.01), zeroPoint: 0 });
    const p = activationQParams([-1, 3]);
    expect(p.zeroPoint).toBe(Math.round(1 / p.scale));
    expect(activationQParams([0, 0])).toEqual({ scale: 1, zeroPoint: 0 });
    expect(extendRange(extendRange(undefined, [1, -2]), [5])).toEqual([-2, 5]);
    expect(() => activationQParams([1, 0])).toThrow(/min <= max/);
  });
});
