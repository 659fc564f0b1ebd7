import { beforeAll, describe, expect, it } from "vitest";
import {
  float16Bits,
  float16Value,
  INFERENCE_HEADER_LENGTH,
  joinInferBody,
  splitInferBody,
  decodeV2Outputs,
  type CreatedApiKey,
  type UsageReport,
} from "@fedge/protocol";
import { anyOnnxBytes, TABLE } from "./any-onnx-fixture.ts";
import { call, createKey, uploadOnnx, v2ErrorCode } from "./registry-helpers.ts";

let key: CreatedApiKey;

beforeAll(async () => {
  const res = await uploadOnnx("v2-any", 1, anyOnnxBytes());
  expect(res.status, await res.clone().text()).toBe(201);
  key = await createKey({ name: "v2 tests", rate_limit_per_minute: 10_000 });
});

function infer(body: BodyInit, headers: Record<string, string> = {}, path = "/v2/models/v2-any/infer") {
  return call(path, {
    method: "POST",
    headers: { authorization: `Bearer ${key.key}`, "content-type": "application/json", ...headers },
    body,
  });
}

/** The fixture's inputs for batch 2, seq 3, and the outputs they must give. */
const X = Array.from({ length: 24 }, (_, i) => i / 8 - 1);
const IDS = [0, 9, -1, 3, 4, -10];
const inputs = () => [
  { name: "x", shape: [2, 3, 4], datatype: "FP32", data: X },
  { name: "ids", shape: [2, 3], datatype: "INT64", data: IDS },
  { name: "flag", shape: [2], datatype: "BOOL", data: [true, false] },
  { name: "h", shape: [2, 3], datatype: "FP16", data: [0.5, -1.25, 3, 1024, 0.1, -7] },
  { name: "u", shape: [3], datatype: "UINT8", data: [0, 200, 255] },
  { name: "i", shape: [3], datatype: "INT32", data: [-5, 5, 1_000_000] },
  { name: "s8", shape: [2], datatype: "INT8", data: [-128, 127] },
];
const expectedSum = X.map((v, k) => {
  const id = IDS[Math.floor(k / 4)]!;
  return Math.fround(TABLE[(id < 0 ? id + 10 : id) * 4 + (k % 4)]! + v);
});

interface JsonOut {
  name: string;
  shape: number[];
  datatype: string;
  data?: (number | boolean)[];
  parameters?: { binary_data_size?: number };
}

function checkOutputs(outputs: Record<string, { shape: number[]; data: ArrayLike<unknown> }>): void {
  expect(outputs.sum!.shape).toEqual([2, 3, 4]);
  Array.from(outputs.sum!.data as ArrayLike<number>).forEach((v, k) => expect(v).toBeCloseTo(expectedSum[k]!, 5));
  expect(Array.from(outputs.not_flag!.data as ArrayLike<number>, Number)).toEqual([0, 1]);
  expect(Array.from(outputs.ui!.data as ArrayLike<number>)).toEqual([-5, 205, 1_000_255]);
  expect(Array.from(outputs.ids2!.data as ArrayLike<bigint | number>, Number)).toEqual(IDS.map((v) => 2 * v));
  expect(Array.from(outputs.s8_out!.data as ArrayLike<number>)).toEqual([-128, 127]);
}

