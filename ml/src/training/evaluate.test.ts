import { describe, expect, it } from "vitest";
import type { MlpParams } from "../model-layout/mlp.ts";
import { accuracy, crossEntropyLoss, predictClasses } from "./evaluate.ts";
import { initMlp } from "./init.ts";
import { xoshiroRandomBytes } from "./random.ts";
import { randomData } from "./test-data.ts";

// Identity weights: the logits are the inputs themselves.
const identity3: MlpParams = {
  layers: [
    {
      inFeatures: 3,
      outFeatures: 3,
      weight: Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1]),
      bias: new Float32Array(3),
      activation: "none",
    },
  ],
};

describe("evaluation", () => {
  it("predicts the arg-max class (ties to the lowest index)", () => {
    const x = Float32Array.from([0, 5, 1, 2, 2, -1, -3, -2, -1]);
    expect(Array.from(predictClasses(identity3, x, 3))).toEqual([1, 0, 2]);
    expect(accuracy(identity3, x, Uint8Array.from([1, 1, 2]))).toBeCloseTo(2 / 3, 15);
  });

  it("computes the mean cross-entropy, stable for large logits", () => {
    const x = Float32Array.from([0, 0, 0, 1000, 0, 0]);
    const y = Uint8Array.from([2, 0]);
    // Row 1: uniform → ln 3. Row 2: log(1 + 2e−1000) − 0 ≈ 0.
    expect(crossEntropyLoss(identity3, x, y)).toBeCloseTo(Math.log(3) / 2, 12);
    const wrong = crossEntropyLoss(identity3, x, Uint8Array.from([2, 1]));
    expect(wrong).toBeCloseTo((Math.log(3) + 1000) / 2, 9);
  });

  it("untrained 10-class model has loss near ln 10 and chunking is seamless", () => {
    const params = initMlp([20, 10], { random: xoshiroRandomBytes(1) });
    const data = randomData(700, 20, 10, 2);
    const scaled = { layers: params.layers.map((l) => ({ ...l, weight: l.weight.map((w) => w * 1e-3) })) };
    expect(crossEntropyLoss(scaled, data.x, data.y)).toBeCloseTo(Math.log(10), 2);
    const all = predictClasses(params, data.x, data.n);
    const tail = predictClasses(params, data.x.subarray(300 * 20), 400);
    expect(all.subarray(300)).toEqual(tail);
  });

  it("rejects bad inputs", () => {
    expect(() => predictClasses(identity3, new Float32Array(4), 1)).toThrow(RangeError);
    expect(() => accuracy(identity3, new Float32Array(3), Uint8Array.from([3]))).toThrow(/label 3 at sample 0/);
    expect(() => crossEntropyLoss(identity3, Float32Array.from([0, NaN, 0]), Uint8Array.from([0]))).toThrow(
      /non-finite/,
    );
  });
});
