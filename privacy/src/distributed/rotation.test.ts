import { describe, expect, it } from "vitest";
import { seededRandomBytes } from "../samplers/testing.ts";
import { paddedLength, rotate, rotationSigns, unrotate, walshHadamard } from "./rotation.ts";

function seed(n: number): Uint8Array {
  const s = new Uint8Array(32);
  seededRandomBytes(n)(s);
  return s;
}

describe("randomized Hadamard rotation", () => {
  it("pads to the next power of two", () => {
    expect([1, 2, 3, 7850, 8192, 8193].map(paddedLength)).toEqual([1, 2, 4, 8192, 8192, 16384]);
    expect(() => paddedLength(0)).toThrow(RangeError);
  });

  it("H·H = d'·I (the unnormalised transform is its own inverse up to d')", () => {
    const x = Float64Array.from({ length: 16 }, (_, i) => ((i * 7) % 5) - 2);
    const y = Float64Array.from(x);
    walshHadamard(y);
    walshHadamard(y);
    for (let i = 0; i < 16; i++) expect(y[i]).toBe(16 * x[i]!);
  });

  it("the same seed gives the same signs on every party; another seed other signs", () => {
    const a = rotationSigns(seed(1), 1024);
    expect(rotationSigns(seed(1), 1024)).toEqual(a);
    const b = rotationSigns(seed(2), 1024);
    let differ = 0;
    for (let i = 0; i < 1024; i++) if (a[i] !== b[i]) differ++;
    expect(differ).toBeGreaterThan(400);
    expect(differ).toBeLessThan(624);
    expect(() => rotationSigns(new Uint8Array(31), 1024)).toThrow(RangeError);
    expect(() => rotationSigns(seed(1), 1000)).toThrow(RangeError);
  });

  it("keeps the norm, is inverted by unrotate, and flattens a spike", () => {
    const signs = rotationSigns(seed(3), 4096);
    const x = new Float64Array(3000);
    x[17] = 5; // all the norm in one coordinate
    const y = rotate(x, signs);
    let n2 = 0;
    let max = 0;
    for (const v of y) {
      n2 += v * v;
      max = Math.max(max, Math.abs(v));
    }
    expect(Math.sqrt(n2)).toBeCloseTo(5, 12);
    expect(max).toBeCloseTo(5 / 64, 12); // every coordinate ±5/√4096
    const back = unrotate(y, signs);
    for (let i = 0; i < 3000; i++) expect(back[i]).toBeCloseTo(x[i]!, 12);
    for (let i = 3000; i < 4096; i++) expect(Math.abs(back[i]!)).toBeLessThan(1e-12);
  });
});
