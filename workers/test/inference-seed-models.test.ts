/**
 * The project's built models served by the edge: the MNIST CNN (NCHW float32 input) and the text transformer (int64
 * token ids + attention mask, two outputs), each as fp32 and as `fedge quantize` int8. What workerd serves through
 * v1 (where it applies) and v2 (JSON and binary) must equal onnxruntime-node on the same file with graph
 * optimizations disabled, within 1e-4.
 */
import { beforeAll, describe, expect, inject, it } from "vitest";
import {
  decodeV2Outputs,
  INFERENCE_HEADER_LENGTH,
  joinInferBody,
  splitInferBody,
  type CreatedApiKey,
  type PredictResponse,
} from "@fedge/protocol";
import { fromB64, type SeedModelsFixture } from "./inference-fixture.ts";
import { call, createKey, errorCode, uploadOnnx, v2ErrorCode } from "./registry-helpers.ts";

let fx: SeedModelsFixture;
let key: CreatedApiKey;
const N = 8;

beforeAll(async () => {
  fx = inject("seedModels");
  for (const [name, files] of [
    ["mnist-cnn", fx.cnn],
    ["text-transformer", fx.text],
  ] as const) {
    for (const [version, b64] of [
      [1, files.fp32],
      [2, files.int8],
    ] as const) {
      const res = await uploadOnnx(name, version, fromB64(b64));
      expect(res.status, await res.clone().text()).toBe(201);
    }
  }
  key = await createKey({ name: "seed models", rate_limit_per_minute: 10_000 });
});

const auth = () => ({ authorization: `Bearer ${key.key}` });

function maxDiff(actual: ArrayLike<number>, expected: number[]): number {
  expect(actual.length).toBe(expected.length);
  let m = 0;
  for (let i = 0; i < expected.length; i++) m = Math.max(m, Math.abs(Number(actual[i]) - expected[i]!));
  return m;
}

async function v2Json(path: string, inputs: unknown[]): Promise<Record<string, number[]>> {
  const res = await call(path, {
    method: "POST",
    headers: { ...auth(), "content-type": "application/json" },
    body: JSON.stringify({ inputs }),
  });
  expect(res.status, await res.clone().text()).toBe(200);
  const body = await res.json<{ outputs: { name: string; data: number[] }[] }>();
  return Object.fromEntries(body.outputs.map((o) => [o.name, o.data]));
}

async function v2Binary(
  path: string,
  inputs: { name: string; shape: number[]; datatype: string; bytes: Uint8Array }[],
) {
  const header = {
    inputs: inputs.map(({ bytes, ...t }) => ({ ...t, parameters: { binary_data_size: bytes.byteLength } })),
    parameters: { binary_data_output: true },
  };
  const { body, headerLength } = joinInferBody(
    header,
    inputs.map((i) => i.bytes),
  );
  const res = await call(path, {
    method: "POST",
    headers: { ...auth(), "content-type": "application/octet-stream", [INFERENCE_HEADER_LENGTH]: String(headerLength) },
    body: body as Uint8Array<ArrayBuffer>,
  });
  expect(res.status, await res.clone().text()).toBe(200);
  const { json, tail } = splitInferBody(
    new Uint8Array(await res.arrayBuffer()),
    Number(res.headers.get(INFERENCE_HEADER_LENGTH)),
  );
  return decodeV2Outputs(json, tail);
}

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

describe("the built MNIST CNN (NCHW) at the edge", () => {
  for (const [version, kind] of [
    [1, "fp32"],
    [2, "int8"],
  ] as const) {
    it(`${kind}: v1 predict and v2 (JSON, binary) equal onnxruntime-node within 1e-4`, async () => {
      const expected = (kind === "fp32" ? fx.cnn.expectedFp32 : fx.cnn.expectedInt8).logits!;
      const rows = Array.from({ length: N }, (_, r) => fx.cnn.images.slice(r * 784, (r + 1) * 784));
      // v1: JSON rows flattened to 784, and raw float32 with the NCHW shape.
      const v1 = await call(`/v1/models/mnist-cnn/predict?version=${version}`, {
        method: "POST",
        headers: { ...auth(), "content-type": "application/json" },
        body: JSON.stringify({ inputs: rows }),
      });
      expect(v1.status, await v1.clone().text()).toBe(200);
      expect(maxDiff((await v1.json<PredictResponse>()).outputs.flat(), expected)).toBeLessThanOrEqual(1e-4);
      const v1bin = await call(`/v1/models/mnist-cnn/predict?version=${version}`, {
        method: "POST",
        headers: { ...auth(), "content-type": "application/octet-stream", "x-fedge-shape": `${N},1,28,28` },
        body: bytesOf(Float32Array.from(fx.cnn.images)) as Uint8Array<ArrayBuffer>,
      });
      expect(maxDiff((await v1bin.json<PredictResponse>()).outputs.flat(), expected)).toBeLessThanOrEqual(1e-4);
      // v2
      const path = `/v2/models/mnist-cnn/versions/${version}/infer`;
      const json = await v2Json(path, [
        { name: "image", shape: [N, 1, 28, 28], datatype: "FP32", data: fx.cnn.images },
      ]);
      expect(maxDiff(json.logits!, expected)).toBeLessThanOrEqual(1e-4);
      const bin = await v2Binary(path, [
        { name: "image", shape: [N, 1, 28, 28], datatype: "FP32", bytes: bytesOf(Float32Array.from(fx.cnn.images)) },
      ]);
      expect(bin.logits!.shape).toEqual([N, 10]);
      expect(maxDiff(bin.logits!.data as Float32Array, expected)).toBeLessThanOrEqual(1e-4);
      // A real model: it gets the held-out digits right.
      const correct = fx.cnn.labels.filter((y, r) => {
        const row = json.logits!.slice(r * 10, r * 10 + 10);
        return row.indexOf(Math.max(...row)) === y;
      }).length;
      expect(correct).toBeGreaterThanOrEqual(N - 1);
    });
  }
});

