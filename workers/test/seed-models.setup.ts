/**
 * vitest global setup (Node): reads the project's built seed models (scripts/build-models.ts, run by the bootstrap
 * before `npm test`) — the MNIST CNN and the text transformer, fp32 and int8 — picks fixed inputs from their
 * held-out splits, and computes onnxruntime-node's outputs with graph optimizations disabled (the exact ONNX
 * semantics of each file). The workerd tests upload the same bytes and compare what the edge serves.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as ortNode from "onnxruntime-node";
import { loadMnist, loadSyntheticText } from "fedge/data";
import { quantizeOnnx } from "fedge/quantize";
import { toB64, type SeedModelsFixture } from "./inference-fixture.ts";

interface SetupContext {
  provide<K extends "seedModels">(key: K, value: SeedModelsFixture): void;
}

const MODELS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../models");

function read(model: string, file: string): Uint8Array {
  const p = path.join(MODELS, model, file);
  if (!existsSync(p)) throw new Error(`${p} is missing: build the seed models first (npm run bootstrap)`);
  return new Uint8Array(readFileSync(p));
}

async function runExact(bytes: Uint8Array, feeds: Record<string, ortNode.Tensor>): Promise<Record<string, number[]>> {
  const session = await ortNode.InferenceSession.create(bytes, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: "disabled",
  });
  const out = await session.run(feeds);
  await session.release();
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Array.from(v.data as Float32Array)]));
}

export default async function setup(ctx: SetupContext): Promise<void> {
  const n = 8;
  const { test: digits } = loadMnist();
  const images = Array.from(digits.x.subarray(0, n * 784));
  const { test: text } = loadSyntheticText();
  const len = text.len;
  const ids = Array.from(text.ids.subarray(0, n * len), Number);
  const mask = Array.from(text.mask.subarray(0, n * len), Number);
  const cnn = { fp32: read("mnist-cnn", "fp32.onnx"), int8: read("mnist-cnn", "int8.onnx") };
  const txt = { fp32: read("text-transformer", "fp32.onnx"), int8: read("text-transformer", "int8.onnx") };
  const imageFeeds = { image: new ortNode.Tensor("float32", Float32Array.from(images), [n, 1, 28, 28]) };
  const textFeeds = {
    input_ids: new ortNode.Tensor("int64", BigInt64Array.from(ids.map(BigInt)), [n, len]),
    attention_mask: new ortNode.Tensor("int64", BigInt64Array.from(mask.map(BigInt)), [n, len]),
  };
  // fedge quantize with static activations (asymmetric weights, calibrated on 64 other test digits).
  const calibration = [
    new Map([
      ["image", { dtype: "float32" as const, shape: [64, 1, 28, 28], data: digits.x.slice(n * 784, (n + 64) * 784) }],
    ]),
  ];
  const staticInt8 = (await quantizeOnnx(cnn.fp32, { weights: "asymmetric", calibration })).bytes;
  ctx.provide("seedModels", {
    cnn: {
      fp32: toB64(cnn.fp32),
      int8: toB64(cnn.int8),
      staticInt8: toB64(staticInt8),
      expectedStaticInt8: await runExact(staticInt8, imageFeeds),
      images,
      labels: Array.from(digits.y.subarray(0, n)),
      expectedFp32: await runExact(cnn.fp32, imageFeeds),
      expectedInt8: await runExact(cnn.int8, imageFeeds),
    },
    text: {
      fp32: toB64(txt.fp32),
      int8: toB64(txt.int8),
      ids,
      mask,
      len,
      labels: Array.from(text.y.subarray(0, n)),
      expectedFp32: await runExact(txt.fp32, textFeeds),
      expectedInt8: await runExact(txt.int8, textFeeds),
    },
  });
}