describe("Open Inference Protocol /v2 infer", () => {
  it("runs every dtype through JSON and answers in JSON", async () => {
    const res = await infer(JSON.stringify({ id: "r1", inputs: inputs() }));
    expect(res.status, await res.clone().text()).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/application\/json/);
    const body = await res.json<{ model_name: string; model_version: string; id: string; outputs: JsonOut[] }>();
    expect(body).toMatchObject({ model_name: "v2-any", model_version: "1", id: "r1" });
    const byName = Object.fromEntries(body.outputs.map((o) => [o.name, { shape: o.shape, data: o.data! }]));
    checkOutputs({ ...byName, not_flag: { shape: [2], data: (byName.not_flag!.data as boolean[]).map(Number) } });
    expect(body.outputs.find((o) => o.name === "h2")).toMatchObject({
      datatype: "FP16",
      data: [1, -2.5, 6, 2048, float16Value(float16Bits(0.1) + 0x400), -14],
    });
    expect(body.outputs.map((o) => o.datatype)).toEqual(["FP32", "BOOL", "FP16", "INT32", "INT64", "INT8"]);
  });

  it("takes and returns binary tensor data (Inference-Header-Content-Length)", async () => {
    const le = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const tensors = [
      new Float32Array(X),
      new BigInt64Array(IDS.map(BigInt)),
      new Uint8Array([1, 0]),
      Uint16Array.from([0.5, -1.25, 3, 1024, 0.1, -7], float16Bits),
      new Uint8Array([0, 200, 255]),
      new Int32Array([-5, 5, 1_000_000]),
      new Int8Array([-128, 127]),
    ].map(le);
    const header = {
      inputs: inputs().map(({ data: _data, ...t }, k) => ({
        ...t,
        parameters: { binary_data_size: tensors[k]!.byteLength },
      })),
      parameters: { binary_data_output: true },
    };
    const { body, headerLength } = joinInferBody(header, tensors);
    const res = await infer(body as Uint8Array<ArrayBuffer>, {
      "content-type": "application/octet-stream",
      [INFERENCE_HEADER_LENGTH]: String(headerLength),
    });
    expect(res.status, await res.clone().text()).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    const n = Number(res.headers.get(INFERENCE_HEADER_LENGTH));
    const { json, tail } = splitInferBody(new Uint8Array(await res.arrayBuffer()), n);
    const outputs = decodeV2Outputs(json, tail);
    checkOutputs(outputs);
    expect(Array.from(outputs.h2!.data as Uint16Array, float16Value).slice(0, 4)).toEqual([1, -2.5, 6, 2048]);

    // Some outputs only, one binary and one JSON.
    const mixed = await infer(
      JSON.stringify({
        inputs: inputs(),
        outputs: [{ name: "ui" }, { name: "sum", parameters: { binary_data: true } }],
      }),
    );
    expect(mixed.status).toBe(200);
    const m = splitInferBody(
      new Uint8Array(await mixed.arrayBuffer()),
      Number(mixed.headers.get(INFERENCE_HEADER_LENGTH)),
    );
    const mo = decodeV2Outputs(m.json, m.tail);
    expect(Object.keys(mo)).toEqual(["ui", "sum"]);
    expect((m.json as { outputs: JsonOut[] }).outputs[0]!.data).toEqual([-5, 205, 1_000_255]);
  });

  it("answers every mismatch with a clear 4xx in the v2 error form, and meters only what ran", async () => {
    const usage = async () =>
      (await (await call("/v1/usage", { headers: { authorization: `Bearer ${key.key}` } })).json<UsageReport>()).total;
    const swap = (name: string, patch: Record<string, unknown>) =>
      JSON.stringify({ inputs: inputs().map((t) => (t.name === name ? { ...t, ...patch } : t)) });
    const drop = (name: string) => JSON.stringify({ inputs: inputs().filter((t) => t.name !== name) });
    const binaryX = (bytes: Uint8Array, size = bytes.byteLength, trailing = 0) => {
      const header = {
        inputs: [
          ...inputs().filter((t) => t.name !== "x"),
          { name: "x", shape: [2, 3, 4], datatype: "FP32", parameters: { binary_data_size: size } },
        ],
      };
      const { body, headerLength } = joinInferBody(header, [bytes, new Uint8Array(trailing)]);
      return () =>
        infer(body as Uint8Array<ArrayBuffer>, {
          "content-type": "application/octet-stream",
          [INFERENCE_HEADER_LENGTH]: String(headerLength),
        });
    };
    const nan = new Float32Array(24);
    nan[5] = Number.NaN;
    const cases: [string, () => Promise<Response>, number, string][] = [
      [
        "unknown input",
        () => infer(JSON.stringify({ inputs: [...inputs(), { name: "zz", shape: [1], datatype: "FP32", data: [1] }] })),
        400,
        "unknown_tensor",
      ],
      ["missing input", () => infer(drop("flag")), 400, "missing_tensor"],
      ["wrong datatype", () => infer(swap("ids", { datatype: "INT32" })), 400, "invalid_datatype"],
      ["unsupported datatype", () => infer(swap("x", { datatype: "FP64" })), 400, "invalid_datatype"],
      ["wrong rank", () => infer(swap("x", { shape: [6, 4], data: X })), 400, "invalid_shape"],
      ["fixed dimension", () => infer(swap("h", { shape: [3, 2] })), 400, "invalid_shape"],
      ["symbolic dims disagree", () => infer(swap("ids", { shape: [3, 2] })), 400, "invalid_shape"],
      ["JSON element count", () => infer(swap("x", { data: X.slice(1) })), 400, "invalid_shape"],
      ["binary element count", binaryX(new Uint8Array(92)), 400, "invalid_shape"],
      ["binary size past the end", binaryX(new Uint8Array(96), 200), 400, "invalid_shape"],
      ["bytes no tensor claims", binaryX(new Uint8Array(96), 96, 4), 400, "validation_failed"],
      ["index outside the table", () => infer(swap("ids", { data: [0, 1, 2, 3, 4, 10] })), 400, "out_of_range"],
      ["uint8 out of range", () => infer(swap("u", { data: [0, 1, 256] })), 400, "out_of_range"],
      ["int64 beyond 2^53 in JSON", () => infer(swap("ids", { data: [0, 1, 2, 3, 4, 2 ** 60] })), 400, "out_of_range"],
      ["fraction in an integer tensor", () => infer(swap("i", { data: [1, 2.5, 3] })), 400, "invalid_datatype"],
      ["number in a BOOL tensor", () => infer(swap("flag", { data: [1, 0] })), 400, "invalid_datatype"],
      ["float16 overflow", () => infer(swap("h", { data: [1, 2, 3, 4, 5, 70000] })), 400, "out_of_range"],
      ["NaN in binary float32", binaryX(new Uint8Array(nan.buffer)), 400, "non_finite"],
      [
        "Infinity via 1e999",
        () => infer(swap("x", { data: [1e999, ...X.slice(1)] }).replace("null", "1e999")),
        400,
        "non_finite",
      ],
      [
        "unknown output",
        () => infer(JSON.stringify({ inputs: inputs(), outputs: [{ name: "nope" }] })),
        400,
        "unknown_tensor",
      ],
      [
        "duplicate input",
        () => infer(JSON.stringify({ inputs: [...inputs(), inputs()[0]] })),
        400,
        "validation_failed",
      ],
      ["no inputs", () => infer(JSON.stringify({ inputs: [] })), 400, "validation_failed"],
      ["unknown field", () => infer(JSON.stringify({ inputs: inputs(), extra: 1 })), 400, "validation_failed"],
      ["malformed JSON", () => infer('{"inputs": ['), 400, "invalid_json"],
      [
        "header length beyond the body",
        () => infer("{}", { "content-type": "application/octet-stream", [INFERENCE_HEADER_LENGTH]: "99" }),
        400,
        "validation_failed",
      ],
      ["wrong content type", () => infer("{}", { "content-type": "text/plain" }), 415, "unsupported_media_type"],
      [
        "unknown model",
        () => infer(JSON.stringify({ inputs: inputs() }), {}, "/v2/models/nope/infer"),
        404,
        "model_not_found",
      ],
      [
        "unknown version",
        () => infer(JSON.stringify({ inputs: inputs() }), {}, "/v2/models/v2-any/versions/3/infer"),
        404,
        "version_not_found",
      ],
      ["no API key", () => infer(JSON.stringify({ inputs: inputs() }), { authorization: "" }), 401, "unauthorized"],
    ];
    await new Promise((r) => setTimeout(r, 300));
    const before = await usage();
    for (const [what, send, status, code] of cases) {
      const res = await send();
      const text = await res.clone().text();
      expect(res.status, `${what}: ${text}`).toBe(status);
      expect(await v2ErrorCode(res), `${what}: ${text}`).toBe(code);
    }
    const ok = await infer(JSON.stringify({ inputs: inputs() }), {}, "/v2/models/v2-any/versions/1/infer");
    expect(ok.status).toBe(200);
    let after = await usage();
    for (let i = 0; i < 50 && after.calls < before.calls + 1; i++) {
      await new Promise((r) => setTimeout(r, 20));
      after = await usage();
    }
    // Metering counts tensor elements: 24 + 6 + 2 + 6 + 3 + 3 + 2.
    expect(after).toEqual({ calls: before.calls + 1, input_elements: before.input_elements + 46 });
  });

  it("rate limits v2 infer with 429 + Retry-After like v1", async () => {
    const limited = await createKey({ name: "limited v2", rate_limit_per_minute: 1 });
    const send = () =>
      call("/v2/models/v2-any/infer", {
        method: "POST",
        headers: { authorization: `Bearer ${limited.key}`, "content-type": "application/json" },
        body: JSON.stringify({ inputs: inputs() }),
      });
    expect((await send()).status).toBe(200);
    const res = await send();
    expect(res.status).toBe(429);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await v2ErrorCode(res)).toBe("rate_limited");
  });

  it("documents the v2 routes in the OpenAPI document", async () => {
    const doc = await (
      await call("/openapi.json")
    ).json<{ paths: Record<string, Record<string, { requestBody?: unknown }>> }>();
    for (const p of [
      "/v2",
      "/v2/models/{name}",
      "/v2/models/{name}/versions/{version}",
      "/v2/models/{name}/infer",
      "/v2/models/{name}/versions/{version}/infer",
    ]) {
      expect(Object.keys(doc.paths), p).toContain(p);
    }
    expect(doc.paths["/v2/models/{name}/infer"]!.post!.requestBody).toBeDefined();
  });
});
