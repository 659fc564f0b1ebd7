/**
 * vitest global setup (Node): reads the project's built seed models (scripts/build-models.ts, run by the bootstrap
 * before `npm test`) — the MNIST CNN and the text transformer, fp32 and int8, the CNN's `int8-static.onnx` (`fedge
 * quantize` with static activations) and each model's `samples.json` (fixed held-out inputs with their labels) —
 * and computes onnxruntime-node's outputs with graph optimizations disabled (the exact ONNX semantics of each file).
 * The workerd tests upload the same bytes and compare what the edge serves.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as ortNode from "onnxruntime-node";
import { toB64, type SeedModelsFixture } from "./inference-fixture.ts";

interface SetupContext {
  provide<K extends "seedModels">(key: K, value: SeedModelsFixture): void;
}

/** A model's `samples.json`: Open Inference Protocol inputs and the examples' labels. */
interface Samples {
  n: number;
  inputs: { name: string; datatype: "FP32" | "INT64"; shape: number[]; data: number[] }[];
  labels: number[];
}

const MODELS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../models");

function read(model: string, file: string): Uint8Array {
  const p = path.join(MODELS, model, file);
  if (!existsSync(p)) throw new Error(`${p} is missing: build the seed models first (npm run bootstrap)`);
  return new Uint8Array(readFileSync(p));
}

function samples(model: string): Samples {
  return JSON.parse(new TextDecoder().decode(read(model, "samples.json"))) as Samples;
}

function input(s: Samples, name: string): Samples["inputs"][number] {
  const t = s.inputs.find((i) => i.name === name);
  if (!t) throw new Error(`samples.json has no input ${name}`);
  return t;
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
  const digits = samples("mnist-cnn");
  const image = input(digits, "image");
  const images = image.data;
  const text = samples("text-transformer");
  const idsIn = input(text, "input_ids");
  const [n, len] = idsIn.shape as [number, number];
  const ids = idsIn.data;
  const mask = input(text, "attention_mask").data;
  const cnn = {
    fp32: read("mnist-cnn", "fp32.onnx"),
    int8: read("mnist-cnn", "int8.onnx"),
    staticInt8: read("mnist-cnn", "int8-static.onnx"),
  };
  const txt = { fp32: read("text-transformer", "fp32.onnx"), int8: read("text-transformer", "int8.onnx") };
  const imageFeeds = { image: new ortNode.Tensor("float32", Float32Array.from(images), image.shape) };
  const textFeeds = {
    input_ids: new ortNode.Tensor("int64", BigInt64Array.from(ids.map(BigInt)), [n, len]),
    attention_mask: new ortNode.Tensor("int64", BigInt64Array.from(mask.map(BigInt)), [n, len]),
  };
  ctx.provide("seedModels", {
    cnn: {
      fp32: toB64(cnn.fp32),
      int8: toB64(cnn.int8),
      staticInt8: toB64(cnn.staticInt8),
      expectedStaticInt8: await runExact(cnn.staticInt8, imageFeeds),
      images,
      labels: digits.labels,
      expectedFp32: await runExact(cnn.fp32, imageFeeds),
      expectedInt8: await runExact(cnn.int8, imageFeeds),
    },
    text: {
      fp32: toB64(txt.fp32),
      int8: toB64(txt.int8),
      ids,
      mask,
      len,
      labels: text.labels,
      expectedFp32: await runExact(txt.fp32, textFeeds),
      expectedInt8: await runExact(txt.int8, textFeeds),
    },
  });
}
