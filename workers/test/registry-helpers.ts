/**
 * Helpers for the registry and inference tests (workerd side).
 */
import { exports } from "cloudflare:workers";
import { expect } from "vitest";
import type { CreatedApiKey } from "@fedge/protocol";
import { uploadManifestFromOnnx } from "@fedge/ml";

export const ADMIN = { authorization: "Bearer test-admin-token" };

export function call(path: string, init: RequestInit = {}): Promise<Response> {
  return exports.default.fetch(`http://edge${path}`, init);
}

/** The MLP manifest fields an upload sends (sha256/size/created_at are filled in by the edge). */
export function mlpManifest(name: string, version: number, overrides: Record<string, unknown> = {}) {
  return {
    name,
    version,
    inputs: [{ name: "input", shape: [null, 784], dtype: "float32" }],
    outputs: [{ name: "logits", shape: [null, 10], dtype: "float32" }],
    quantization: { scheme: "int8-per-channel-symmetric", weight_dtype: "int8" },
    ...overrides,
  };
}

export function uploadForm(onnx: Uint8Array, manifest: unknown, extra: Record<string, string> = {}): FormData {
  const form = new FormData();
  form.append("model", new File([onnx as Uint8Array<ArrayBuffer>], "model.onnx", { type: "application/octet-stream" }));
  form.append("manifest", typeof manifest === "string" ? manifest : JSON.stringify(manifest));
  for (const [k, v] of Object.entries(extra)) form.append(k, v);
  return form;
}

export function upload(name: string, form: FormData, headers: Record<string, string> = ADMIN): Promise<Response> {
  return call(`/v1/admin/models/${name}/versions`, { method: "POST", headers, body: form });
}

export async function errorCode(res: Response): Promise<string> {
  const body = await res.json<{ error: { code: string; message: string } }>();
  expect(Object.keys(body)).toEqual(["error"]);
  expect(body.error.message.length).toBeGreaterThan(0);
  return body.error.code;
}

export async function createKey(body: Record<string, unknown> = { name: "test" }): Promise<CreatedApiKey> {
  const res = await call("/v1/admin/keys", {
    method: "POST",
    headers: { ...ADMIN, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(201);
  return res.json<CreatedApiKey>();
}

/** Everything stored under a model's prefix in R2 (to assert that a rejected request stored nothing). */
export async function storedKeys(bucket: R2Bucket, name: string): Promise<string[]> {
  const list = await bucket.list({ prefix: `models/${name}/` });
  return list.objects.map((o) => `${o.key}:${o.etag}`).sort();
}

/** The `code` of an error in the Open Inference Protocol form `{"error": message, "code"}`. */
export async function v2ErrorCode(res: Response): Promise<string> {
  const body = await res.json<{ error: string; code: string }>();
  expect(Object.keys(body).sort()).toEqual(["code", "error"]);
  expect(typeof body.error).toBe("string");
  expect(body.error.length).toBeGreaterThan(0);
  return body.code;
}

/** Upload `bytes` with the manifest read from the file itself (`uploadManifestFromOnnx`). */
export async function uploadOnnx(
  name: string,
  version: number,
  bytes: Uint8Array,
  extra: Record<string, string> = {},
): Promise<Response> {
  return upload(name, uploadForm(bytes, uploadManifestFromOnnx(name, version, bytes), extra));
}
