import { describe, expect, it } from "vitest";
import { flattenTrainable, trainableLength, withTrainable, type MlpParams } from "../model-layout/mlp.ts";
import { accuracy, crossEntropyLoss } from "./evaluate.ts";
import { initMlp } from "./init.ts";
import { forward, gradients } from "./mlp.ts";
import { xoshiroRandomBytes } from "./random.ts";
import { randomData, separableBlobs, snapshot } from "./test-data.ts";
import { trainLocal, type TrainOptions } from "./train.ts";
import { computeUpdate } from "./update.ts";

const identity = (n: number): Uint32Array => Uint32Array.from({ length: n }, (_, i) => i);

describe("trainLocal", () => {
  it("drives the loss down on a separable problem (softmax regression and MLP)", () => {
    const data = separableBlobs(300, 4, 3, 1);
    for (const sizes of [
      [4, 3],
      [4, 8, 3],
    ]) {
      let params = initMlp(sizes, { random: xoshiroRandomBytes(2) });
      const initial = crossEntropyLoss(params, data.x, data.y);
      const losses: number[] = [];
      for (let e = 0; e < 5; e++) {
        const r = trainLocal(params, data.x, data.y, {
          epochs: 1,
          batchSize: 16,
          learningRate: 0.05,
          scope: "all",
          random: xoshiroRandomBytes(3 + e),
        });
        params = r.params;
        losses.push(r.loss);
      }
      const final = crossEntropyLoss(params, data.x, data.y);
      expect(losses[4]!).toBeLessThan(losses[0]!);
      expect(final).toBeLessThan(initial / 10);
      expect(accuracy(params, data.x, data.y)).toBe(1);
    }
  });

  it("one full-batch step equals θ − η·∇L (all and head scopes)", () => {
    const params = initMlp([5, 6, 4, 3], { random: xoshiroRandomBytes(4) });
    const data = randomData(20, 5, 3, 5);
    for (const scope of ["all", "head"] as const) {
      const g = gradients(params, data.x, data.y, scope);
      const r = trainLocal(params, data.x, data.y, {
        epochs: 1,
        batchSize: 20,
        learningRate: 0.1,
        scope,
        shuffle: identity,
      });
      expect(r.steps).toBe(1);
      expect(r.loss).toBeCloseTo(crossEntropyLoss(params, data.x, data.y), 12);
      r.params.layers.forEach((l, i) => {
        for (const key of ["weight", "bias"] as const) {
          for (let k = 0; k < l[key].length; k++) {
            expect(l[key][k]).toBeCloseTo(params.layers[i]![key][k]! - 0.1 * g.layers[i]![key][k]!, 6);
          }
        }
      });
    }
  });

  it("head scope changes only the last layer and leaves the input untouched", () => {
    const params = initMlp([6, 8, 5, 3], { random: xoshiroRandomBytes(6) });
    const before = snapshot(params);
    const data = randomData(40, 6, 3, 7);
    const r = trainLocal(params, data.x, data.y, {
      epochs: 3,
      batchSize: 7,
      learningRate: 0.1,
      scope: "head",
      random: xoshiroRandomBytes(8),
    });
    expect(params.layers).toEqual(before);
    expect(r.steps).toBe(3 * Math.ceil(40 / 7));
    for (let l = 0; l < 2; l++) {
      expect(r.params.layers[l]).toEqual(before[l]);
      expect(r.params.layers[l]!.weight).not.toBe(params.layers[l]!.weight); // a copy, not shared
    }
    expect(r.params.layers[2]!.weight).not.toEqual(before[2]!.weight);
    const update = computeUpdate(params, r.params, "head");
    expect(update.length).toBe(trainableLength(params, "head"));
    expect(update.length).toBe(5 * 3 + 3);
    // The all-scope update of a head-only run is zero outside the head.
    const all = computeUpdate(params, r.params, "all");
    const frozen = 6 * 8 + 8 + 8 * 5 + 5;
    expect(all.subarray(0, frozen).every((v) => v === 0)).toBe(true);
    expect(all.subarray(frozen)).toEqual(update);
  });

  it("head training equals training the head alone on the frozen features", () => {
    const params = initMlp([4, 6, 3], { random: xoshiroRandomBytes(9) });
    const data = randomData(30, 4, 3, 10);
    const opts: TrainOptions = { epochs: 2, batchSize: 8, learningRate: 0.2, scope: "head", shuffle: identity };
    const full = trainLocal(params, data.x, data.y, opts).params;
    const features = forward({ layers: [params.layers[0]!] }, data.x, data.n);
    const head = trainLocal({ layers: [params.layers[1]!] }, features, data.y, { ...opts, scope: "all" }).params;
    expect(full.layers[0]).toEqual(params.layers[0]);
    for (const key of ["weight", "bias"] as const) {
      const got = full.layers[1]![key];
      const want = head.layers[0]![key];
      // Features rounded to float32 on one side only: agreement to ~1e-6.
      for (let k = 0; k < got.length; k++) expect(got[k]).toBeCloseTo(want[k]!, 5);
    }
  });

  it("is reproducible with a seeded source and differs across seeds", () => {
    const params = initMlp([4, 5, 3], { random: xoshiroRandomBytes(11) });
    const data = randomData(50, 4, 3, 12);
    const run = (seed: number): MlpParams =>
      trainLocal(params, data.x, data.y, {
        epochs: 2,
        batchSize: 8,
        learningRate: 0.1,
        scope: "all",
        random: xoshiroRandomBytes(seed),
      }).params;
    expect(run(1)).toEqual(run(1));
    expect(run(1)).not.toEqual(run(2));
    // Default (CSPRNG) shuffling also trains.
    const r = trainLocal(params, data.x, data.y, { epochs: 1, batchSize: 8, learningRate: 0.1, scope: "all" });
    expect(Number.isFinite(r.loss)).toBe(true);
  });

  it("l2 shrinks the weights relative to plain SGD", () => {
    const params = initMlp([4, 3], { random: xoshiroRandomBytes(13) });
    const data = randomData(40, 4, 3, 14);
    const base: TrainOptions = { epochs: 3, batchSize: 10, learningRate: 0.1, scope: "all", shuffle: identity };
    const plain = flattenTrainable(trainLocal(params, data.x, data.y, base).params, "all");
    const decayed = flattenTrainable(trainLocal(params, data.x, data.y, { ...base, l2: 0.5 }).params, "all");
    const norm = (v: Float32Array): number => Math.hypot(...v);
    expect(norm(decayed)).toBeLessThan(norm(plain));
  });

  it("computeUpdate and withTrainable round-trip", () => {
    const params = initMlp([5, 4, 3], { random: xoshiroRandomBytes(15) });
    const data = randomData(30, 5, 3, 16);
    for (const scope of ["all", "head"] as const) {
      const after = trainLocal(params, data.x, data.y, { epochs: 1, batchSize: 5, learningRate: 0.1, scope }).params;
      const delta = computeUpdate(params, after, scope);
      const base = flattenTrainable(params, scope);
      const sum = base.map((v, i) => v + delta[i]!);
      const rebuilt = withTrainable(params, scope, sum);
      rebuilt.layers.forEach((l, i) => {
        for (let k = 0; k < l.weight.length; k++) expect(l.weight[k]).toBeCloseTo(after.layers[i]!.weight[k]!, 6);
        for (let k = 0; k < l.bias.length; k++) expect(l.bias[k]).toBeCloseTo(after.layers[i]!.bias[k]!, 6);
      });
    }
  });
});

