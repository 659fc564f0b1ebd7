import { describe, expect, it } from "vitest";
import { xoshiroRandomBytes } from "@fedge/ml";
import { affineAugment, NINE_SHIFTS, shiftAugment } from "./augment.ts";

describe("shiftAugment", () => {
  const img = new Float32Array(784);
  img[5 * 28 + 7] = 1; // one lit pixel at row 5, column 7
  img[27 * 28 + 27] = 0.5; // bottom-right corner: shifted out by +1 moves
  const data = { x: img, y: new Uint8Array([4]), n: 1 };

  it("translates by whole pixels, zero-filling and dropping what leaves the frame", () => {
    const out = shiftAugment(data, NINE_SHIFTS);
    expect(out.n).toBe(9);
    expect(Array.from(out.y)).toEqual(Array(9).fill(4));
    const lit = (s: number) =>
      Array.from(out.x.subarray(s * 784, (s + 1) * 784)).flatMap((v, k) =>
        v ? [[Math.floor(k / 28), k % 28, v]] : [],
      );
    expect(lit(0)).toEqual([
      [5, 7, 1],
      [27, 27, 0.5],
    ]);
    expect(lit(1)).toEqual([[5, 8, 1]]); // dx = +1: the corner pixel leaves the frame
    expect(lit(2)).toEqual([
      [5, 6, 1],
      [27, 26, 0.5],
    ]); // dx = −1
    expect(lit(3)).toEqual([[6, 7, 1]]); // dy = +1
    expect(lit(6)).toEqual([
      [4, 6, 1],
      [26, 26, 0.5],
    ]); // (−1, −1)
  });

  it("refuses bad shapes and shifts", () => {
    expect(() => shiftAugment({ x: new Float32Array(10), y: new Uint8Array(1), n: 1 }, NINE_SHIFTS)).toThrow(
      RangeError,
    );
    expect(() => shiftAugment(data, [[0.5, 0]])).toThrow(/integers/);
    expect(() => shiftAugment(data, [[28, 0]])).toThrow(RangeError);
  });
});

describe("affineAugment", () => {
  // a 6×6 square in the middle of the frame
  const img = new Float32Array(784);
  for (let r = 11; r < 17; r++) for (let c = 11; c < 17; c++) img[r * 28 + c] = 1;
  const data = { x: img, y: new Uint8Array([7]), n: 1 };
  const mass = (x: Float32Array) => x.reduce((s, v) => s + v, 0);

  it("the identity map (all ranges 0) copies the image exactly", () => {
    const out = affineAugment(data, {
      copies: 2,
      random: xoshiroRandomBytes(1),
      maxRotationDeg: 0,
      maxScale: 0,
      maxShear: 0,
      maxShift: 0,
    });
    expect(out.n).toBe(2);
    expect(Array.from(out.y)).toEqual([7, 7]);
    expect(out.x.subarray(0, 784)).toEqual(img);
    expect(out.x.subarray(784)).toEqual(img);
  });

  it("draws different small maps per copy, reproducibly from the seed, keeping values in [0, 1]", () => {
    const a = affineAugment(data, { copies: 4, random: xoshiroRandomBytes(3) });
    const b = affineAugment(data, { copies: 4, random: xoshiroRandomBytes(3) });
    expect(a.x).toEqual(b.x);
    expect(a.x.subarray(0, 784)).not.toEqual(a.x.subarray(784, 1568));
    for (let k = 0; k < 4; k++) {
      const copy = a.x.subarray(k * 784, (k + 1) * 784);
      expect(copy.every((v) => v >= 0 && v <= 1 + 1e-6)).toBe(true);
      // area changes at most by the scale range squared (1.1² ≈ 1.21), up to resampling
      expect(mass(copy) / mass(img)).toBeGreaterThan(0.75);
      expect(mass(copy) / mass(img)).toBeLessThan(1.3);
    }
  });

  it("refuses bad options", () => {
    expect(() => affineAugment(data, { copies: 0, random: xoshiroRandomBytes(1) })).toThrow(/copies/);
    expect(() => affineAugment(data, { copies: 1, random: xoshiroRandomBytes(1), maxScale: 2 })).toThrow(/maxScale/);
  });
});
