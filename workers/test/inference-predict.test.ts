import { env } from "cloudflare:test";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { inspectServable } from "@fedge/ml";
import {
  MAX_PREDICT_BATCH,
  MAX_PREDICT_BODY_BYTES,
  type CreatedApiKey,
  type PredictResponse,
  type UsageReport,
} from "@fedge/protocol";
import { runBatch, SessionCache, sessions } from "../src/inference/index.ts";
import { fromB64, toB64, type InferenceFixture } from "./inference-fixture.ts";
import { call, createKey, errorCode, mlpManifest, storedKeys, upload, uploadForm } from "./registry-helpers.ts";

let fixture: InferenceFixture;
let key: CreatedApiKey;

beforeAll(async () => {
  fixture = inject("inferenceFixture");
  // Uploads in beforeAll persist for every test of this file.
  for (const [name, onnx, scheme] of [
    ["mlp-int8", fixture.int8Onnx, "int8-per-channel-symmetric"],
    ["mlp-fp32", fixture.fp32Onnx, "none"],
  ] as const) {
    const manifest = mlpManifest(name, 1, {
      quantization: { scheme, weight_dtype: scheme === "none" ? "float32" : "int8" },
    });
    const res = await upload(name, uploadForm(fromB64(onnx), manifest));
    expect(res.status, await res.clone().text()).toBe(201);
  }
  key = await createKey({ name: "inference tests", rate_limit_per_minute: 10_000 });
});

