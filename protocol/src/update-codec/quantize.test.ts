import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { quantizeUpdateInt8, updateToFloat32 } from "./quantize.ts";
import { TEST_KEY } from "./test-helpers.ts";
import { decodeVerifiedUpdate, encodeUpdate } from "./update-codec.ts";

const F32_MAX = 3.4028234663852886e38;

describe("quantizeUpdateInt8", () => {
  it("is symmetric absmax/127 with error at most scale/2 per value, and stays in −127..127", () => {
    fc.assert(
      fc.property(fc.float32Array({ minLength: 1, maxLength: 500, noNaN: true, noDefaultInfinity: true }), (values) => {
        const q = quantizeUpdateInt8(values);
        expect(q.dtype).toBe("int8");
        expect(q.values.length).toBe(values.length);
        expect(Math.fround(q.scale)).toBe(q.scale);
        let absmax = 0;
        for (const v of values) absmax = Math.max(absmax, Math.abs(v));
        if (absmax === 0) {
          expect(q.scale).toBe(1);
          expect(Array.from(q.values).every((x) => x === 0)).toBe(true);
          return;
        }
        // float32 rounding of absmax/127 (relative 2^-24, or one subnormal step 2^-149 at the bottom of the range).
        expect(Math.abs(q.scale - absmax / 127)).toBeLessThanOrEqual(Math.max((absmax / 127) * 2 ** -22, 2 ** -149));
        const back = updateToFloat32({ payload: q });
        for (let i = 0; i < values.length; i++) {
          expect(q.values[i]).toBeGreaterThanOrEqual(-127);
          expect(q.values[i]).toBeLessThanOrEqual(127);
          // scale/2 from rounding, plus float32 rounding of the product q·scale (relative 2^-24, or 2^-150 absolute).
          expect(Math.abs(back[i]! - values[i]!)).toBeLessThanOrEqual(q.scale / 2 + absmax * 2 ** -23 + 2 ** -150);
        }
        // The extreme value maps to ±127 (among subnormal scales the float32 grid is too coarse for that).
        const iMax = Array.from(values).findIndex((v) => Math.abs(v) === absmax);
        if (absmax / 127 >= 2 ** -126) expect(Math.abs(q.values[iMax]!)).toBe(127);
      }),
      { numRuns: 200 },
    );
  });

  it("keeps the error bound among subnormal scales (no clamping)", () => {
    const step = 2 ** -149;
    for (const k of [1, 2, 100, 300, 1000, 16000]) {
      const values = new Float32Array([k * step, -(k >> 1) * step, step]);
      const q = quantizeUpdateInt8(values);
      const back = updateToFloat32({ payload: q });
      for (let i = 0; i < values.length; i++) {
        expect(Math.abs(q.values[i]!)).toBeLessThanOrEqual(127);
        expect(Math.abs(back[i]! - values[i]!)).toBeLessThanOrEqual(q.scale / 2 + step);
      }
    }
  });

  it("rounds half away from zero (symmetric for ±x)", () => {
    // absmax 127 → scale 1, so values are their own quantized values.
    const q = quantizeUpdateInt8(new Float32Array([127, 0.5, -0.5, 1.5, -1.5, 2.49, -2.51, -127]));
    expect(q.scale).toBe(1);
    expect(Array.from(q.values)).toEqual([127, 1, -1, 2, -2, 2, -3, -127]);
  });

  it("produces payloads the codec accepts, including extreme magnitudes", async () => {
    for (const values of [
      new Float32Array([F32_MAX, -F32_MAX, 1]),
      new Float32Array([1.401298464324817e-45, -1.401298464324817e-45, 0]),
      new Float32Array([1e-40, 3e-41]),
      new Float32Array([0, 0, 0]),
      new Float32Array([-0, 5]),
    ]) {
      const payload = quantizeUpdateInt8(values);
      expect(payload.scale).toBeGreaterThan(0);
      expect(127 * payload.scale).toBeLessThanOrEqual(F32_MAX);
      const bytes = await encodeUpdate(
        { roundId: "r1", deviceId: "dev_quantize1", nonce: new Uint8Array(16), shape: [values.length], payload },
        TEST_KEY.secretKey,
      );
      const back = updateToFloat32(await decodeVerifiedUpdate(bytes, TEST_KEY.publicKey));
      for (const v of back) expect(Number.isFinite(v)).toBe(true);
    }
  });

  it("rejects non-finite values and non-Float32Array input", () => {
    expect(() => quantizeUpdateInt8(new Float32Array([1, NaN]))).toThrow(/value 1 is not finite/);
    expect(() => quantizeUpdateInt8(new Float32Array([Infinity]))).toThrow(RangeError);
    expect(() => quantizeUpdateInt8([1, 2] as unknown as Float32Array)).toThrow(TypeError);
  });
});

describe("updateToFloat32", () => {
  it("dequantizes int8 as value·scale rounded to float32", () => {
    const out = updateToFloat32({ payload: { dtype: "int8", values: new Int8Array([127, -1, 0]), scale: 0.5 } });
    expect(Array.from(out)).toEqual([63.5, -0.5, 0]);
  });

  it("returns a float32 payload's own array", () => {
    const values = new Float32Array([1, 2]);
    expect(updateToFloat32({ payload: { dtype: "float32", values } })).toBe(values);
  });
});
