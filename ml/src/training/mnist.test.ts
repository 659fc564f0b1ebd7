import { describe, expect, it } from "vitest";
import { accuracy, crossEntropyLoss } from "./evaluate.ts";
import { initMlp } from "./init.ts";
import { xoshiroRandomBytes } from "./random.ts";
import { loadMnist } from "./test-data.ts";
import { trainLocal } from "./train.ts";
import { computeUpdate } from "./update.ts";
import { clipToNorm } from "./clip.ts";

// Real digits: 200 per class to train on (2,000), the next 100 per class held out (1,000).
const train = loadMnist(200);
const test = loadMnist(100, 200);

describe("training on real MNIST", () => {
  it("a 784→32→10 MLP reaches ≥ 85 % held-out accuracy in 5 epochs", () => {
    const params = initMlp([784, 32, 10], { random: xoshiroRandomBytes(1) });
    const chance = accuracy(params, test.x, test.y);
    const r = trainLocal(params, train.x, train.y, {
      epochs: 5,
      batchSize: 32,
      learningRate: 0.1,
      scope: "all",
      random: xoshiroRandomBytes(2),
    });
    const acc = accuracy(r.params, test.x, test.y);
    expect(chance).toBeLessThan(0.3);
    expect(acc).toBeGreaterThanOrEqual(0.85);
    expect(r.steps).toBe(5 * Math.ceil(2000 / 32));
    expect(crossEntropyLoss(r.params, test.x, test.y)).toBeLessThan(0.6);
  });

  it("softmax regression (784→10) reaches ≥ 80 % held-out accuracy", () => {
    const params = initMlp([784, 10], { random: xoshiroRandomBytes(3) });
    const r = trainLocal(params, train.x, train.y, {
      epochs: 5,
      batchSize: 32,
      learningRate: 0.1,
      scope: "all",
      random: xoshiroRandomBytes(4),
    });
    expect(accuracy(r.params, test.x, test.y)).toBeGreaterThanOrEqual(0.8);
  });

  it("head-only fine-tuning of a pretrained MLP improves it and sends only the head's 330 floats", () => {
    // Pretrain on digits 0-4 only, then fine-tune the head on all digits.
    const lowMask = Array.from(train.y, (c) => c < 5);
    const idx = lowMask.flatMap((m, i) => (m ? [i] : []));
    const lowX = new Float32Array(idx.length * 784);
    idx.forEach((i, r) => lowX.set(train.x.subarray(i * 784, (i + 1) * 784), r * 784));
    const lowY = Uint8Array.from(idx, (i) => train.y[i]!);
    const base = trainLocal(initMlp([784, 32, 10], { random: xoshiroRandomBytes(5) }), lowX, lowY, {
      epochs: 5,
      batchSize: 32,
      learningRate: 0.1,
      scope: "all",
      random: xoshiroRandomBytes(6),
    }).params;
    const before = accuracy(base, test.x, test.y);
    expect(before).toBeLessThan(0.55); // knows only half the classes
    const tuned = trainLocal(base, train.x, train.y, {
      epochs: 5,
      batchSize: 32,
      learningRate: 0.1,
      scope: "head",
      random: xoshiroRandomBytes(7),
    }).params;
    expect(accuracy(tuned, test.x, test.y)).toBeGreaterThan(0.75);
    expect(tuned.layers[0]).toEqual(base.layers[0]);
    const update = computeUpdate(base, tuned, "head");
    expect(update.length).toBe(32 * 10 + 10);
    const { clipped } = clipToNorm(update, 1);
    expect(Math.hypot(...clipped)).toBeLessThanOrEqual(1 + 1e-12);
  });
});
