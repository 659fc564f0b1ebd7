/**
 * Issue 17, item 2: the aggregator's signed admin requests. Each one is single use (a replay inside the freshness
 * window is refused), it is bound to the edge's host as well as method, path and body, the key only opens the round
 * and publish routes, and a signed model upload takes as much as the model cap allows (it was cut at 1 MiB).
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import nacl from "tweetnacl";
import { buildMlpOnnx, initMlp, xoshiroRandomBytes } from "@fedge/ml";
import { signAggregatorRequest, toBase64Url, type RegistryChange, type RoundStatus } from "@fedge/protocol";
import { adminNoncesStub } from "../src/durable-objects/admin-nonces.ts";
import {
  ADMIN,
  adminGet,
  call,
  createApiKey,
  ensureBudget,
  errorCode,
  roundParams,
  uniqueModel,
} from "./rounds-helpers.ts";

const aggregator = nacl.sign.keyPair();
const aggregatorKey = toBase64Url(aggregator.publicKey);

beforeAll(async () => {
  const res = await call(`/v1/admin/aggregator-keys/${aggregatorKey}`, { method: "PUT", headers: ADMIN });
  expect(res.status).toBe(201);
});

interface Signed {
  headers: Record<string, string>;
  body: Uint8Array | undefined;
}

/** Signs one request as the aggregator (for host `edge`, which the tests' URLs name), without sending it. */
async function sign(
  method: string,
  path: string,
  body?: { bytes: Uint8Array; contentType: string },
  host = "edge",
): Promise<Signed> {
  const headers = await signAggregatorRequest({
    method,
    host,
    path,
    body: body?.bytes,
    secretKey: aggregator.secretKey,
  });
  if (body) headers["content-type"] = body.contentType;
  return { headers, body: body?.bytes };
}

function send(method: string, path: string, s: Signed): Promise<Response> {
  return call(path, { method, headers: s.headers, ...(s.body ? { body: s.body } : {}) });
}

const json = (value: unknown) => ({
  bytes: new TextEncoder().encode(JSON.stringify(value)),
  contentType: "application/json",
});

/** A multipart body exactly as it will be sent (so the signature covers those bytes). */
async function multipart(form: FormData): Promise<{ bytes: Uint8Array; contentType: string }> {
  const req = new Request("http://multipart.invalid/", { method: "POST", body: form });
  return { bytes: new Uint8Array(await req.arrayBuffer()), contentType: req.headers.get("content-type")! };
}

