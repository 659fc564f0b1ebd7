/**
 * Issue 17, item 1: what an unauthenticated (or made-up) request may cost the edge. Bodies are read through one
 * streaming cap and never before the credential is checked; uploads need an API key; made-up round ids, device ids and
 * API key ids leave no tables in the Durable Objects they address; unknown keys are remembered briefly; a client
 * address that keeps sending bad credentials, or too many uploads, is answered 429 before any lookup.
 */
import { env, runInDurableObject, createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import nacl from "tweetnacl";
import {
  AGGREGATOR_KEY_HEADER,
  AGGREGATOR_SIGNATURE_HEADER,
  AGGREGATOR_TIMESTAMP_HEADER,
  encodeUpdate,
  toBase64Url,
} from "@fedge/protocol";
import { createApp } from "../src/app.ts";
import { keyCache } from "../src/middleware/auth/index.ts";
import {
  ADMIN,
  call,
  checkinBody,
  createApiKey,
  errorCode,
  makeUpdate,
  openRound,
  registerDevice,
  taskFor,
  uniqueModel,
  upload,
} from "./rounds-helpers.ts";

/** A lazily generated body of `total` bytes that counts how much of it the edge pulled. */
function countingBody(total: number, chunk = 16 * 1024, fill = 0x20) {
  let pulled = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulled >= total) return controller.close();
      const n = Math.min(chunk, total - pulled);
      pulled += n;
      controller.enqueue(new Uint8Array(n).fill(fill));
    },
  });
  return { stream, pulled: () => pulled };
}

/** The user tables of a Durable Object (not workerd's own `_cf_*` bookkeeping). */
async function userTables(stub: DurableObjectStub): Promise<string[]> {
  return runInDurableObject(stub, (_instance, state) =>
    state.storage.sql
      .exec<{ name: string }>(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_cf_%' AND name NOT LIKE 'sqlite_%'",
      )
      .toArray()
      .map((r) => r.name),
  );
}

function randomName(prefix: string): string {
  return `${prefix}${Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => (b % 36).toString(36)).join("")}`;
}

const MiB = 1024 * 1024;

describe("request bodies", () => {
  it("a signed admin request with a chunked body is refused before its body is read (untrusted key, bad signature)", async () => {
    const untrusted = nacl.sign.keyPair();
    const headers = {
      "content-type": "application/json",
      [AGGREGATOR_KEY_HEADER]: toBase64Url(untrusted.publicKey),
      [AGGREGATOR_TIMESTAMP_HEADER]: new Date().toISOString(),
      "x-fedge-nonce": "A".repeat(22),
      [AGGREGATOR_SIGNATURE_HEADER]: "A".repeat(86),
    };
    const first = countingBody(32 * MiB);
    const res = await call("/v1/admin/rounds", { method: "POST", headers, body: first.stream });
    expect(res.status).toBe(403);
    expect(first.pulled()).toBeLessThan(MiB);

    // A trusted key with a wrong signature: read, but only up to the route's cap (then 413, not the whole body).
    const trusted = nacl.sign.keyPair();
    const put = await call(`/v1/admin/aggregator-keys/${toBase64Url(trusted.publicKey)}`, {
      method: "PUT",
      headers: ADMIN,
    });
    expect(put.status).toBe(201);
    const second = countingBody(32 * MiB);
    const res2 = await call("/v1/admin/rounds", {
      method: "POST",
      headers: { ...headers, [AGGREGATOR_KEY_HEADER]: toBase64Url(trusted.publicKey) },
      body: second.stream,
    });
    expect(res2.status).toBe(413);
    expect(await errorCode(res2)).toBe("payload_too_large");
    expect(second.pulled()).toBeLessThan(MiB);
  });

  it("a chunked JSON body is cut off at the route's cap (check-in, registration)", async () => {
    const { key } = await createApiKey();
    for (const path of ["/v1/rounds/checkin", "/v1/devices"]) {
      const body = countingBody(16 * MiB);
      const res = await call(path, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: body.stream,
      });
      expect(res.status, path).toBe(413);
      expect(await errorCode(res)).toBe("payload_too_large");
      expect(body.pulled(), path).toBeLessThan(MiB);
    }
  });

  it("a declared length over the route's cap is refused before the credential is looked at", async () => {
    const res = await call("/v1/rounds/checkin", {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": String(64 * MiB) },
      body: "{}",
    });
    expect(res.status).toBe(413);
  });
});

