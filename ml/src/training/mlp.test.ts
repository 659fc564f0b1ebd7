import { describe, expect, it } from "vitest";
import type { MlpParams } from "../model-layout/mlp.ts";
import type { TrainableScope } from "@fedge/protocol";
import { crossEntropyLoss } from "./evaluate.ts";
import { initMlp } from "./init.ts";
import { cloneMlp, forward, gradients } from "./mlp.ts";
import { xoshiroRandomBytes } from "./random.ts";
import { randomData, snapshot, type Dataset } from "./test-data.ts";

/**
 * Central finite differences against the analytic gradient. The loss is accumulated in float64 internally, so the
 * only float32 effect is the stored parameter: we step θ to fround(θ ± h) and divide by the exact distance between
 * the two stored values. Tolerance: |g − fd| ≤ 1e-6 + 1e-4·|fd| (truncation O(h²) ≈ 1e-8, float64 roundoff ≈ 1e-11).
 */
function checkGradients(params: MlpParams, data: Dataset, scope: TrainableScope): number {
  const grads = gradients(params, data.x, data.y, scope);
  const h = 1e-4;
  let checked = 0;
  params.layers.forEach((layer, l) => {
    for (const key of ["weight", "bias"] as const) {
      const theta = layer[key];
      const g = grads.layers[l]![key];
      for (let k = 0; k < theta.length; k++) {
        const p = cloneMlp(params);
        const t = p.layers[l]![key];
        t[k] = theta[k]! + h;
        const up = t[k]!;
        const lossUp = crossEntropyLoss(p, data.x, data.y);
        t[k] = theta[k]! - h;
        const down = t[k]!;
        const lossDown = crossEntropyLoss(p, data.x, data.y);
        const fd = (lossUp - lossDown) / (up - down);
        const frozen = scope === "head" && l < params.layers.length - 1;
        if (frozen) {
          expect(g[k], `frozen layer ${l} ${key}[${k}]`).toBe(0);
        } else {
          expect(Math.abs(g[k]! - fd), `layer ${l} ${key}[${k}]: analytic ${g[k]} vs fd ${fd}`).toBeLessThanOrEqual(
            1e-6 + 1e-4 * Math.abs(fd),
          );
        }
        checked++;
      }
    }
  });
  return checked;
}

/** Random non-zero biases, so that the bias gradients are exercised away from the init point. */
function withRandomBiases(params: MlpParams, seed: number): MlpParams {
  const p = cloneMlp(params);
  const noise = randomData(1, 1000, 2, seed).x;
  let o = 0;
  for (const l of p.layers) for (let j = 0; j < l.bias.length; j++) l.bias[j] = 0.1 * noise[o++]!;
  return p;
}

describe("gradients", () => {
  it("match central finite differences for softmax regression (6 → 4)", () => {
    const params = withRandomBiases(initMlp([6, 4], { random: xoshiroRandomBytes(1) }), 2);
    const data = randomData(9, 6, 4, 3);
    expect(checkGradients(params, data, "all")).toBe(6 * 4 + 4);
  });

  it("match central finite differences for a 2-hidden-layer ReLU MLP (5 → 7 → 6 → 3)", () => {
    const params = withRandomBiases(initMlp([5, 7, 6, 3], { random: xoshiroRandomBytes(4) }), 5);
    const data = randomData(11, 5, 3, 6);
    expect(checkGradients(params, data, "all")).toBe(5 * 7 + 7 + 7 * 6 + 6 + 6 * 3 + 3);
  });

  it("head scope: the last layer matches finite differences, frozen layers get exactly zero", () => {
    const params = withRandomBiases(initMlp([5, 7, 6, 3], { random: xoshiroRandomBytes(7) }), 8);
    const data = randomData(10, 5, 3, 9);
    const before = snapshot(params);
    checkGradients(params, data, "head");
    const all = gradients(params, data.x, data.y, "all");
    const head = gradients(params, data.x, data.y, "head");
    // The head's gradient does not depend on the scope.
    expect(head.layers[2]!.weight).toEqual(all.layers[2]!.weight);
    expect(head.layers[2]!.bias).toEqual(all.layers[2]!.bias);
    expect(params.layers).toEqual(before);
  });

  it("are the mean over samples (chunking over > 256 rows does not change them)", () => {
    const params = initMlp([3, 4, 2], { random: xoshiroRandomBytes(10) });
    const data = randomData(600, 3, 2, 11);
    const g = gradients(params, data.x, data.y, "all");
    // Sum of per-half gradients weighted by their sizes equals the whole.
    const a = gradients(params, data.x.subarray(0, 300 * 3), data.y.subarray(0, 300), "all");
    const b = gradients(params, data.x.subarray(300 * 3), data.y.subarray(300), "all");
    g.layers.forEach((l, i) => {
      for (let k = 0; k < l.weight.length; k++) {
        expect(l.weight[k]).toBeCloseTo((a.layers[i]!.weight[k]! + b.layers[i]!.weight[k]!) / 2, 6);
      }
    });
  });
});

