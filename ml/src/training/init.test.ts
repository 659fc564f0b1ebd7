import { describe, expect, it } from "vitest";
import { assertValidMlp } from "../model-layout/mlp.ts";
import { initMlp } from "./init.ts";
import { xoshiroRandomBytes } from "./random.ts";

function stats(v: Float32Array): { mean: number; std: number } {
  let s = 0;
  let q = 0;
  for (const a of v) {
    s += a;
    q += a * a;
  }
  const mean = s / v.length;
  return { mean, std: Math.sqrt(q / v.length - mean * mean) };
}

describe("initMlp", () => {
  it("builds the layout of @fedge/protocol with ReLU hidden layers and a linear head", () => {
    const p = initMlp([784, 64, 10], { random: xoshiroRandomBytes(1) });
    assertValidMlp(p);
    expect(p.layers.map((l) => [l.inFeatures, l.outFeatures, l.activation])).toEqual([
      [784, 64, "relu"],
      [64, 10, "none"],
    ]);
    expect(p.layers.every((l) => l.bias.every((b) => b === 0))).toBe(true);
    const softmax = initMlp([784, 10], { random: xoshiroRandomBytes(1) });
    expect(softmax.layers).toHaveLength(1);
    expect(softmax.layers[0]!.activation).toBe("none");
    expect(initMlp([3, 4, 2], { hiddenActivation: "none" }).layers[0]!.activation).toBe("none");
  });

  it("draws He-normal weights for ReLU layers and Glorot-normal for the head", () => {
    const p = initMlp([784, 256, 10], { random: xoshiroRandomBytes(2) });
    const he = stats(p.layers[0]!.weight); // 200,704 draws
    expect(Math.abs(he.mean)).toBeLessThan(0.01 * Math.sqrt(2 / 784));
    expect(he.std / Math.sqrt(2 / 784)).toBeCloseTo(1, 2);
    const glorot = stats(p.layers[1]!.weight); // 2,560 draws
    expect(glorot.std / Math.sqrt(2 / (256 + 10))).toBeGreaterThan(0.95);
    expect(glorot.std / Math.sqrt(2 / (256 + 10))).toBeLessThan(1.05);
  });

  it("is reproducible with a seeded source and random by default", () => {
    expect(initMlp([5, 4, 3], { random: xoshiroRandomBytes(7) })).toEqual(
      initMlp([5, 4, 3], { random: xoshiroRandomBytes(7) }),
    );
    expect(initMlp([5, 4, 3], { random: xoshiroRandomBytes(7) })).not.toEqual(
      initMlp([5, 4, 3], { random: xoshiroRandomBytes(8) }),
    );
    expect(initMlp([5, 4, 3])).not.toEqual(initMlp([5, 4, 3]));
  });

  it("rejects bad sizes and options", () => {
    expect(() => initMlp([784])).toThrow(/at least an input and an output width/);
    expect(() => initMlp([784, 0])).toThrow(/sizes\[1\] must be a positive integer, got 0/);
    expect(() => initMlp([784, 6.5, 10])).toThrow(RangeError);
    expect(() => initMlp([3, 2], { hiddenActivation: "tanh" as "relu" })).toThrow(TypeError);
    expect(() => initMlp([3, 2], { random: 42 as unknown as () => void })).toThrow(TypeError);
  });
});