describe("trainLocal input checks", () => {
  const params = initMlp([3, 4, 2], { random: xoshiroRandomBytes(1) });
  const x = new Float32Array(12);
  const y = Uint8Array.from([0, 1, 1, 0]);
  const ok: TrainOptions = { epochs: 1, batchSize: 2, learningRate: 0.1, scope: "all" };
  const cases: [string, () => unknown, ErrorConstructor, RegExp][] = [
    [
      "x/y length mismatch",
      () => trainLocal(params, x, y.subarray(0, 3), ok),
      RangeError,
      /x holds 4 samples but y holds 3/,
    ],
    [
      "x not a multiple of inFeatures",
      () => trainLocal(params, x.subarray(0, 11), y, ok),
      RangeError,
      /not a multiple/,
    ],
    [
      "label out of range",
      () => trainLocal(params, x, Uint8Array.from([0, 1, 2, 0]), ok),
      RangeError,
      /label 2 at sample 2/,
    ],
    ["negative label", () => trainLocal(params, x, Int32Array.from([0, -1, 1, 0]), ok), RangeError, /label -1/],
    [
      "NaN in x",
      () =>
        trainLocal(
          params,
          x.map((v, i) => (i === 7 ? NaN : v)),
          y,
          ok,
        ),
      RangeError,
      /sample 2, feature 1/,
    ],
    [
      "Infinity in x",
      () =>
        trainLocal(
          params,
          x.map((v, i) => (i === 0 ? Infinity : v)),
          y,
          ok,
        ),
      RangeError,
      /non-finite/,
    ],
    [
      "batchSize 0",
      () => trainLocal(params, x, y, { ...ok, batchSize: 0 }),
      RangeError,
      /batchSize must be a positive integer/,
    ],
    ["batchSize 1.5", () => trainLocal(params, x, y, { ...ok, batchSize: 1.5 }), RangeError, /batchSize/],
    ["lr 0", () => trainLocal(params, x, y, { ...ok, learningRate: 0 }), RangeError, /learningRate must be a positive/],
    ["lr < 0", () => trainLocal(params, x, y, { ...ok, learningRate: -1 }), RangeError, /learningRate/],
    ["lr NaN", () => trainLocal(params, x, y, { ...ok, learningRate: NaN }), RangeError, /learningRate/],
    ["epochs 0", () => trainLocal(params, x, y, { ...ok, epochs: 0 }), RangeError, /epochs must be a positive integer/],
    ["l2 < 0", () => trainLocal(params, x, y, { ...ok, l2: -0.1 }), RangeError, /l2 must be/],
    ["unknown scope", () => trainLocal(params, x, y, { ...ok, scope: "tail" as "all" }), TypeError, /scope must be/],
    [
      "x a plain array",
      () => trainLocal(params, [0, 0, 0] as unknown as Float32Array, y, ok),
      TypeError,
      /Float32Array/,
    ],
    [
      "y a plain array",
      () => trainLocal(params, x, [0, 1, 1, 0] as unknown as Uint8Array, ok),
      TypeError,
      /Uint8Array or Int32Array/,
    ],
    ["empty data", () => trainLocal(params, new Float32Array(0), new Uint8Array(0), ok), RangeError, /empty/],
    [
      "shuffle not a permutation",
      () => trainLocal(params, x, y, { ...ok, shuffle: () => Uint32Array.from([0, 0, 1, 2]) }),
      RangeError,
      /permutation/,
    ],
    [
      "shuffle wrong length",
      () => trainLocal(params, x, y, { ...ok, shuffle: () => new Uint32Array(3) }),
      RangeError,
      /returned 3 indices/,
    ],
    [
      "shuffle wrong type",
      () => trainLocal(params, x, y, { ...ok, shuffle: () => [0, 1, 2, 3] as unknown as Uint32Array }),
      TypeError,
      /Uint32Array/,
    ],
    [
      "non-finite parameter",
      () => {
        const p = initMlp([3, 2], { random: xoshiroRandomBytes(1) });
        p.layers[0]!.weight[1] = NaN;
        return trainLocal(p, x, y, ok);
      },
      RangeError,
      /non-finite parameter/,
    ],
  ];
  it.each(cases)("%s", (_name, call, type, message) => {
    const before = snapshot(params);
    expect(call).toThrow(type);
    expect(call).toThrow(message);
    expect(params.layers).toEqual(before);
  });

  it("reports divergence instead of returning non-finite weights", () => {
    const data = separableBlobs(40, 3, 2, 2);
    const big = { ...data, x: data.x.map((v) => v * 1e18) };
    expect(() => trainLocal(params, big.x, big.y, { ...ok, learningRate: 1e30 })).toThrow(/diverged/);
  });
});
