import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  attr,
  encodeOnnx,
  float32Tensor,
  int8Tensor,
  node,
  OnnxDataType,
  tensorValueInfo,
  uploadManifestFromOnnx,
} from "@fedge/ml";
import { MAX_MODEL_BYTES, type ModelDetail, type RegistryChange, type V2ModelMetadata } from "@fedge/protocol";
import { anyOnnxBytes, anyOnnxModel, bigMatMulBytes } from "./any-onnx-fixture.ts";
import { ADMIN, call, errorCode, storedKeys, upload, uploadForm, uploadOnnx, v2ErrorCode } from "./registry-helpers.ts";

describe("registry: any ONNX model onnxruntime-web runs", () => {
  it("accepts several inputs and outputs of every served dtype, N-D and symbolic shapes", async () => {
    const bytes = anyOnnxBytes();
    const res = await uploadOnnx("any-a", 1, bytes);
    expect(res.status, await res.clone().text()).toBe(201);
    const { manifest } = await res.json<RegistryChange>();
    expect(manifest!.inputs.map((t) => [t.name, t.dtype, t.shape])).toEqual([
      ["x", "float32", [null, null, 4]],
      ["ids", "int64", [null, null]],
      ["flag", "bool", [null]],
      ["h", "float16", [2, 3]],
      ["u", "uint8", [3]],
      ["i", "int32", [3]],
      ["s8", "int8", [2]],
    ]);
    // The table has 10 rows: Gather takes indices in [-10, 9].
    expect(manifest!.inputs[1]!.range).toEqual([-10, 9]);
    expect(manifest!.outputs.map((t) => t.dtype)).toEqual(["float32", "bool", "float16", "int32", "int64", "int8"]);

    const meta = await (await call("/v2/models/any-a")).json<V2ModelMetadata>();
    expect(meta).toMatchObject({ name: "any-a", versions: ["1"], platform: "onnxruntime_onnx" });
    expect(meta.inputs[0]).toEqual({ name: "x", datatype: "FP32", shape: [-1, -1, 4] });
    expect(meta.inputs.map((t) => t.datatype)).toEqual(["FP32", "INT64", "BOOL", "FP16", "UINT8", "INT32", "INT8"]);
    expect(meta.outputs.map((t) => t.name)).toEqual(["sum", "not_flag", "h2", "ui", "ids2", "s8_out"]);
    const pinned = await call("/v2/models/any-a/versions/1");
    expect(pinned.status).toBe(200);
    expect((await pinned.json<V2ModelMetadata>()).inputs).toEqual(meta.inputs);
  });

  it("answers v2 metadata misses in the v2 error form", async () => {
    const missing = await call("/v2/models/no-such-model");
    expect(missing.status).toBe(404);
    expect(await v2ErrorCode(missing)).toBe("model_not_found");
    await uploadOnnx("any-b", 1, anyOnnxBytes());
    const noVersion = await call("/v2/models/any-b/versions/9");
    expect(noVersion.status).toBe(404);
    expect(await v2ErrorCode(noVersion)).toBe("version_not_found");
    const badName = await call("/v2/models/Bad_Name");
    expect(badName.status).toBe(400);
    expect(await v2ErrorCode(badName)).toBe("validation_failed");
    const server = await (await call("/v2")).json<{ extensions: string[] }>();
    expect(server.extensions).toContain("binary_tensor_data");
  });

  it("uploads a large float32 model as a streamed multipart body and serves it", async () => {
    const bytes = bigMatMulBytes(10);
    expect(bytes.byteLength).toBeGreaterThan(10 * 2 ** 20);
    const res = await uploadOnnx("any-big", 1, bytes);
    expect(res.status, await res.clone().text()).toBe(201);
    const key = await (
      await call("/v1/admin/keys", {
        method: "POST",
        headers: { ...ADMIN, "content-type": "application/json" },
        body: JSON.stringify({ name: "big" }),
      })
    ).json<{ key: string }>();
    const infer = await call("/v2/models/any-big/infer", {
      method: "POST",
      headers: { authorization: `Bearer ${key.key}`, "content-type": "application/json" },
      body: JSON.stringify({
        inputs: [{ name: "x", shape: [1, 1024], datatype: "FP32", data: new Array(1024).fill(1) }],
      }),
    });
    expect(infer.status, await infer.clone().text()).toBe(200);
    const out = await infer.json<{ outputs: { shape: number[]; data: number[] }[] }>();
    expect(out.outputs[0]!.shape).toEqual([1, 2560]);
    expect(out.outputs[0]!.data[0]).toBeCloseTo(1.024, 4);
  });

  it("refuses what the edge cannot serve with a clear 4xx and stores nothing", async () => {
    const name = "any-bad";
    expect((await uploadOnnx(name, 1, anyOnnxBytes())).status).toBe(201);
    const before = await storedKeys(env.MODELS, name);
    const T = OnnxDataType;
    const good = anyOnnxModel();
    const manifest = uploadManifestFromOnnx(name, 2, encodeOnnx(good));
    const send = (bytes: Uint8Array, m: unknown = { ...manifest }) => upload(name, uploadForm(bytes, m));
    const withGraph = (f: Parameters<typeof anyOnnxModel>[0]) => encodeOnnx(anyOnnxModel(f));
    const external = withGraph({
      graph: (g) => ({
        ...g,
        initializer: [
          {
            ...float32Tensor("table", [10, 4], new Float32Array(40)),
            rawData: new Uint8Array(0),
            dataLocation: 1,
            externalData: [{ key: "location", value: "weights.bin" }],
          },
        ],
      }),
    });
    const int8Huge = encodeOnnx({
      irVersion: 8,
      opsetImport: [{ domain: "", version: 17 }],
      graph: {
        name: "huge",
        node: [
          node("DequantizeLinear", ["wq", "s"], ["w"], { attribute: [attr.int("axis", 1)] }),
          node("MatMul", ["x", "w"], ["y"]),
        ],
        initializer: [
          int8Tensor("wq", [1024, 5120], new Int8Array(1024 * 5120)),
          float32Tensor("s", [5120], new Float32Array(5120).fill(1)),
        ],
        input: [tensorValueInfo("x", T.FLOAT, ["b", 1024])],
        output: [tensorValueInfo("y", T.FLOAT, ["b", 5120])],
      },
    });
    const rename = (i: number, patch: Record<string, unknown>) => ({
      ...manifest,
      inputs: manifest.inputs.map((t, k) => (k === i ? { ...t, ...patch } : t)),
    });
    const noBoundary = () =>
      call(`/v1/admin/models/${name}/versions`, {
        method: "POST",
        headers: { ...ADMIN, "content-type": "multipart/form-data" },
        body: "--x\r\n",
      });
    const truncated = () => {
      const b = "----fedge";
      const body = `--${b}\r\nContent-Disposition: form-data; name="manifest"\r\n\r\n{}\r\n--${b}\r\nContent-Disposition: form-data; name="model"; filename="m.onnx"\r\n\r\nabc`;
      return call(`/v1/admin/models/${name}/versions`, {
        method: "POST",
        headers: { ...ADMIN, "content-type": `multipart/form-data; boundary=${b}` },
        body,
      });
    };
    const cases: [string, () => Promise<Response>, number, string, RegExp][] = [
      ["external data", () => send(external), 400, "invalid_model", /external file.*weights\.bin/],
      ["opset newer than ORT", () => send(withGraph({ opset: 27 })), 400, "invalid_model", /opset 27/],
      ["opset older than 7", () => send(withGraph({ opset: 6 })), 400, "invalid_model", /opset 6/],
      [
        "operator domain not imported",
        () =>
          send(
            withGraph({
              graph: (g) => ({ ...g, node: [...g.node!, { ...node("Relu", ["x"], ["r"]), domain: "com.example" }] }),
            }),
          ),
        400,
        "invalid_model",
        /com\.example/,
      ],
      [
        "float64 input",
        () => send(withGraph({ graph: (g) => ({ ...g, input: [...g.input!, tensorValueInfo("d", T.DOUBLE, [1])] }) })),
        400,
        "invalid_model",
        /float64/,
      ],
      [
        "input of unknown rank",
        () =>
          send(
            withGraph({
              graph: (g) => ({
                ...g,
                input: [...g.input!, { name: "norank", type: { tensorType: { elemType: T.FLOAT } } }],
              }),
            }),
          ),
        400,
        "invalid_model",
        /declares no shape/,
      ],
      [
        "declared dtype differs",
        () => send(encodeOnnx(good), rename(1, { dtype: "int32" })),
        400,
        "invalid_model",
        /dtype int64/,
      ],
      [
        "declared shape differs",
        () => send(encodeOnnx(good), rename(0, { shape: [null, 5, 4] })),
        400,
        "invalid_model",
        /shape/,
      ],
      [
        "declared name differs",
        () => send(encodeOnnx(good), rename(0, { name: "y" })),
        400,
        "invalid_model",
        /names it/,
      ],
      [
        "onnxruntime cannot load it",
        () => send(withGraph({ graph: (g) => ({ ...g, node: [...g.node!, node("Add", ["x"], ["bad"])] }) })),
        400,
        "invalid_model",
        /onnxruntime cannot load/,
      ],
      [
        "file over the cap (streamed, 413 before the end)",
        () => send(new Uint8Array(MAX_MODEL_BYTES + 1)),
        413,
        "payload_too_large",
        /cap/,
      ],
      [
        "int8 weights too large once loaded",
        () => send(int8Huge, uploadManifestFromOnnx(name, 2, int8Huge)),
        413,
        "payload_too_large",
        /MiB of memory once loaded/,
      ],
      ["multipart without boundary", noBoundary, 400, "validation_failed", /boundary/],
      ["truncated multipart", truncated, 400, "validation_failed", /not terminated/],
    ];
    for (const [what, sendIt, status, code, message] of cases) {
      const res = await sendIt();
      const text = await res.clone().text();
      expect(res.status, `${what}: ${text}`).toBe(status);
      expect(await errorCode(res), what).toBe(code);
      expect(text, what).toMatch(message);
    }
    expect(await storedKeys(env.MODELS, name)).toEqual(before);
    const detail = await (await call(`/v1/models/${name}`)).json<ModelDetail>();
    expect(detail.versions.map((v) => v.version)).toEqual([1]);
  });
});
