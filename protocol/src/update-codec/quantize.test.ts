import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { int8PayloadNorm, quantizeUpdateInt8, updateToFloat32 } from "./quantize.ts";
import { TEST_KEY } from "./test-helpers.ts";
import { decodeVerifiedUpdate } from "./update-codec.ts";
import { encodeUpdate } from "./encode.ts";

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
        // absmax/127 rounded up to 17 significant bits (relative 2^-16), or one subnormal step 2^-149 at the bottom.
        expect(Math.abs(q.scale - absmax / 127)).toBeLessThanOrEqual(Math.max((absmax / 127) * 2 ** -16, 2 ** -149));
        const back = updateToFloat32({ payload: q });
        for (let i = 0; i < values.length; i++) {
          expect(q.values[i]).toBeGreaterThanOrEqual(-127);
          expect(q.values[i]).toBeLessThanOrEqual(127);
          // scale/2 from rounding, plus float32 rounding of the product q·scale (relative 2^-24, or 2^-150 absolute).
          expect(Math.abs(back[i]! - values[i]!)).toBeLessThanOrEqual(q.scale / 2 + absmax * 2 ** -23 + 2 ** -150);
          // Exact dequantization for normal scales: q·scale needs no float32 rounding.
          if (q.scale >= 2 ** -126) expect(back[i]).toBe(q.values[i]! * q.scale);
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
    for (const maxNorm of [-1, Number.NaN]) {
      expect(() => quantizeUpdateInt8(new Float32Array([1]), { maxNorm })).toThrow(/maxNorm/);
    }
  });
});

/** A float32 vector of `n` values from fast-check clipped to L2 norm `c` the way a device clips (float32 result). */
function clippedArb(c: number) {
  return fc
    .tuple(
      fc.float32Array({ minLength: 1, maxLength: 3000, noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }),
      fc.boolean(),
    )
    .map(([v, spiky]) => {
      if (spiky && v.length > 1) v[0] = 1e6; // one dominant coordinate: most others round to 0 or ±1
      let sq = 0;
      for (const x of v) sq += x * x;
      const norm = Math.sqrt(sq);
      if (norm > c) for (let i = 0; i < v.length; i++) v[i] = v[i]! * (c / norm);
      return v;
    });
}

/** 32-bit words from a seeded xorshift (a test stand-in for the device's CSPRNG). */
function seededRandom(seed: number): (buf: Uint8Array) => void {
  let x = seed >>> 0 || 1;
  return (buf) => {
    for (let i = 0; i < buf.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      buf[i] = x & 0xff;
    }
  };
}

describe("the norm bound holds after dequantization (maxNorm)", () => {
  it("an update clipped to C and quantized with maxNorm = C has scale·√Σq² ≤ C exactly (the edge's own formula), both roundings", () => {
    fc.assert(
      fc.property(fc.double({ min: 1e-3, max: 1e3, noNaN: true }), fc.integer({ min: 1, max: 2 ** 31 }), (c, seed) => {
        fc.assert(
          fc.property(clippedArb(c), (values) => {
            for (const random of [undefined, seededRandom(seed)]) {
              const q = quantizeUpdateInt8(values, random ? { maxNorm: c, random } : { maxNorm: c });
              expect(int8PayloadNorm(q)).toBeLessThanOrEqual(c);
              // What the aggregator adds: the dequantized float32 values, whose float64 norm rounds the server's
              // clip factor fround(min(1, C/‖u‖)) to exactly 1.
              const back = updateToFloat32({ payload: q });
              let sq = 0;
              for (const x of back) sq += x * x;
              const norm = Math.sqrt(sq);
              expect(Math.fround(norm > c ? c / norm : 1)).toBe(1);
            }
          }),
          { numRuns: 4 },
        );
      }),
      { numRuns: 25 },
    );
  });

  it("lowers the scale only as far as needed, and only when the rounding grew the norm", () => {
    // A vector whose stochastic rounding grows its norm (many coordinates at scale/2), clipped to exactly C = 1.
    const n = 10_000;
    const values = new Float32Array(n);
    values[0] = 127;
    for (let i = 1; i < n; i++) values[i] = 0.5;
    let sq = 0;
    for (const x of values) sq += x * x;
    const k = 1 / Math.sqrt(sq);
    for (let i = 0; i < n; i++) values[i] = values[i]! * k;
    const free = quantizeUpdateInt8(values, { random: seededRandom(7) });
    expect(int8PayloadNorm(free)).toBeGreaterThan(1); // unbounded, it would be refused by the edge
    const bounded = quantizeUpdateInt8(values, { random: seededRandom(7), maxNorm: 1 });
    expect(Array.from(bounded.values)).toEqual(Array.from(free.values)); // same q, only the scale moved
    expect(bounded.scale).toBeLessThan(free.scale);
    expect(int8PayloadNorm(bounded)).toBeLessThanOrEqual(1);
    expect(int8PayloadNorm(bounded)).toBeGreaterThan(1 - 2 ** -15);
    // No growth (the absmax coordinate is exact), no change.
    const exact = new Float32Array([127, -64, 0]);
    expect(quantizeUpdateInt8(exact, { maxNorm: 1e9 }).scale).toBe(1);
    // maxNorm 0: the zero update.
    expect(Array.from(quantizeUpdateInt8(exact, { maxNorm: 0 }).values)).toEqual([0, 0, 0]);
  });

  it("stochastic rounding is unbiased: the mean of many draws approaches v", () => {
    const values = new Float32Array([0.3, -0.7, 0.05, 1, -1]); // scale 1/127: x = 38.1, −88.9, 6.35, ±127
    const draws = 4000;
    const sum = new Float64Array(values.length);
    const random = seededRandom(12345);
    for (let t = 0; t < draws; t++) {
      const q = quantizeUpdateInt8(values, { random });
      for (let i = 0; i < values.length; i++) sum[i] = sum[i]! + q.values[i]! * q.scale;
    }
    const scale = quantizeUpdateInt8(values).scale;
    for (let i = 0; i < values.length; i++) {
      // Std of one draw ≤ scale/2; of the mean ≤ scale/(2√draws); allow 5 of those.
      expect(Math.abs(sum[i]! / draws - values[i]!)).toBeLessThan((5 * scale) / (2 * Math.sqrt(draws)));
    }
    // Deterministic rounding of 0.05 (x = 6.35) is always 6: biased by 0.35·scale.
    expect(quantizeUpdateInt8(values).values[2]).toBe(6);
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
