/**
 * Device registration, quotas and revocation; admin authentication of the training plane (admin token or the
 * aggregator's Ed25519 request signature; never the public API key).
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import nacl from "tweetnacl";
import {
  AGGREGATOR_SIGNATURE_HEADER,
  AGGREGATOR_TIMESTAMP_HEADER,
  signAggregatorRequest,
  toBase64Url,
  type DeviceInfo,
  type RoundStatus,
} from "@fedge/protocol";
import { verifyAggregatorRequest } from "../src/middleware/aggregator-signature.ts";
import {
  ADMIN,
  adminGet,
  adminPost,
  call,
  checkin,
  createApiKey,
  ensureBudget,
  errorCode,
  registerDevice,
  roundParams,
  uniqueModel,
} from "./rounds-helpers.ts";

function register(apiKey: string, body: unknown): Promise<Response> {
  return call("/v1/devices", {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

describe("POST /v1/devices", () => {
  it("registers a public key under the API key and returns a device id", async () => {
    const { id, key } = await createApiKey();
    const kp = nacl.sign.keyPair();
    const res = await register(key, { public_key: toBase64Url(kp.publicKey), platform: "browser" });
    expect(res.status).toBe(201);
    const body = await res.json<{ device_id: string; created_at: string }>();
    expect(body.device_id).toMatch(/^dev_[A-Za-z0-9_-]{22}$/);
    const info = await (await adminGet(`/v1/admin/devices/${body.device_id}`)).json<DeviceInfo>();
    expect(info).toMatchObject({
      public_key: toBase64Url(kp.publicKey),
      api_key_id: id,
      platform: "browser",
      revoked_at: null,
    });
  });

  it("rejects a missing API key, a bad public key and unknown fields", async () => {
    const { key } = await createApiKey();
    const none = await call("/v1/devices", {
      method: "POST",
      body: "{}",
      headers: { "content-type": "application/json" },
    });
    expect(none.status).toBe(401);
    for (const body of [{}, { public_key: "short" }, { public_key: "!".repeat(43) }]) {
      const res = await register(key, body);
      expect(res.status).toBe(400);
      expect(await errorCode(res)).toBe("validation_failed");
    }
  });

  it("enforces the per-API-key device quota, and revocation frees a slot", async () => {
    const { id, key } = await createApiKey();
    const set = await call(`/v1/admin/device-quotas/${id}`, {
      method: "PUT",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ max_devices: 2 }),
    });
    expect(await set.json()).toEqual({ api_key_id: id, max_devices: 2, active_devices: 0 });
    const a = await registerDevice(key);
    await registerDevice(key);
    const third = await register(key, { public_key: toBase64Url(nacl.sign.keyPair().publicKey) });
    expect(third.status).toBe(403);
    expect(await errorCode(third)).toBe("quota_exceeded");
    // Another key is not affected.
    await registerDevice((await createApiKey()).key);

    expect((await adminPost(`/v1/admin/devices/${a.id}/revoke`)).status).toBe(200);
    // Revocation is idempotent and keeps the first time.
    const first = await (await adminGet(`/v1/admin/devices/${a.id}`)).json<DeviceInfo>();
    const again = await (await adminPost(`/v1/admin/devices/${a.id}/revoke`)).json<DeviceInfo>();
    expect(again.revoked_at).toBe(first.revoked_at);
    expect(await (await adminGet(`/v1/admin/device-quotas/${id}`)).json()).toMatchObject({ active_devices: 1 });
    await registerDevice(key);
  });

  it("takes effect on the next check-in right after revocation", async () => {
    const model = uniqueModel("dev");
    const { key } = await createApiKey();
    const d = await registerDevice(key);
    expect(await checkin(d, model)).toMatchObject({ reason: "no_open_round" });
    await adminPost(`/v1/admin/devices/${d.id}/revoke`);
    const { checkinRaw, checkinBody } = await import("./rounds-helpers.ts");
    const res = await checkinRaw(d, checkinBody(d, model));
    expect(res.status).toBe(403);
    expect(await errorCode(res)).toBe("device_revoked");
  });

  it("answers a retried registration of the same key pair with the same device, and uses one quota slot", async () => {
    const { id, key } = await createApiKey();
    const publicKey = toBase64Url(nacl.sign.keyPair().publicKey);
    const first = await register(key, { public_key: publicKey });
    expect(first.status).toBe(201);
    const again = await register(key, { public_key: publicKey });
    expect(again.status).toBe(200);
    const a = await first.json<{ device_id: string; created_at: string }>();
    expect(await again.json()).toEqual(a);
    expect(await (await adminGet(`/v1/admin/device-quotas/${id}`)).json()).toMatchObject({ active_devices: 1 });
  });

  it("refuses to register a revoked device's public key again", async () => {
    const { id, key } = await createApiKey();
    const publicKey = toBase64Url(nacl.sign.keyPair().publicKey);
    const { device_id } = await (await register(key, { public_key: publicKey })).json<{ device_id: string }>();
    expect((await adminPost(`/v1/admin/devices/${device_id}/revoke`)).status).toBe(200);
    const res = await register(key, { public_key: publicKey });
    expect(res.status).toBe(403);
    expect(await errorCode(res)).toBe("device_revoked");
    expect(await (await adminGet(`/v1/admin/device-quotas/${id}`)).json()).toMatchObject({ active_devices: 0 });
  });

  it("answers 404 when revoking an unknown device", async () => {
    const res = await adminPost("/v1/admin/devices/dev_nobodynobodynobody00/revoke");
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe("device_not_found");
  });
});

describe("training admin authentication", () => {
  const aggregator = nacl.sign.keyPair();
  const aggregatorKey = toBase64Url(aggregator.publicKey);

  async function registerAggregator(): Promise<void> {
    const res = await call(`/v1/admin/aggregator-keys/${aggregatorKey}`, { method: "PUT", headers: ADMIN });
    expect(res.status).toBe(201);
  }

  async function signed(method: string, path: string, body?: unknown, secretKey = aggregator.secretKey, now?: Date) {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const headers = await signAggregatorRequest({
      method,
      host: "edge",
      path,
      body: text,
      secretKey,
      ...(now ? { now } : {}),
    });
    return call(path, {
      method,
      headers: { ...headers, ...(text === undefined ? {} : { "content-type": "application/json" }) },
      ...(text === undefined ? {} : { body: text }),
    });
  }

  it("never accepts the public API key", async () => {
    const { key } = await createApiKey();
    const res = await call("/v1/admin/rounds", {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify(roundParams(uniqueModel("auth"))),
    });
    expect(res.status).toBe(403);
    expect((await call("/v1/admin/rounds?model=x")).status).toBe(401);
  });

  it("guards every documented admin operation: 401 without a credential, 403 with an API key", async () => {
    const doc = await (await call("/openapi.json")).json<{ paths: Record<string, Record<string, unknown>> }>();
    const { key } = await createApiKey();
    const ops = Object.entries(doc.paths)
      .filter(([path]) => path.startsWith("/v1/admin/"))
      .flatMap(([path, methods]) => Object.keys(methods).map((m) => [m.toUpperCase(), path] as const));
    expect(ops.length).toBeGreaterThan(20);
    for (const [method, template] of ops) {
      const path = template.replace(/\{[a-z_]+\}/g, (p) => (p === "{public_key}" ? "A".repeat(43) : "x_1"));
      const none = await call(path, { method });
      expect([method, path, none.status, await errorCode(none)]).toEqual([method, path, 401, "unauthorized"]);
      const apiKey = await call(path, { method, headers: { authorization: `Bearer ${key}` } });
      expect([method, path, apiKey.status]).toEqual([method, path, 403]);
      await apiKey.body?.cancel();
    }
  });

  it("accepts the aggregator's signed requests once its key is registered", async () => {
    const model = uniqueModel("auth");
    await ensureBudget(model);
    const unregistered = await signed("POST", "/v1/admin/rounds", roundParams(model));
    expect(unregistered.status).toBe(403);
    await registerAggregator();
    const opened = await signed("POST", "/v1/admin/rounds", roundParams(model));
    expect(opened.status).toBe(201);
    const round = await opened.json<RoundStatus>();
    const status = await signed("GET", `/v1/admin/rounds/${round.round_id}`);
    expect(status.status).toBe(200);
    const closed = await signed("POST", `/v1/admin/rounds/${round.round_id}/close`);
    expect(await closed.json()).toMatchObject({ state: "closed", close_reason: "admin" });
    const list = await signed("GET", `/v1/admin/rounds/${round.round_id}/updates?after=0&limit=10`);
    expect(list.status).toBe(200);
  });

  it("rejects a bad, moved, stale or tampered signature with 401", async () => {
    await registerAggregator();
    const model = uniqueModel("auth");
    const path = "/v1/admin/rounds";
    const body = JSON.stringify(roundParams(model));
    const good = await signAggregatorRequest({
      method: "POST",
      host: "edge",
      path,
      body,
      secretKey: aggregator.secretKey,
    });
    const send = (headers: Record<string, string>, p = path, b = body) =>
      call(p, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: b });

    // Body changed after signing.
    const tampered = await send(good, path, JSON.stringify(roundParams(model, { clip_norm: 100 })));
    expect(tampered.status).toBe(401);
    // Signature moved to another path.
    const moved = await send(good, "/v1/admin/rounds/x_1/close");
    expect(moved.status).toBe(401);
    // Stale timestamp.
    const old = await signAggregatorRequest({
      method: "POST",
      host: "edge",
      path,
      body,
      secretKey: aggregator.secretKey,
      now: new Date(Date.now() - 5 * 60_000),
    });
    const stale = await send(old);
    expect(stale.status).toBe(401);
    // Garbage signature.
    const garbage = await send({ ...good, [AGGREGATOR_SIGNATURE_HEADER]: "A".repeat(86) });
    expect(garbage.status).toBe(401);
    expect(await errorCode(garbage)).toBe("unauthorized");
    // Nothing opened.
    const list = await adminGet(`/v1/admin/rounds?model=${model}`);
    expect(await list.json()).toEqual({ rounds: [] });
  });

  it("lets only the admin token manage aggregator keys", async () => {
    await registerAggregator();
    const other = toBase64Url(nacl.sign.keyPair().publicKey);
    const res = await signed("PUT", `/v1/admin/aggregator-keys/${other}`);
    expect(res.status).toBe(403);
    expect(await env.REGISTRY.get(`aggregator-key:${other}`)).toBeNull();
    const removed = await call(`/v1/admin/aggregator-keys/${aggregatorKey}`, { method: "DELETE", headers: ADMIN });
    expect(removed.status).toBe(204);
    expect((await signed("GET", "/v1/admin/rounds?model=abc")).status).toBe(403);
  });

  it("verifies a configured (var/secret) key without KV, and skips requests without a signature", async () => {
    const path = "/v1/admin/rounds/m_1";
    const headers = await signAggregatorRequest({ method: "GET", host: "edge", path, secretKey: aggregator.secretKey });
    const base = {
      method: "GET",
      host: "edge",
      path,
      key: headers["x-fedge-aggregator-key"]!,
      timestamp: headers[AGGREGATOR_TIMESTAMP_HEADER]!,
      nonce: headers["x-fedge-nonce"]!,
      signature: headers[AGGREGATOR_SIGNATURE_HEADER]!,
      claimNonce: async () => true,
      body: async () => new Uint8Array(0),
      now: Date.now(),
      isTrusted: async (k: string) => k === aggregatorKey,
    };
    expect(await verifyAggregatorRequest(base)).toMatchObject({ kind: "admin", principal: { via: "signature" } });
    expect(await verifyAggregatorRequest({ ...base, signature: null })).toEqual({ kind: "skip" });
    expect(await verifyAggregatorRequest({ ...base, method: "POST" })).toMatchObject({ kind: "reject", status: 401 });
    expect(await verifyAggregatorRequest({ ...base, host: "elsewhere" })).toMatchObject({
      kind: "reject",
      status: 401,
    });
    expect(await verifyAggregatorRequest({ ...base, claimNonce: async () => false })).toMatchObject({
      kind: "reject",
      status: 401,
    });
    expect(await verifyAggregatorRequest({ ...base, now: Date.now() + 61_000 })).toMatchObject({
      kind: "reject",
      status: 401,
    });
    expect(await verifyAggregatorRequest({ ...base, isTrusted: async () => false })).toMatchObject({
      kind: "reject",
      status: 403,
    });
  });
});
