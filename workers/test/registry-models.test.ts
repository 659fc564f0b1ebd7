import { env } from "cloudflare:test";
import { beforeAll, describe, expect, inject, it } from "vitest";
import nacl from "tweetnacl";
import {
  canonicalManifestBytes,
  MAX_MODEL_BYTES,
  toBase64Url,
  type ModelDetail,
  type ModelList,
  type ModelManifest,
  type RegistryChange,
} from "@fedge/protocol";
import { fromB64 } from "./inference-fixture.ts";
import { ADMIN, call, errorCode, mlpManifest, storedKeys, upload, uploadForm } from "./registry-helpers.ts";

let int8: Uint8Array;
let fp32: Uint8Array;

beforeAll(() => {
  const fixture = inject("inferenceFixture");
  int8 = fromB64(fixture.int8Onnx);
  fp32 = fromB64(fixture.fp32Onnx);
});

/** Registers `publicKey` as an aggregator key with the admin token. */
async function trustAggregatorKey(publicKey: string): Promise<void> {
  const res = await call(`/v1/admin/aggregator-keys/${publicKey}`, { method: "PUT", headers: ADMIN });
  expect(res.status).toBe(201);
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const FLOAT32 = { quantization: { scheme: "none", weight_dtype: "float32" } };

async function uploadOk(name: string, version: number, bytes = int8, extra: Record<string, string> = {}) {
  const manifest = mlpManifest(name, version, bytes === fp32 ? FLOAT32 : {});
  const res = await upload(name, uploadForm(bytes, manifest, extra));
  expect(res.status, await res.clone().text()).toBe(201);
  return res.json<RegistryChange>();
}

function promote(name: string, version: unknown): Promise<Response> {
  return call(`/v1/admin/models/${name}/serving`, {
    method: "POST",
    headers: { ...ADMIN, "content-type": "application/json" },
    body: JSON.stringify({ version }),
  });
}

function rollback(name: string): Promise<Response> {
  return call(`/v1/admin/models/${name}/rollback`, { method: "POST", headers: ADMIN });
}

describe("model registry", () => {
  it("stores an upload with sha256 and size computed server-side; the first version serves", async () => {
    const change = await uploadOk("reg-a", 1);
    expect(change.manifest).toMatchObject({
      name: "reg-a",
      version: 1,
      sha256: await sha256(int8),
      size_bytes: int8.length,
    });
    expect(change.model).toMatchObject({ serving_version: 1, serving_history: [], versions: [{ version: 1 }] });

    const list = await (await call("/v1/models")).json<ModelList>();
    expect(list.models).toContainEqual(
      expect.objectContaining({ name: "reg-a", serving_version: 1, latest_version: 1 }),
    );
    const detail = await call("/v1/models/reg-a");
    expect(detail.status).toBe(200);
    const body = await detail.json<ModelDetail>();
    expect(body.serving).toEqual(change.manifest);
    const manifest = await call("/v1/models/reg-a/versions/1");
    expect(await manifest.json<ModelManifest>()).toEqual(change.manifest);
  });

  it("serves immutable ONNX bytes with the sha256 ETag and answers If-None-Match with 304", async () => {
    await uploadOk("reg-b", 1);
    const res = await call("/v1/models/reg-b/versions/1/model.onnx");
    expect(res.status).toBe(200);
    const etag = `"${await sha256(int8)}"`;
    expect(res.headers.get("etag")).toBe(etag);
    expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(int8);
    for (const inm of [etag, `W/${etag}`, `"other", ${etag}`, "*"]) {
      const cached = await call("/v1/models/reg-b/versions/1/model.onnx", { headers: { "if-none-match": inm } });
      expect(cached.status, inm).toBe(304);
      expect(cached.headers.get("etag")).toBe(etag);
      expect(await cached.text()).toBe("");
    }
    const stale = await call("/v1/models/reg-b/versions/1/model.onnx", { headers: { "if-none-match": '"abc"' } });
    expect(stale.status).toBe(200);
    await stale.arrayBuffer();
  });

  it("answers unknown models and versions with 404 codes and bad names with 400", async () => {
    await uploadOk("reg-c", 1);
    expect(await errorCode(await call("/v1/models/nope"))).toBe("model_not_found");
    expect(await errorCode(await call("/v1/models/reg-c/versions/2/model.onnx"))).toBe("version_not_found");
    expect(await errorCode(await call("/v1/models/reg-c/versions/9"))).toBe("version_not_found");
    const bad = await call("/v1/models/Bad_Name");
    expect(bad.status).toBe(400);
    expect(await errorCode(bad)).toBe("validation_failed");
    expect((await call("/v1/models/reg-c/versions/zero/model.onnx")).status).toBe(400);
  });

  it("promotes and rolls back the serving version along its history", async () => {
    await uploadOk("reg-d", 1);
    const v2 = await uploadOk("reg-d", 2, fp32);
    expect(v2.model.serving_version).toBe(1);
    const promoted = await promote("reg-d", 2);
    expect(promoted.status).toBe(200);
    expect((await promoted.json<RegistryChange>()).model).toMatchObject({ serving_version: 2, serving_history: [1] });
    expect((await (await call("/v1/models/reg-d")).json<ModelDetail>()).serving?.version).toBe(2);
    const v3 = await uploadOk("reg-d", 3, int8, { promote: "true" });
    expect(v3.model).toMatchObject({ serving_version: 3, serving_history: [1, 2] });
    const back = await rollback("reg-d");
    expect((await back.json<RegistryChange>()).model).toMatchObject({ serving_version: 2, serving_history: [1] });
    await rollback("reg-d");
    const none = await rollback("reg-d");
    expect(none.status).toBe(409);
    expect(await errorCode(none)).toBe("conflict");
    expect((await (await call("/v1/models/reg-d")).json<ModelDetail>()).serving_version).toBe(1);
  });

  it("refuses bad promote/rollback requests without changing anything", async () => {
    await uploadOk("reg-e", 1);
    const before = await storedKeys(env.MODELS, "reg-e");
    const cases: [Promise<Response>, number, string][] = [
      [promote("reg-e", 5), 404, "version_not_found"],
      [promote("nope", 1), 404, "model_not_found"],
      [promote("reg-e", "1"), 400, "validation_failed"],
      [promote("reg-e", 0), 400, "validation_failed"],
      [
        call("/v1/admin/models/reg-e/serving", {
          method: "POST",
          headers: { ...ADMIN, "content-type": "application/json" },
          body: "{",
        }),
        400,
        "invalid_json",
      ],
      [
        call("/v1/admin/models/reg-e/serving", { method: "POST", body: JSON.stringify({ version: 1 }) }),
        401,
        "unauthorized",
      ],
      [rollback("reg-e"), 409, "conflict"],
      [rollback("nope"), 404, "model_not_found"],
    ];
    for (const [pending, status, code] of cases) {
      const res = await pending;
      expect(res.status, code).toBe(status);
      expect(await errorCode(res)).toBe(code);
    }
    expect(await storedKeys(env.MODELS, "reg-e")).toEqual(before);
  });

  it("keeps a valid aggregator signature and refuses a tampered one", async () => {
    const kp = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(7));
    await trustAggregatorKey(toBase64Url(kp.publicKey));
    const manifest = {
      ...mlpManifest("reg-f", 1),
      sha256: await sha256(int8),
      size_bytes: int8.length,
      created_at: "2026-11-01T00:00:00.000Z",
    } as ModelManifest;
    const sig = nacl.sign.detached(canonicalManifestBytes(manifest), kp.secretKey);
    const signed = { ...manifest, aggregator: { public_key: toBase64Url(kp.publicKey), signature: toBase64Url(sig) } };
    const tampered = { ...signed, version: 2 };
    const bad = await upload("reg-f", uploadForm(int8, tampered));
    expect(bad.status).toBe(400);
    expect(await errorCode(bad)).toBe("bad_signature");
    const unsignedFields = { ...signed, created_at: undefined };
    const incomplete = await upload("reg-f", uploadForm(int8, unsignedFields));
    expect(await errorCode(incomplete)).toBe("invalid_model");
    expect(await storedKeys(env.MODELS, "reg-f")).toEqual([]);
    const ok = await upload("reg-f", uploadForm(int8, signed));
    expect(ok.status).toBe(201);
    expect((await ok.json<RegistryChange>()).manifest).toEqual(signed);
  });

  it("pins trust: a manifest signed by a key the edge does not trust is refused, however well it verifies", async () => {
    const trusted = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(8));
    const stranger = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(9));
    await trustAggregatorKey(toBase64Url(trusted.publicKey));
    const manifestV = async (version: number) =>
      ({
        ...mlpManifest("reg-pin", version),
        sha256: await sha256(int8),
        size_bytes: int8.length,
        created_at: "2026-11-01T00:00:00.000Z",
      }) as ModelManifest;
    const signedBy = (manifest: ModelManifest, kp: nacl.SignKeyPair, named = kp.publicKey) => ({
      ...manifest,
      aggregator: {
        public_key: toBase64Url(named),
        signature: toBase64Url(nacl.sign.detached(canonicalManifestBytes(manifest), kp.secretKey)),
      },
    });
    const v1 = await manifestV(1);
    // The stranger's signature verifies under the key written beside it, but that key is not one the edge trusts.
    const forged = await upload("reg-pin", uploadForm(int8, signedBy(v1, stranger)));
    expect(forged.status).toBe(400);
    expect(await errorCode(forged)).toBe("bad_signature");
    // Naming the trusted key does not help the stranger: its signature does not verify under that key.
    const named = await upload("reg-pin", uploadForm(int8, signedBy(v1, stranger, trusted.publicKey)));
    expect(await errorCode(named)).toBe("bad_signature");
    expect(await storedKeys(env.MODELS, "reg-pin")).toEqual([]);
    const ok = await upload("reg-pin", uploadForm(int8, signedBy(v1, trusted)));
    expect(ok.status, await ok.clone().text()).toBe(201);
    // Once the key is removed, what it signs is refused too.
    const removed = await call(`/v1/admin/aggregator-keys/${toBase64Url(trusted.publicKey)}`, {
      method: "DELETE",
      headers: ADMIN,
    });
    expect(removed.status).toBe(204);
    const after = await upload("reg-pin", uploadForm(int8, signedBy(await manifestV(2), trusted)));
    expect(await errorCode(after)).toBe("bad_signature");
  });

  it("validates uploads and stores nothing for a bad one", async () => {
    await uploadOk("reg-g", 1);
    const before = await storedKeys(env.MODELS, "reg-g");
    const m = (o: Record<string, unknown> = {}) => mlpManifest("reg-g", 2, o);
    const notOnnx = new TextEncoder().encode("definitely not a protobuf model");
    const cases: [string, () => Promise<Response>, number, string][] = [
      ["no credential", () => upload("reg-g", uploadForm(int8, m()), {}), 401, "unauthorized"],
      [
        "API-key-like bearer",
        () => upload("reg-g", uploadForm(int8, m()), { authorization: "Bearer fk_abc_0123456789abcdef0" }),
        403,
        "forbidden",
      ],
      [
        "JSON instead of multipart",
        () =>
          call("/v1/admin/models/reg-g/versions", {
            method: "POST",
            headers: { ...ADMIN, "content-type": "application/json" },
            body: JSON.stringify(m()),
          }),
        415,
        "unsupported_media_type",
      ],
      [
        "missing model part",
        () => {
          const f = new FormData();
          f.append("manifest", JSON.stringify(m()));
          return upload("reg-g", f);
        },
        400,
        "validation_failed",
      ],
      ["malformed manifest JSON", () => upload("reg-g", uploadForm(int8, "{nope")), 400, "invalid_json"],
      [
        "manifest without inputs",
        () => upload("reg-g", uploadForm(int8, m({ inputs: undefined }))),
        400,
        "validation_failed",
      ],
      ["unknown manifest field", () => upload("reg-g", uploadForm(int8, m({ extra: 1 }))), 400, "validation_failed"],
      [
        "name differs from URL",
        () => upload("reg-g", uploadForm(int8, mlpManifest("other", 2))),
        400,
        "validation_failed",
      ],
      ["not ONNX", () => upload("reg-g", uploadForm(notOnnx, m())), 400, "invalid_model"],
      ["empty file", () => upload("reg-g", uploadForm(new Uint8Array(0), m())), 400, "invalid_model"],
      ["sha256 mismatch", () => upload("reg-g", uploadForm(int8, m({ sha256: "0".repeat(64) }))), 400, "invalid_model"],
      ["size mismatch", () => upload("reg-g", uploadForm(int8, m({ size_bytes: 5 }))), 400, "invalid_model"],
      [
        "input shape mismatch",
        () =>
          upload("reg-g", uploadForm(int8, m({ inputs: [{ name: "input", shape: [null, 783], dtype: "float32" }] }))),
        400,
        "invalid_model",
      ],
      [
        "fixed batch declared",
        () => upload("reg-g", uploadForm(int8, m({ inputs: [{ name: "input", shape: [1, 784], dtype: "float32" }] }))),
        400,
        "invalid_model",
      ],
      [
        "input name mismatch",
        () => upload("reg-g", uploadForm(int8, m({ inputs: [{ name: "x", shape: [null, 784], dtype: "float32" }] }))),
        400,
        "invalid_model",
      ],
      [
        "output count mismatch",
        () =>
          upload(
            "reg-g",
            uploadForm(
              int8,
              m({
                outputs: [
                  { name: "logits", shape: [null, 10], dtype: "float32" },
                  { name: "p", shape: [null, 10], dtype: "float32" },
                ],
              }),
            ),
          ),
        400,
        "invalid_model",
      ],
      [
        "output rank mismatch",
        () => upload("reg-g", uploadForm(int8, m({ outputs: [{ name: "logits", shape: [null], dtype: "float32" }] }))),
        400,
        "invalid_model",
      ],
      ["quantization differs from the graph's", () => upload("reg-g", uploadForm(fp32, m())), 400, "invalid_model"],
      ["existing version", () => upload("reg-g", uploadForm(int8, mlpManifest("reg-g", 1))), 409, "conflict"],
      [
        "oversize model",
        () => upload("reg-g", uploadForm(new Uint8Array(MAX_MODEL_BYTES + 1), m())),
        413,
        "payload_too_large",
      ],
    ];
    for (const [what, send, status, code] of cases) {
      const res = await send();
      expect(res.status, what).toBe(status);
      expect(await errorCode(res), what).toBe(code);
    }
    expect(await storedKeys(env.MODELS, "reg-g")).toEqual(before);
    const detail = await (await call("/v1/models/reg-g")).json<ModelDetail>();
    expect(detail.versions.map((v) => v.version)).toEqual([1]);
  });

  it("lists the registry routes in the OpenAPI document", async () => {
    const doc = await (
      await call("/openapi.json")
    ).json<{
      paths: Record<string, Record<string, unknown>>;
      components: { securitySchemes: Record<string, unknown> };
    }>();
    expect(Object.keys(doc.components.securitySchemes)).toEqual(expect.arrayContaining(["apiKey", "adminToken"]));
    for (const path of [
      "/v1/models",
      "/v1/models/{name}",
      "/v1/models/{name}/versions/{version}/model.onnx",
      "/v1/models/{name}/predict",
      "/v1/admin/models/{name}/versions",
      "/v1/admin/models/{name}/serving",
      "/v1/admin/models/{name}/rollback",
      "/v1/admin/keys",
      "/v1/admin/keys/{id}",
      "/v1/usage",
    ]) {
      expect(Object.keys(doc.paths), path).toContain(path);
    }
    expect(Object.keys(doc.paths["/v1/models/{name}/predict"]!.post as object)).toContain("requestBody");
  });
});
