import { describe, expect, it } from "vitest";
import { seededRandomBytes } from "@fedge/privacy/testing";
import { CanarySet } from "./canaries.ts";

const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

describe("CanarySet", () => {
  it("an inserted canary's update is its unit direction at the clip norm", () => {
    const set = CanarySet.create({ length: 500, inserted: 3, held: 4, random: seededRandomBytes(1) });
    expect(set.count).toBe(3);
    const a = new Float32Array(500);
    const b = new Float32Array(500);
    set.update(0, 0.7, a);
    set.update(0, 2.1, b);
    expect(norm(a)).toBeCloseTo(0.7, 5);
    for (let i = 0; i < 500; i++) expect(b[i]!).toBeCloseTo(3 * a[i]!, 5);
    set.update(1, 0.7, b);
    expect(b).not.toEqual(a);
  });

  it("measures the delta's cosine with every inserted and every held canary", () => {
    const set = CanarySet.create({ length: 2000, inserted: 4, held: 6, random: seededRandomBytes(2) });
    const initial = new Float32Array(2000).fill(0.5);
    const final = Float32Array.from(initial);
    const c = new Float32Array(2000);
    set.update(2, 1, c);
    for (let i = 0; i < 2000; i++) final[i]! += 3 * c[i]!; // only canary 2 took part
    const { observed, unobserved } = set.cosines(initial, final);
    expect(observed).toHaveLength(4);
    expect(unobserved).toHaveLength(6);
    expect(observed[2]).toBeCloseTo(1, 5);
    for (const x of [observed[0]!, observed[1]!, observed[3]!, ...unobserved]) expect(Math.abs(x)).toBeLessThan(0.12);
  });

  it("rejects bad arguments with a RangeError", () => {
    expect(() => CanarySet.create({ length: 10, inserted: 1 })).toThrow(RangeError);
    expect(() => CanarySet.create({ length: 10, inserted: 2, held: 1 })).toThrow(RangeError);
    const set = CanarySet.create({ length: 10, inserted: 2 });
    expect(() => set.update(2, 1, new Float32Array(10))).toThrow(RangeError);
    expect(() => set.update(0, 0, new Float32Array(10))).toThrow(RangeError);
    expect(() => set.update(0, 1, new Float32Array(9))).toThrow(RangeError);
    expect(() => set.cosines(new Float32Array(10), new Float32Array(9))).toThrow(RangeError);
  });
});