describe("uploads", () => {
  it("need an API key: without one nothing is looked up, and made-up rounds and devices keep no tables", async () => {
    const ghostModel = uniqueModel("ghost");
    const deviceKeys = nacl.sign.keyPair();
    const ghostDevice = `dev_${randomName("ghost")}0000`;
    const bytes = await encodeUpdate(
      {
        roundId: `${ghostModel}_1`,
        deviceId: ghostDevice,
        nonce: new Uint8Array(16),
        shape: [8],
        payload: { dtype: "float32", values: new Float32Array(8) },
      },
      deviceKeys.secretKey,
    );
    const anonymous = await upload(`${ghostModel}_1`, bytes, undefined, { apiKey: null });
    expect(anonymous.status).toBe(401);
    expect(await errorCode(anonymous)).toBe("unauthorized");

    // With a real key: a made-up round is a 404 and its coordinator keeps no tables.
    const { key } = await createApiKey();
    const ghostRound = await upload(`${ghostModel}_1`, bytes, undefined, { apiKey: key });
    expect(ghostRound.status).toBe(404);
    expect(await userTables(env.ROUNDS.getByName(ghostModel))).toEqual([]);

    // A real round, a made-up device: 404, and the device's registry object keeps no tables.
    const model = uniqueModel("real");
    const round = await openRound(model);
    const real = await registerDevice(key);
    const task = await taskFor(real, model);
    const res = await upload(
      round.round_id,
      await makeUpdate(task, real, { deviceId: ghostDevice, secretKey: deviceKeys.secretKey }),
      undefined,
      { apiKey: key },
    );
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe("device_not_found");
    expect(await userTables(env.DEVICES.getByName(`device:${ghostDevice}`))).toEqual([]);
  });

  it("are limited per client address (on top of the key's own limit)", async () => {
    const model = uniqueModel("ip");
    const { key } = await createApiKey();
    const round = await openRound(model);
    const device = await registerDevice(key);
    const task = await taskFor(device, model);
    const bytes = await makeUpdate(task, device);
    const app = createApp();
    const limited = { ...env, FEDGE_UPLOADS_PER_MINUTE_PER_IP: "3" };
    const send = async (ip: string) => {
      const ctx = createExecutionContext();
      const res = await app.fetch(
        new Request(`http://edge/v1/rounds/${round.round_id}/updates`, {
          method: "POST",
          headers: {
            "content-type": "application/vnd.fedge.update",
            authorization: `Bearer ${key}`,
            "cf-connecting-ip": ip,
          },
          body: bytes,
        }),
        limited,
        ctx,
      );
      await waitOnExecutionContext(ctx);
      return res;
    };
    const ip = `192.0.2.${1 + (crypto.getRandomValues(new Uint8Array(1))[0]! % 200)}`;
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await send(ip)).status);
    // The first is accepted, the retries of the same bytes answer the first receipt, the fourth is over the budget.
    expect(statuses).toEqual([201, 200, 200, 429]);
    const over = await send(ip);
    expect(over.headers.get("retry-after")).toMatch(/^\d+$/);
    expect((await send("192.0.2.250")).status).toBe(200);
  });
});

describe("API keys", () => {
  it("an unknown key id leaves no ledger tables and is asked once per negative-cache window", async () => {
    const id = randomName("ghostkey");
    const calls = keyCache.stats.ledgerCalls;
    for (let i = 0; i < 10; i++) {
      const res = await call("/v1/usage", { headers: { authorization: `Bearer fk_${id}_${"x".repeat(20)}${i}` } });
      expect(res.status).toBe(401);
    }
    expect(keyCache.stats.ledgerCalls - calls).toBe(1);
    expect(await userTables(env.ACCOUNTS.getByName(`key:${id}`))).toEqual([]);
  });

  it("wrong secrets for a real key id reach its ledger once, and the right secret still works", async () => {
    const { id, key } = await createApiKey();
    const calls = keyCache.stats.ledgerCalls;
    for (let i = 0; i < 10; i++) {
      const res = await call("/v1/usage", { headers: { authorization: `Bearer fk_${id}_${"y".repeat(30)}${i}` } });
      expect(res.status).toBe(401);
    }
    expect(keyCache.stats.ledgerCalls - calls).toBe(1);
    expect((await call("/v1/usage", { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
  });

  it("an address that keeps sending bad credentials is answered 429 before any lookup", async () => {
    const { key } = await createApiKey();
    const ip = `198.51.100.${1 + (crypto.getRandomValues(new Uint8Array(1))[0]! % 200)}`;
    const app = createApp();
    // 5 a minute: one token back every 12 s, so the test's own pace refills nothing.
    const limited = { ...env, FEDGE_AUTH_FAILURES_PER_MINUTE_PER_IP: "5" };
    const send = async (path: string, auth: string, from: string | null = ip) => {
      const ctx = createExecutionContext();
      const headers: Record<string, string> = { authorization: auth };
      if (from) headers["cf-connecting-ip"] = from;
      const res = await app.fetch(new Request(`http://edge${path}`, { headers }), limited, ctx);
      await waitOnExecutionContext(ctx);
      return res;
    };
    const bad = () => `Bearer fk_${randomName("k")}_${"z".repeat(20)}`;
    for (let i = 0; i < 5; i++) expect((await send("/v1/usage", bad())).status).toBe(401);
    const calls = keyCache.stats.ledgerCalls;
    const blocked = await send("/v1/usage", bad());
    expect(blocked.status).toBe(429);
    expect(blocked.headers.get("retry-after")).toMatch(/^\d+$/);
    // Even a good key from that address waits (the address is refused before its credential is read) ...
    expect((await send("/v1/usage", `Bearer ${key}`)).status).toBe(429);
    expect(keyCache.stats.ledgerCalls).toBe(calls);
    // ... as do admin credentials; other addresses are not affected.
    expect((await send("/v1/admin/rounds?model=x", "Bearer test-admin-token")).status).toBe(429);
    expect((await send("/v1/usage", `Bearer ${key}`, "198.51.100.250")).status).toBe(200);
    // Bad admin credentials count the same way.
    const other = "198.51.100.251";
    for (let i = 0; i < 5; i++) expect((await send("/v1/admin/rounds?model=x", "Bearer nope", other)).status).toBe(403);
    expect((await send("/v1/admin/rounds?model=x", "Bearer test-admin-token", other)).status).toBe(429);
  });

  it("a check-in with a made-up device id keeps no registry tables", async () => {
    const { key } = await createApiKey();
    const ghost = `dev_${randomName("ghostdev")}0000`;
    const keys = nacl.sign.keyPair();
    const res = await call("/v1/rounds/checkin", {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify(checkinBody({ id: ghost, keys, apiKey: key }, uniqueModel("c"))),
    });
    expect(res.status).toBe(404);
    expect(await userTables(env.DEVICES.getByName(`device:${ghost}`))).toEqual([]);
  });
});
