/**
 * @module
 * The ONNX codec (schemas/src/onnx: a descriptor interpreter over protobufjs/minimal, usable in Workers) against
 * protobufjs reflection (`Root.fromJSON` of the same descriptor: generated code, fastest in Node but forbidden in
 * Workers), on the 784→64→10 MNIST MLP files; plus the int8/fp32 file size ratio (goal ≤ 0.3).
 */
import * as protobuf from "protobufjs/light.js";
import { buildMlpOnnx, decodeOnnx, encodeOnnx, ONNX_PROTO_JSON, readMlpFromOnnx, type MlpParams } from "@fedge/ml";
import { measure, type BenchMeasure } from "../types.ts";

/** Median milliseconds per call over `rounds` rounds of `reps` calls, after a warm-up. */
function time(fn: () => unknown, reps: number, rounds = 15): number {
  for (let i = 0; i < reps; i++) fn();
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    for (let i = 0; i < reps; i++) fn();
    samples.push((performance.now() - t) / reps);
  }
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1]!;
}

function mlp(): MlpParams {
  const values = (n: number, seed: number) =>
    Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * 0.1);
  return {
    layers: [
      { inFeatures: 784, outFeatures: 64, weight: values(784 * 64, 1), bias: values(64, 2), activation: "relu" },
      { inFeatures: 64, outFeatures: 10, weight: values(640, 3), bias: values(10, 4), activation: "none" },
    ],
  };
}

export default async function run(): Promise<BenchMeasure[]> {
  const params = mlp();
  const fp32 = buildMlpOnnx(params, { quantization: "none" });
  const int8 = buildMlpOnnx(params, { quantization: "int8-per-channel-symmetric" });
  const Model = protobuf.Root.fromJSON(ONNX_PROTO_JSON).lookupType("onnx.ModelProto");
  const out: BenchMeasure[] = [];
  for (const [label, bytes] of [
    ["fp32", fp32],
    ["int8", int8],
  ] as const) {
    const ours = time(() => decodeOnnx(bytes), 50);
    const theirs = time(() => Model.decode(bytes), 50);
    out.push(
      measure({
        name: `decode-${label}`,
        description: `decodeOnnx of the ${label} 784-64-10 MLP (${bytes.length} B), ms per file`,
        value: ours,
        unit: "ms",
        baseline_name: "protobufjs reflection Type.decode (codegen; not allowed in Workers)",
        baseline: theirs,
        better: "lower",
        notes: "median of 15 rounds × 50 decodes, Node 24, one thread",
      }),
    );
    const model = decodeOnnx(bytes);
    const message = Model.fromObject(model);
    out.push(
      measure({
        name: `encode-${label}`,
        description: `encodeOnnx of the decoded ${label} model, ms per file`,
        value: time(() => encodeOnnx(model), 50),
        unit: "ms",
        baseline_name: "protobufjs reflection Type.encode(...).finish()",
        baseline: time(() => Model.encode(message).finish(), 50),
        better: "lower",
      }),
    );
  }
  out.push(
    measure({
      name: "read-mlp-int8",
      description: "readMlpFromOnnx of the int8 file (decode + layout check + dequantize), ms",
      value: time(() => readMlpFromOnnx(int8), 50),
      unit: "ms",
      baseline_name: "decodeOnnx alone",
      baseline: time(() => decodeOnnx(int8), 50),
      better: "lower",
    }),
  );
  out.push(
    measure({
      name: "int8-size",
      description: "int8 ONNX file size of the 784-64-10 MLP",
      value: int8.length,
      unit: "bytes",
      baseline_name: "fp32 ONNX file of the same model",
      baseline: fp32.length,
      better: "lower",
      goalRatio: 0.3,
    }),
  );
  return out;
}