function predict(
  name: string,
  body: BodyInit,
  init: { type?: string; headers?: Record<string, string>; query?: string } = {},
) {
  return call(`/v1/models/${name}/predict${init.query ?? ""}`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${key.key}`,
      ...(init.type === "" ? {} : { "content-type": init.type ?? "application/json" }),
      ...init.headers,
    },
    body,
  });
}

function float32Bytes(rows: number[][]): Uint8Array {
  return new Uint8Array(Float32Array.from(rows.flat()).buffer);
}

function expectClose(actual: number[][], expected: number[][], tolerance: number): void {
  expect(actual.length).toBe(expected.length);
  let maxDiff = 0;
  actual.forEach((row, i) => {
    expect(row.length).toBe(expected[i]!.length);
    row.forEach((v, j) => (maxDiff = Math.max(maxDiff, Math.abs(v - expected[i]![j]!))));
  });
  expect(maxDiff).toBeLessThanOrEqual(tolerance);
}

async function usage(): Promise<UsageReport["total"]> {
  const res = await call("/v1/usage", { headers: { authorization: `Bearer ${key.key}` } });
  return (await res.json<UsageReport>()).total;
}

/** Usage once it reaches `calls` (predict meters in waitUntil, right after answering). */
async function usageReaching(calls: number): Promise<UsageReport["total"]> {
  for (let i = 0; i < 100; i++) {
    const total = await usage();
    if (total.calls >= calls) return total;
    await new Promise((r) => setTimeout(r, 20));
  }
  return usage();
}

describe("predict with onnxruntime-web inside workerd", () => {
  // This is also the guard for the workerd recipe: an onnxruntime-web upgrade that breaks it fails here.
  it("equals onnxruntime-node on the int8 model within 1e-4", async () => {
    const res = await predict("mlp-int8", JSON.stringify({ inputs: fixture.inputs }));
    expect(res.status, await res.clone().text()).toBe(200);
    const body = await res.json<PredictResponse>();
    expect(body).toMatchObject({ model: "mlp-int8", version: 1 });
    expectClose(body.outputs, fixture.expectedInt8, 1e-4);
  });

  it("equals onnxruntime-node on the float32 model within 1e-4", async () => {
    const res = await predict("mlp-fp32", JSON.stringify({ inputs: fixture.inputs }));
    expectClose((await res.json<PredictResponse>()).outputs, fixture.expectedFp32, 1e-4);
  });

  it("accepts base64 float32 JSON and raw octet-stream bodies with the same result", async () => {
    const bytes = float32Bytes(fixture.inputs);
    const n = fixture.inputs.length;
    const bodies: Response[] = [
      await predict("mlp-int8", JSON.stringify({ inputs_b64: toB64(bytes), shape: [n, 784] })),
      await predict("mlp-int8", JSON.stringify({ inputs_b64: toB64(bytes).replace(/=+$/, ""), shape: [n, 784] })),
      await predict("mlp-int8", bytes, { type: "application/octet-stream", headers: { "x-fedge-shape": `${n},784` } }),
      await predict("mlp-int8", bytes, { type: "application/octet-stream" }),
    ];
    for (const res of bodies) {
      expect(res.status).toBe(200);
      expectClose((await res.json<PredictResponse>()).outputs, fixture.expectedInt8, 1e-4);
    }
  });

  it("creates one session per model version per isolate and reuses it", async () => {
    await predict("mlp-int8", JSON.stringify({ inputs: fixture.inputs.slice(0, 1) }));
    const created = sessions.created;
    for (let i = 0; i < 3; i++) {
      expect((await predict("mlp-int8", JSON.stringify({ inputs: fixture.inputs.slice(i, i + 1) }))).status).toBe(200);
    }
    expect(sessions.created).toBe(created);
  });

  it("bounds the session cache by memory, evicting the least recently used model", async () => {
    const int8 = fromB64(fixture.int8Onnx);
    const fp32 = fromB64(fixture.fp32Onnx);
    // Room for any two of these sessions, not three.
    const per = Math.max(inspectServable(int8).sessionBytes, inspectServable(fp32).sessionBytes);
    const cache = new SessionCache({ maxBytes: 2 * per + 1 });
    let loads = 0;
    const load = (bytes: Uint8Array) => async () => {
      loads++;
      return bytes;
    };
    const [a1, a2] = await Promise.all([cache.get("a", load(int8)), cache.get("a", load(int8))]);
    expect(a1).toBe(a2);
    expect(loads).toBe(1);
    await cache.get("b", load(fp32));
    await cache.get("a", load(int8));
    await cache.get("c", load(fp32));
    expect([cache.has("a"), cache.has("b"), cache.has("c")]).toEqual([true, false, true]);
    expect(cache.size).toBe(2);
    expect(cache.bytes).toBeLessThanOrEqual(2 * per + 1);
    expect(cache.evicted).toBe(1);
    const out = await runBatch(await cache.get("a", load(int8)), Float32Array.from(fixture.inputs[0]!), [1, 784]);
    expectClose([Array.from(out.data)], [fixture.expectedInt8[0]!], 1e-4);
    expect(() => new SessionCache({ maxBytes: 0 })).toThrow(/maxBytes/);
  });

  it("serves the promoted version, and a pinned ?version=", async () => {
    const name = "mlp-versions";
    await upload(name, uploadForm(fromB64(fixture.int8Onnx), mlpManifest(name, 1)));
    const v2 = mlpManifest(name, 2, { quantization: { scheme: "none", weight_dtype: "float32" } });
    expect((await upload(name, uploadForm(fromB64(fixture.fp32Onnx), v2), undefined)).status).toBe(201);
    const input = JSON.stringify({ inputs: fixture.inputs });
    expect((await (await predict(name, input)).json<PredictResponse>()).version).toBe(1);
    const pinned = await (await predict(name, input, { query: "?version=2" })).json<PredictResponse>();
    expect(pinned.version).toBe(2);
    expectClose(pinned.outputs, fixture.expectedFp32, 1e-4);
    const promoted = await call(`/v1/admin/models/${name}/serving`, {
      method: "POST",
      headers: { authorization: "Bearer test-admin-token", "content-type": "application/json" },
      body: JSON.stringify({ version: 2 }),
    });
    expect(promoted.status).toBe(200);
    expect((await (await predict(name, input)).json<PredictResponse>()).version).toBe(2);
  });

  it("meters calls and input elements per key per UTC day", async () => {
    await new Promise((r) => setTimeout(r, 100));
    const before = await usage();
    await predict("mlp-int8", JSON.stringify({ inputs: fixture.inputs.slice(0, 2) }));
    await predict("mlp-int8", float32Bytes(fixture.inputs.slice(0, 3)), { type: "application/octet-stream" });
    const after = await usageReaching(before.calls + 2);
    expect(after.calls - before.calls).toBe(2);
    expect(after.input_elements - before.input_elements).toBe(5 * 784);
    const report = await (
      await call("/v1/usage", { headers: { authorization: `Bearer ${key.key}` } })
    ).json<UsageReport>();
    expect(report.days.at(-1)?.day).toBe(new Date().toISOString().slice(0, 10));
  });

  it("answers every bad input with a clear 4xx and changes no state", async () => {
    const row = fixture.inputs[0]!;
    const nanBytes = new Uint8Array(new Float32Array([...row.slice(0, 783), Number.NaN]).buffer);
    const infBytes = new Uint8Array(new Float32Array([Number.POSITIVE_INFINITY, ...row.slice(1)]).buffer);
    const big = Array.from({ length: MAX_PREDICT_BATCH + 1 }, () => row.map(() => 0));
    const json = (v: unknown) => JSON.stringify(v);
    const cases: [string, () => Promise<Response>, number, string][] = [
      ["row too short", () => predict("mlp-int8", json({ inputs: [row.slice(1)] })), 400, "invalid_shape"],
      [
        "rows of different lengths",
        () => predict("mlp-int8", json({ inputs: [row, [...row, 1]] })),
        400,
        "invalid_shape",
      ],
      ["not a batch (flat row)", () => predict("mlp-int8", json({ inputs: row })), 400, "validation_failed"],
      [
        "non-numeric value",
        () => predict("mlp-int8", json({ inputs: [[...row.slice(1), "x"]] })),
        400,
        "validation_failed",
      ],
      ["null value", () => predict("mlp-int8", json({ inputs: [[...row.slice(1), null]] })), 400, "validation_failed"],
      ["Infinity via 1e999", () => predict("mlp-int8", `{"inputs":[[1e999${",0".repeat(783)}]]}`), 400, "non_finite"],
      [
        "finite but past float32's range",
        () => predict("mlp-int8", `{"inputs":[[${"0,".repeat(783)}-3.5e38]]}`),
        400,
        "out_of_range",
      ],
      [
        "NaN in base64",
        () => predict("mlp-int8", json({ inputs_b64: toB64(nanBytes), shape: [1, 784] })),
        400,
        "non_finite",
      ],
      [
        "Infinity in octet-stream",
        () => predict("mlp-int8", infBytes, { type: "application/octet-stream" }),
        400,
        "non_finite",
      ],
      ["empty batch", () => predict("mlp-int8", json({ inputs: [] })), 400, "validation_failed"],
      [
        "empty octet-stream",
        () => predict("mlp-int8", new Uint8Array(0), { type: "application/octet-stream" }),
        400,
        "invalid_shape",
      ],
      ["empty body", () => predict("mlp-int8", ""), 400, "invalid_json"],
      ["oversize batch", () => predict("mlp-int8", json({ inputs: big })), 413, "payload_too_large"],
      [
        "oversize payload",
        () => predict("mlp-int8", new Uint8Array(MAX_PREDICT_BODY_BYTES + 4), { type: "application/octet-stream" }),
        413,
        "payload_too_large",
      ],
      [
        "base64 shape mismatch",
        () => predict("mlp-int8", json({ inputs_b64: toB64(float32Bytes([row])), shape: [2, 784] })),
        400,
        "invalid_shape",
      ],
      [
        "base64 wrong feature shape",
        () => predict("mlp-int8", json({ inputs_b64: toB64(float32Bytes([row])), shape: [1, 28, 27] })),
        400,
        "invalid_shape",
      ],
      ["not base64", () => predict("mlp-int8", json({ inputs_b64: "***", shape: [1, 784] })), 400, "validation_failed"],
      [
        "octet-stream not whole floats",
        () => predict("mlp-int8", new Uint8Array(7), { type: "application/octet-stream" }),
        400,
        "invalid_shape",
      ],
      [
        "octet-stream not whole examples",
        () => predict("mlp-int8", new Uint8Array(4 * 785), { type: "application/octet-stream" }),
        400,
        "invalid_shape",
      ],
      [
        "bad shape header",
        () =>
          predict("mlp-int8", float32Bytes([row]), {
            type: "application/octet-stream",
            headers: { "x-fedge-shape": "one" },
          }),
        400,
        "invalid_shape",
      ],
      ["unknown field", () => predict("mlp-int8", json({ inputs: [row], extra: true })), 400, "validation_failed"],
      ["malformed JSON", () => predict("mlp-int8", '{"inputs": [[1, 2'), 400, "invalid_json"],
      [
        "wrong content type",
        () => predict("mlp-int8", json({ inputs: [row] }), { type: "text/plain" }),
        415,
        "unsupported_media_type",
      ],
      [
        "no content type",
        () => predict("mlp-int8", json({ inputs: [row] }), { type: "" }),
        415,
        "unsupported_media_type",
      ],
      ["unknown model", () => predict("no-such-model", json({ inputs: [row] })), 404, "model_not_found"],
      [
        "unknown version",
        () => predict("mlp-int8", json({ inputs: [row] }), { query: "?version=7" }),
        404,
        "version_not_found",
      ],
      [
        "bad version",
        () => predict("mlp-int8", json({ inputs: [row] }), { query: "?version=abc" }),
        400,
        "validation_failed",
      ],
      ["bad model name", () => predict("BAD", json({ inputs: [row] })), 400, "validation_failed"],
      [
        "no API key",
        () => predict("mlp-int8", json({ inputs: [row] }), { headers: { authorization: "" } }),
        401,
        "unauthorized",
      ],
    ];
    await new Promise((r) => setTimeout(r, 100));
    const usageBefore = await usage();
    const registryBefore = await storedKeys(env.MODELS, "mlp-int8");
    for (const [what, send, status, code] of cases) {
      const res = await send();
      expect(res.status, what).toBe(status);
      expect(await errorCode(res), what).toBe(code);
    }
    // A number past float32's range is named by its index (the one-pass reader hands it to the general path).
    const overflow = await predict("mlp-int8", `{"inputs":[[${"0,".repeat(783)}-3.5e38]]}`);
    expect(await overflow.json()).toEqual({
      error: { code: "out_of_range", message: expect.stringContaining("inputs[0][783] is -3.5e+38") },
    });
    // A successful predict afterwards is the only new call: the rejected ones metered nothing.
    expect((await predict("mlp-int8", JSON.stringify({ inputs: [row] }))).status).toBe(200);
    const usageAfter = await usageReaching(usageBefore.calls + 1);
    expect(usageAfter).toEqual({ calls: usageBefore.calls + 1, input_elements: usageBefore.input_elements + 784 });
    expect(await storedKeys(env.MODELS, "mlp-int8")).toEqual(registryBefore);
  });

  it("refuses revoked keys with 403 and rate limits with 429 + Retry-After", async () => {
    const limited = await createKey({ name: "limited", rate_limit_per_minute: 2 });
    const send = () =>
      call("/v1/models/mlp-int8/predict", {
        method: "POST",
        headers: { authorization: `Bearer ${limited.key}`, "content-type": "application/json" },
        body: JSON.stringify({ inputs: fixture.inputs.slice(0, 1) }),
      });
    expect((await send()).status).toBe(200);
    expect((await send()).status).toBe(200);
    const limitedRes = await send();
    expect(limitedRes.status).toBe(429);
    expect(Number(limitedRes.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await errorCode(limitedRes)).toBe("rate_limited");
    const revoke = await call(`/v1/admin/keys/${limited.id}`, {
      method: "DELETE",
      headers: { authorization: "Bearer test-admin-token" },
    });
    expect(revoke.status).toBe(200);
    const revoked = await send();
    expect(revoked.status).toBe(403);
    expect(await errorCode(revoked)).toBe("forbidden");
  });
});
