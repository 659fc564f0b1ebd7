import { describe, expect, it } from "vitest";
import { NINE_SHIFTS, shiftAugment } from "./augment.ts";

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
