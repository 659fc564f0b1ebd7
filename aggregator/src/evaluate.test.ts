import { describe, expect, it } from "vitest";
import type { MlpParams } from "@fedge/ml";
import { evaluateModel, publishGate } from "./evaluate.ts";

// logits = x·W: class 0 when x0 > x1, class 1 otherwise
const model: MlpParams = {
  layers: [
    {
      inFeatures: 2,
      outFeatures: 2,
      weight: new Float32Array([1, 0, 0, 1]),
      bias: new Float32Array(2),
      activation: "none",
    },
  ],
};

describe("evaluation and publish gate", () => {
  it("computes accuracy and loss on a held-out set", () => {
    const e = evaluateModel(model, {
      x: new Float32Array([2, 0, 0, 2, 3, 0, 1, 0]),
      y: new Uint8Array([0, 1, 1, 0]),
      n: 4,
    });
    expect(e.accuracy).toBe(0.75); // (3, 0) labelled 1 is the one miss
    expect(e.n).toBe(4);
    expect(e.loss).toBeGreaterThan(0);
    expect(() => evaluateModel(model, { x: new Float32Array(0), y: new Uint8Array(0), n: 0 })).toThrow(RangeError);
    expect(() => evaluateModel(model, { x: new Float32Array(0), y: new Uint8Array(0), n: 0 })).toThrow(/n > 0/);
    expect(() => evaluateModel(model, { x: new Float32Array(3), y: new Uint8Array(1), n: 1 })).toThrow(
      /cannot evaluate/,
    );
  });

  it("publishes the first version and small drops, refuses a large drop with the reason", () => {
    expect(publishGate({ candidate: { accuracy: 0.8, loss: 1, n: 10 }, maxAccuracyDrop: 0.02 })).toMatchObject({
      publish: true,
    });
    expect(
      publishGate({ candidate: { accuracy: 0.79, loss: 1, n: 10 }, servingAccuracy: 0.8, maxAccuracyDrop: 0.02 })
        .publish,
    ).toBe(true);
    const refused = publishGate({
      candidate: { accuracy: 0.7, loss: 1, n: 10 },
      servingAccuracy: 0.8,
      maxAccuracyDrop: 0.02,
    });
    expect(refused.publish).toBe(false);
    expect(refused.reason).toMatch(/drop from 0\.8000 to 0\.7000/);
    expect(refused.accuracyChange).toBeCloseTo(-0.1, 12);
    expect(publishGate({ candidate: { accuracy: 0.9, loss: NaN, n: 10 }, maxAccuracyDrop: 0.02 }).publish).toBe(false);
    expect(publishGate({ maxAccuracyDrop: 0.02 }).publish).toBe(true);
    expect(() => publishGate({ maxAccuracyDrop: 2 })).toThrow(/maxAccuracyDrop/);
  });

  it("tie rule: with maxAccuracyDrop 0 a tie publishes and says so, one sample worse is refused", () => {
    const tie = publishGate({
      candidate: { accuracy: 0.75, loss: 1, n: 200 },
      servingAccuracy: 0.75,
      maxAccuracyDrop: 0,
      weights: "int8",
    });
    expect(tie).toMatchObject({ publish: true, accuracyChange: 0 });
    expect(tie.reason).toBe("int8 accuracy 0.7500 ties the serving version: published (a tie is not worse)");
    const worse = publishGate({
      candidate: { accuracy: 149 / 200, loss: 1, n: 200 },
      servingAccuracy: 150 / 200,
      maxAccuracyDrop: 0,
      weights: "int8",
    });
    expect(worse.publish).toBe(false);
    expect(worse.reason).toMatch(/^int8 accuracy would drop from 0\.7500 to 0\.7450/);
    expect(
      publishGate({ candidate: { accuracy: 151 / 200, loss: 1, n: 200 }, servingAccuracy: 0.75, maxAccuracyDrop: 0 })
        .publish,
    ).toBe(true);
  });

  it("a drop of exactly maxAccuracyDrop publishes, whatever the float rounding of k/n", () => {
    // 0.9 − 0.92 is −0.02000000000000002 in binary floating point
    expect(0.9 - 0.92).toBeLessThan(-0.02);
    const d = publishGate({
      candidate: { accuracy: 0.9, loss: 1, n: 100 },
      servingAccuracy: 0.92,
      maxAccuracyDrop: 0.02,
    });
    expect(d.publish).toBe(true);
    expect(
      publishGate({ candidate: { accuracy: 0.89, loss: 1, n: 100 }, servingAccuracy: 0.92, maxAccuracyDrop: 0.02 })
        .publish,
    ).toBe(false);
  });
});
