/**
 * vitest global setup (runs in Node, not workerd): builds the fixture MLP as int8 and fp32 ONNX and computes
 * onnxruntime-node's outputs on the fixture inputs, then hands both to the workerd tests via `provide`.
 * onnxruntime-node cannot run inside workerd, so this is where the reference numbers come from.
 */
import * as ortNode from "onnxruntime-node";
import { buildMlpOnnx } from "@fedge/ml";
import { fixtureInputs, fixtureParams, toB64, type InferenceFixture } from "./inference-fixture.ts";

interface SetupContext {
  provide<K extends "inferenceFixture">(key: K, value: InferenceFixture): void;
}

async function runNode(bytes: Uint8Array, inputs: number[][]): Promise<number[][]> {
  const session = await ortNode.InferenceSession.create(bytes, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    // The worker's options (SESSION_OPTIONS in src/inference/ort.ts): without disable_quant_qdq, `all` fuses the int8
    // DequantizeLinear+MatMul into a dynamically quantized matmul that is ~1e-2 away from the graph's semantics.
    graphOptimizationLevel: "all",
    extra: { session: { disable_quant_qdq: "1" } },
  });
  const flat = Float32Array.from(inputs.flat());
  const out = await session.run({
    [session.inputNames[0]!]: new ortNode.Tensor("float32", flat, [inputs.length, 784]),
  });
  const data = out[session.outputNames[0]!]!.data as Float32Array;
  await session.release();
  const per = data.length / inputs.length;
  return inputs.map((_, i) => Array.from(data.subarray(i * per, (i + 1) * per)));
}

export default async function setup(ctx: SetupContext): Promise<void> {
  const params = fixtureParams();
  const int8 = buildMlpOnnx(params, { quantization: "int8-per-channel-symmetric", name: "fixture" });
  const fp32 = buildMlpOnnx(params, { quantization: "none", name: "fixture" });
  const inputs = fixtureInputs(5);
  ctx.provide("inferenceFixture", {
    int8Onnx: toB64(int8),
    fp32Onnx: toB64(fp32),
    inputs,
    expectedInt8: await runNode(int8, inputs),
    expectedFp32: await runNode(fp32, inputs),
  });
}