describe("signed admin requests", () => {
  it("are single use: a captured request replayed inside the window is refused and changes nothing", async () => {
    const model = uniqueModel("replay");
    await ensureBudget(model); // a DP round opens only against a budget
    const open = await sign("POST", "/v1/admin/rounds", json(roundParams(model)));
    const first = await send("POST", "/v1/admin/rounds", open);
    expect(first.status).toBe(201);
    const round = await first.json<RoundStatus>();
    // The operator closes the round; a replay of the captured "open" must not open another one.
    expect((await call(`/v1/admin/rounds/${round.round_id}/close`, { method: "POST", headers: ADMIN })).status).toBe(
      200,
    );
    const replay = await send("POST", "/v1/admin/rounds", open);
    expect(replay.status).toBe(401);
    expect(await errorCode(replay)).toBe("unauthorized");
    const list = await (await adminGet(`/v1/admin/rounds?model=${model}`)).json<{ rounds: RoundStatus[] }>();
    expect(list.rounds.map((r) => r.round_id)).toEqual([round.round_id]);
    // A GET too; while a fresh signature over the same request is fine.
    const status = await sign("GET", `/v1/admin/rounds/${round.round_id}`);
    expect((await send("GET", `/v1/admin/rounds/${round.round_id}`, status)).status).toBe(200);
    expect((await send("GET", `/v1/admin/rounds/${round.round_id}`, status)).status).toBe(401);
    expect(
      (await send("GET", `/v1/admin/rounds/${round.round_id}`, await sign("GET", `/v1/admin/rounds/${round.round_id}`)))
        .status,
    ).toBe(200);
    // The nonces live in the key's AdminNonces object.
    expect(await adminNoncesStub(env, aggregatorKey).size()).toBeGreaterThanOrEqual(3);
  });

  it("are bound to the edge's host", async () => {
    const path = `/v1/admin/rounds?model=${uniqueModel("host")}`;
    const elsewhere = await sign("GET", path, undefined, "fedge.other.example");
    const res = await send("GET", path, elsewhere);
    expect(res.status).toBe(401);
    expect((await send("GET", path, await sign("GET", path))).status).toBe(200);
  });

  it("only open the round and publish routes: keys, rollback, devices, quotas and benchmarks need the admin token", async () => {
    const { id: keyId } = await createApiKey();
    const refused: [string, string, { bytes: Uint8Array; contentType: string } | undefined][] = [
      ["POST", "/v1/admin/keys", json({ name: "minted by a leaked aggregator key" })],
      ["DELETE", `/v1/admin/keys/${keyId}`, undefined],
      ["GET", `/v1/admin/keys/${keyId}/usage`, undefined],
      ["POST", "/v1/admin/models/anything/rollback", undefined],
      ["POST", "/v1/admin/devices/dev_aaaaaaaaaaaaaaaaaaaaaa/revoke", undefined],
      ["GET", "/v1/admin/devices/dev_aaaaaaaaaaaaaaaaaaaaaa", undefined],
      ["DELETE", "/v1/admin/devices/dev_aaaaaaaaaaaaaaaaaaaaaa", undefined],
      ["PUT", `/v1/admin/device-quotas/${keyId}`, json({ max_devices: 1_000_000 })],
      ["POST", "/v1/admin/bench/models/anything/infer?n=1", undefined],
      ["PUT", `/v1/admin/aggregator-keys/${toBase64Url(nacl.sign.keyPair().publicKey)}`, undefined],
    ];
    for (const [method, path, body] of refused) {
      const res = await send(method, path, await sign(method, path, body));
      expect([method, path, res.status]).toEqual([method, path, 403]);
      expect(await errorCode(res)).toBe("forbidden");
    }
    // Nothing happened: the key is not revoked and its quota is the default.
    expect((await adminGet(`/v1/admin/keys/${keyId}/usage`)).status).toBe(200);
    const usage = await (await adminGet(`/v1/admin/keys/${keyId}/usage`)).json<{ key: { revoked_at: null } }>();
    expect(usage.key.revoked_at).toBeNull();
  });

  it("take a signed model upload up to the model cap (over 1 MiB), and a promote", async () => {
    const name = uniqueModel("big");
    // 784→400→10 float32: about 1.3 MB of ONNX.
    const params = initMlp([784, 400, 10], { random: xoshiroRandomBytes(3) });
    const onnx = buildMlpOnnx(params, { quantization: "none" });
    expect(onnx.length).toBeGreaterThan(1024 * 1024);
    const manifest = {
      name,
      version: 1,
      inputs: [{ name: "input", shape: [null, 784], dtype: "float32" }],
      outputs: [{ name: "logits", shape: [null, 10], dtype: "float32" }],
      quantization: { scheme: "none", weight_dtype: "float32" },
    };
    const form = new FormData();
    form.set("model", new File([onnx as Uint8Array<ArrayBuffer>], "model.onnx", { type: "application/octet-stream" }));
    form.set("manifest", JSON.stringify(manifest));
    const path = `/v1/admin/models/${name}/versions`;
    const res = await send("POST", path, await sign("POST", path, await multipart(form)));
    expect(res.status, await res.clone().text()).toBe(201);
    expect((await res.json<RegistryChange>()).model.serving_version).toBe(1);
    const promote = `/v1/admin/models/${name}/serving`;
    const promoted = await send("POST", promote, await sign("POST", promote, json({ version: 1 })));
    expect(promoted.status).toBe(200);
  });
});