describe("fedge quantize with static activation quantization, served", () => {
  it("loads in onnxruntime-web and serves what onnxruntime-node computes", async () => {
    const res = await uploadOnnx("mnist-cnn-static", 1, fromB64(fx.cnn.staticInt8));
    expect(res.status, await res.clone().text()).toBe(201);
    const { manifest } = await res.json<{ manifest: { quantization: unknown } }>();
    expect(manifest.quantization).toEqual({
      scheme: "int8-per-channel-asymmetric",
      weight_dtype: "int8",
      activations: "uint8-static",
    });
    const out = await v2Json("/v2/models/mnist-cnn-static/infer", [
      { name: "image", shape: [N, 1, 28, 28], datatype: "FP32", data: fx.cnn.images },
    ]);
    const expected = fx.cnn.expectedStaticInt8.logits!;
    expect(maxDiff(out.logits!, expected)).toBeLessThanOrEqual(1e-4);
  });
});

describe("the built text transformer (int64 ids + mask, two outputs) at the edge", () => {
  for (const [version, kind] of [
    [1, "fp32"],
    [2, "int8"],
  ] as const) {
    it(`${kind}: v2 (JSON, binary) equals onnxruntime-node within 1e-4 on both outputs`, async () => {
      const expected = kind === "fp32" ? fx.text.expectedFp32 : fx.text.expectedInt8;
      const shape = [N, fx.text.len];
      const path = `/v2/models/text-transformer/versions/${version}/infer`;
      const json = await v2Json(path, [
        { name: "input_ids", shape, datatype: "INT64", data: fx.text.ids },
        { name: "attention_mask", shape, datatype: "INT64", data: fx.text.mask },
      ]);
      for (const out of ["logits", "probs"]) expect(maxDiff(json[out]!, expected[out]!), out).toBeLessThanOrEqual(1e-4);
      const bin = await v2Binary(path, [
        { name: "input_ids", shape, datatype: "INT64", bytes: bytesOf(BigInt64Array.from(fx.text.ids.map(BigInt))) },
        {
          name: "attention_mask",
          shape,
          datatype: "INT64",
          bytes: bytesOf(BigInt64Array.from(fx.text.mask.map(BigInt))),
        },
      ]);
      for (const out of ["logits", "probs"]) {
        expect(maxDiff(bin[out]!.data as Float32Array, expected[out]!), out).toBeLessThanOrEqual(1e-4);
      }
      const predicted = Array.from({ length: N }, (_, r) => (json.logits![2 * r + 1]! > json.logits![2 * r]! ? 1 : 0));
      expect(predicted).toEqual(fx.text.labels);
    });
  }

  it("answers bad tensors with 4xx: out-of-vocabulary ids, disagreeing lengths, wrong dtype, v1 on a two-input model", async () => {
    const shape = [N, fx.text.len];
    const send = (inputs: unknown[]) =>
      call("/v2/models/text-transformer/infer", {
        method: "POST",
        headers: { ...auth(), "content-type": "application/json" },
        body: JSON.stringify({ inputs }),
      });
    const ids = { name: "input_ids", shape, datatype: "INT64", data: fx.text.ids };
    const mask = { name: "attention_mask", shape, datatype: "INT64", data: fx.text.mask };
    const cases: [string, unknown[], string][] = [
      ["token id = vocabulary size", [{ ...ids, data: [48, ...fx.text.ids.slice(1)] }, mask], "out_of_range"],
      [
        "mask shorter than ids",
        [{ ...mask, shape: [N, fx.text.len - 1], data: fx.text.mask.slice(0, N * (fx.text.len - 1)) }, ids],
        "invalid_shape",
      ],
      ["int32 ids", [{ ...ids, datatype: "INT32" }, mask], "invalid_datatype"],
      ["no mask", [ids], "missing_tensor"],
    ];
    for (const [what, inputs, code] of cases) {
      const res = await send(inputs);
      expect(res.status, what).toBe(400);
      expect(await v2ErrorCode(res), what).toBe(code);
    }
    const cnn = await call("/v2/models/mnist-cnn/infer", {
      method: "POST",
      headers: { ...auth(), "content-type": "application/json" },
      body: JSON.stringify({
        inputs: [{ name: "image", shape: [1, 784], datatype: "FP32", data: fx.cnn.images.slice(0, 784) }],
      }),
    });
    expect(cnn.status).toBe(400);
    expect(await v2ErrorCode(cnn)).toBe("invalid_shape");
    const v1 = await call("/v1/models/text-transformer/predict", {
      method: "POST",
      headers: { ...auth(), "content-type": "application/json" },
      body: JSON.stringify({ inputs: [[1, 2, 3]] }),
    });
    expect(v1.status).toBe(400);
    const text = await v1.clone().text();
    expect(await errorCode(v1)).toBe("invalid_model");
    expect(text).toMatch(/\/v2\/models\/text-transformer\/infer/);
  });
});
