import { exports } from "cloudflare:workers";
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { CreatedApiKey, UsageReport } from "@fedge/protocol";
import { createApp } from "../src/app.ts";
import { ledgerFor } from "../src/middleware/auth/index.ts";

const ADMIN = { authorization: "Bearer test-admin-token" };

async function call(path: string, init: RequestInit = {}): Promise<Response> {
  return exports.default.fetch(`http://edge${path}`, init);
}

async function createKey(body: Record<string, unknown> = { name: "team a" }): Promise<CreatedApiKey> {
  const res = await call("/v1/admin/keys", {
    method: "POST",
    headers: { ...ADMIN, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(201);
  return res.json<CreatedApiKey>();
}

async function errorOf(res: Response): Promise<string> {
  const body = await res.json<{ error: { code: string; message: string } }>();
  expect(Object.keys(body)).toEqual(["error"]);
  expect(body.error.message).toEqual(expect.any(String));
  return body.error.code;
}

describe("admin auth", () => {
  it("answers 401 without a credential and 403 with a wrong one", async () => {
    const none = await call("/v1/admin/keys", { method: "POST", body: "{}" });
    expect(none.status).toBe(401);
    expect(await errorOf(none)).toBe("unauthorized");
    const wrong = await call("/v1/admin/keys", {
      method: "POST",
      headers: { authorization: "Bearer test-admin-tokeN", "content-type": "application/json" },
      body: JSON.stringify({ name: "x" }),
    });
    expect(wrong.status).toBe(403);
    expect(await errorOf(wrong)).toBe("forbidden");
  });

  it("refuses an API key on admin routes", async () => {
    const created = await createKey();
    const res = await call("/v1/admin/keys", {
      method: "POST",
      headers: { authorization: `Bearer ${created.key}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "escalate" }),
    });
    expect(res.status).toBe(403);
  });

  it("validates the create body with the error envelope", async () => {
    for (const body of ['{"name": ""}', '{"name":"x","rate_limit_per_minute":0}', '{"name":"x","extra":1}', "[]"]) {
      const res = await call("/v1/admin/keys", {
        method: "POST",
        headers: { ...ADMIN, "content-type": "application/json" },
        body,
      });
      expect(res.status, body).toBe(400);
      expect(await errorOf(res)).toBe("validation_failed");
    }
  });
});

describe("API keys", () => {
  it("creates a key shown once, stored only as its SHA-256", async () => {
    const created = await createKey({ name: "team b", rate_limit_per_minute: 100 });
    expect(created.key).toMatch(new RegExp(`^fk_${created.id}_[A-Za-z0-9_-]{43}$`));
    expect(created).toMatchObject({ name: "team b", rate_limit_per_minute: 100, revoked_at: null });
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(created.key)));
    const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
    const stored = await ledgerFor(env, created.id).authenticate({ hash: hex, rateLimit: false });
    expect(stored.status).toBe("ok");
  });

  it("authenticates the owner and rejects missing, malformed and unknown keys with 401", async () => {
    const created = await createKey();
    const ok = await call("/v1/usage", { headers: { authorization: `Bearer ${created.key}` } });
    expect(ok.status).toBe(200);
    const report = await ok.json<UsageReport>();
    expect(report).toMatchObject({ key: { id: created.id }, days: [], total: { calls: 0, input_elements: 0 } });
    const forged = created.key.slice(0, -4) + (created.key.endsWith("AAAA") ? "BBBB" : "AAAA");
    for (const authorization of [
      undefined,
      "Basic abc",
      "Bearer nonsense",
      `Bearer ${forged}`,
      "Bearer fk_zz_abcdefghijklmnopq",
    ]) {
      const res = await call("/v1/usage", { headers: authorization ? { authorization } : {} });
      expect(res.status, authorization).toBe(401);
      expect(await errorOf(res)).toBe("unauthorized");
    }
  });

  it("revokes a key: 403 afterwards, idempotent, 404 for an unknown id", async () => {
    const created = await createKey();
    const revoked = await call(`/v1/admin/keys/${created.id}`, { method: "DELETE", headers: ADMIN });
    expect(revoked.status).toBe(200);
    const info = await revoked.json<{ revoked_at: string | null }>();
    expect(info.revoked_at).toEqual(expect.any(String));
    const again = await call(`/v1/admin/keys/${created.id}`, { method: "DELETE", headers: ADMIN });
    expect((await again.json<{ revoked_at: string }>()).revoked_at).toBe(info.revoked_at);
    const res = await call("/v1/usage", { headers: { authorization: `Bearer ${created.key}` } });
    expect(res.status).toBe(403);
    expect(await errorOf(res)).toBe("forbidden");
    const missing = await call("/v1/admin/keys/abc123", { method: "DELETE", headers: ADMIN });
    expect(missing.status).toBe(404);
    const badId = await call("/v1/admin/keys/NOT_AN_ID", { method: "DELETE", headers: ADMIN });
    expect(badId.status).toBe(400);
  });

  it("rate limits per key with 429, Retry-After and the envelope, without touching other keys", async () => {
    const limited = await createKey({ name: "tiny", rate_limit_per_minute: 3 });
    const other = await createKey({ name: "other", rate_limit_per_minute: 3 });
    const headers = { authorization: `Bearer ${limited.key}` };
    for (let i = 0; i < 3; i++) {
      const res = await call("/v1/usage", { headers });
      expect(res.status).toBe(200);
      expect(res.headers.get("x-ratelimit-limit")).toBe("3");
    }
    const res = await call("/v1/usage", { headers });
    expect(res.status).toBe(429);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(Number(res.headers.get("retry-after"))).toBeLessThanOrEqual(20);
    expect(await errorOf(res)).toBe("rate_limited");
    const fine = await call("/v1/usage", { headers: { authorization: `Bearer ${other.key}` } });
    expect(fine.status).toBe(200);
  });

  it("meters per key per UTC day, readable by the admin and the owner, filtered by day range", async () => {
    const created = await createKey();
    const ledger = ledgerFor(env, created.id);
    await ledger.record({ day: "2026-01-01", calls: 1, inputElements: 784 });
    await ledger.record({ day: "2026-01-01", calls: 2, inputElements: 1568 });
    await ledger.record({ day: "2026-01-02", calls: 1, inputElements: 10 });
    const admin = await call(`/v1/admin/keys/${created.id}/usage`, { headers: ADMIN });
    expect(admin.status).toBe(200);
    expect(await admin.json<UsageReport>()).toMatchObject({
      days: [
        { day: "2026-01-01", calls: 3, input_elements: 2352 },
        { day: "2026-01-02", calls: 1, input_elements: 10 },
      ],
      total: { calls: 4, input_elements: 2362 },
    });
    const owner = await call("/v1/usage?from=2026-01-02", { headers: { authorization: `Bearer ${created.key}` } });
    expect((await owner.json<UsageReport>()).days).toEqual([{ day: "2026-01-02", calls: 1, input_elements: 10 }]);
    const bad = await call("/v1/usage?from=yesterday", { headers: { authorization: `Bearer ${created.key}` } });
    expect(bad.status).toBe(400);
    const unknown = await call("/v1/admin/keys/abc999/usage", { headers: ADMIN });
    expect(unknown.status).toBe(404);
  });

  it("accepts FEDGE_DEV_API_KEY as the bootstrap key only when FEDGE_ENV is local", async () => {
    const app = createApp();
    const devKey = "fk_dev_" + "x".repeat(32);
    const req = () => new Request("http://edge/v1/usage", { headers: { authorization: `Bearer ${devKey}` } });
    const ctx = { waitUntil() {}, passThroughOnException() {}, props: {} } as unknown as ExecutionContext;
    const notLocal = await app.fetch(req(), { ...env, FEDGE_ENV: "production", FEDGE_DEV_API_KEY: devKey }, ctx);
    expect(notLocal.status).toBe(401);
    const local = await app.fetch(req(), { ...env, FEDGE_ENV: "local", FEDGE_DEV_API_KEY: devKey }, ctx);
    expect(local.status).toBe(200);
    expect((await local.json<UsageReport>()).key.id).toBe("dev");
    const wrong = new Request("http://edge/v1/usage", {
      headers: { authorization: `Bearer fk_dev_${"y".repeat(32)}` },
    });
    expect((await app.fetch(wrong, { ...env, FEDGE_ENV: "local", FEDGE_DEV_API_KEY: devKey }, ctx)).status).toBe(401);
    // Cached from the local request above, yet still refused outside a local edge.
    const after = await app.fetch(req(), { ...env, FEDGE_ENV: "production", FEDGE_DEV_API_KEY: devKey }, ctx);
    expect(after.status).toBe(401);
  });
});