describe("forward", () => {
  it("computes act(x·W + b) with W row-major [in][out], against a hand-worked example", () => {
    const params: MlpParams = {
      layers: [
        {
          inFeatures: 2,
          outFeatures: 3,
          weight: Float32Array.from([1, -1, 0.5, 2, 1, -3]),
          bias: Float32Array.from([0, 0.5, 1]),
          activation: "relu",
        },
        {
          inFeatures: 3,
          outFeatures: 2,
          weight: Float32Array.from([1, 0, 0, 1, 1, 1]),
          bias: Float32Array.from([0, -1]),
          activation: "none",
        },
      ],
    };
    // x = [1, 2] → z1 = [1+4, -1+2+0.5, 0.5-6+1] = [5, 1.5, -4.5] → relu [5, 1.5, 0] → [5, 1.5 - 1] = [5, 0.5]
    // x = [0, 0] → z1 = b = [0, 0.5, 1] → [0 + 1, 0.5 + 1 - 1] = [1, 0.5]
    const out = forward(params, Float32Array.from([1, 2, 0, 0]), 2);
    expect(Array.from(out)).toEqual([5, 0.5, 1, 0.5]);
  });

  it("handles n = 0 and rejects mismatched or non-finite input", () => {
    const params = initMlp([3, 2], { random: xoshiroRandomBytes(1) });
    expect(forward(params, new Float32Array(0), 0)).toEqual(new Float32Array(0));
    expect(() => forward(params, new Float32Array(5), 2)).toThrow(
      /x has 5 values, expected n × inFeatures = 2 × 3 = 6/,
    );
    expect(() => forward(params, Float32Array.from([0, NaN, 0]), 1)).toThrow(RangeError);
    expect(() => forward(params, [1, 2, 3] as unknown as Float32Array, 1)).toThrow(TypeError);
    const broken = cloneMlp(params);
    broken.layers[0]!.bias = new Float32Array(3);
    expect(() => forward(broken, new Float32Array(3), 1)).toThrow(/bias has 3 values, expected 2/);
  });
});

describe("gradients input checks", () => {
  const params = initMlp([3, 2], { random: xoshiroRandomBytes(1) });
  it("rejects bad labels, lengths and scopes", () => {
    const x = new Float32Array(6);
    expect(() => gradients(params, x, Uint8Array.from([0, 2]), "all")).toThrow(
      /label 2 at sample 1 is outside \[0, 2\)/,
    );
    expect(() => gradients(params, x, Int32Array.from([0, -1]), "all")).toThrow(RangeError);
    expect(() => gradients(params, x, Uint8Array.from([0]), "all")).toThrow(/x holds 2 samples but y holds 1 labels/);
    expect(() => gradients(params, x, Uint8Array.from([0, 1]), "last" as TrainableScope)).toThrow(TypeError);
    expect(() => gradients(params, new Float32Array(0), new Uint8Array(0), "all")).toThrow(/empty/);
  });
});
