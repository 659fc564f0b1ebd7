/**
 * The isolate-local key cache and token leases (middleware/auth/key-cache.ts) against the real AccountLedger
 * Durable Object. Two `KeyCache` instances stand for two isolates; an injected clock makes the TTL exact. The
 * usage buffer (middleware/metering) writes to the real ledger too.
 */
import { env } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { CreatedApiKey, UsageReport } from "@fedge/protocol";
import {
  AUTH_CACHE_TTL_MS,
  hashApiKey,
  KeyCache,
  keyCache,
  NEGATIVE_CACHE_TTL_MS,
  ledgerFor,
  type LeaseCall,
} from "../src/middleware/auth/index.ts";
import { UsageMeter, type RecordCall } from "../src/middleware/metering.ts";
import { ADMIN, call, createKey, errorCode } from "./registry-helpers.ts";

async function keyAndLedger(
  body: Record<string, unknown>,
): Promise<{ key: CreatedApiKey; hash: string; ledger: LeaseCall }> {
  const key = await createKey(body);
  const stub = ledgerFor(env, key.id);
  return { key, hash: await hashApiKey(key.key), ledger: (input) => stub.lease(input) };
}

/**
 * A settable clock (epoch ms) for the isolate's cache and, through the system time (the ledger uses its own clock,
 * `Date.now()` in the same isolate here), for the ledger too. Real timers keep running.
 */
function clock(start = Date.now()) {
  vi.useFakeTimers({ toFake: ["Date"], now: start });
  const c = {
    get t() {
      return Date.now();
    },
    set t(value: number) {
      vi.setSystemTime(value);
    },
    now: () => Date.now(),
  };
  return c;
}

afterEach(() => {
  vi.useRealTimers();
});

describe("key cache: revocation staleness", () => {
  it("keeps accepting a key revoked elsewhere for less than the TTL, then refuses it", async () => {
    const { key, hash, ledger } = await keyAndLedger({ name: "stale", rate_limit_per_minute: 600 });
    const t = clock();
    const isolate = new KeyCache({ now: t.now });
    expect((await isolate.admit(key.id, hash, true, ledger)).status).toBe("ok");
    // Another isolate revokes: this one is not told.
    await ledgerFor(env, key.id).revoke(t.t);
    t.t += AUTH_CACHE_TTL_MS - 1;
    expect((await isolate.admit(key.id, hash, true, ledger)).status).toBe("ok");
    t.t += 1;
    expect((await isolate.admit(key.id, hash, true, ledger)).status).toBe("revoked");
    expect(isolate.stats.ledgerCalls).toBe(2);
  });

  it("refuses a key at once in the isolate that revoked it (admin route)", async () => {
    const key = await createKey({ name: "revoke here", rate_limit_per_minute: 600 });
    const auth = { authorization: `Bearer ${key.key}` };
    expect((await call("/v1/usage", { headers: auth })).status).toBe(200);
    const before = keyCache.stats.hits;
    expect((await call("/v1/usage", { headers: auth })).status).toBe(200);
    expect(keyCache.stats.hits).toBe(before + 1); // the second request was answered from the lease
    expect((await call(`/v1/admin/keys/${key.id}`, { method: "DELETE", headers: ADMIN })).status).toBe(200);
    const res = await call("/v1/usage", { headers: auth });
    expect(res.status).toBe(403);
    expect(await errorCode(res)).toBe("forbidden");
  });

  it("does not cache a ledger answer that was in flight while the key was forgotten", async () => {
    const { key, hash, ledger } = await keyAndLedger({ name: "race", rate_limit_per_minute: 600 });
    const isolate = new KeyCache();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow: LeaseCall = async (input) => {
      const verdict = await ledger(input);
      await gate;
      return verdict;
    };
    const first = isolate.admit(key.id, hash, true, slow);
    await ledgerFor(env, key.id).revoke(Date.now());
    isolate.forget(key.id);
    release();
    expect((await first).status).toBe("ok"); // decided before the revocation
    expect((await isolate.admit(key.id, hash, true, ledger)).status).toBe("revoked");
  });

  it("refuses wrong secrets and unknown ids from a short negative cache, without disturbing the real key", async () => {
    const { key, hash, ledger } = await keyAndLedger({ name: "forged", rate_limit_per_minute: 600 });
    const t = clock();
    const isolate = new KeyCache({ now: t.now });
    expect((await isolate.admit(key.id, hash, true, ledger)).status).toBe("ok");
    // A cached key has one hash: other secrets for its id are refused here, with no ledger call.
    for (let i = 0; i < 5; i++) {
      const forged = await hashApiKey(`${key.key}x${i}`);
      expect((await isolate.admit(key.id, forged, true, ledger)).status).toBe("unknown");
    }
    expect(isolate.stats.ledgerCalls).toBe(1);
    expect((await isolate.admit(key.id, hash, true, ledger)).status).toBe("ok");
    expect(isolate.size).toBe(1);

    // A fresh isolate: the first wrong secret asks the ledger, which hands back the stored hash; the next wrong ones
    // are refused locally, and the right secret still gets through.
    const fresh = new KeyCache({ now: t.now });
    for (let i = 0; i < 5; i++) {
      expect((await fresh.admit(key.id, await hashApiKey(`${key.key}y${i}`), true, ledger)).status).toBe("unknown");
    }
    expect(fresh.stats).toMatchObject({ ledgerCalls: 1, negativeHits: 4 });
    expect((await fresh.admit(key.id, hash, true, ledger)).status).toBe("ok");
    expect(fresh.stats.ledgerCalls).toBe(2);

    // An id with no key: one ledger call per NEGATIVE_CACHE_TTL_MS, however many requests.
    const ghost = ledgerFor(env, "ghostkey0000000");
    const ghostLedger: LeaseCall = (input) => ghost.lease(input);
    const calls = fresh.stats.ledgerCalls;
    for (let i = 0; i < 10; i++) {
      expect((await fresh.admit("ghostkey0000000", await hashApiKey(`g${i}`), true, ghostLedger)).status).toBe(
        "unknown",
      );
    }
    expect(fresh.stats.ledgerCalls).toBe(calls + 1);
    t.t += NEGATIVE_CACHE_TTL_MS;
    await fresh.admit("ghostkey0000000", hash, true, ghostLedger);
    expect(fresh.stats.ledgerCalls).toBe(calls + 2);
  });
});

describe("key cache: rate-limit leases", () => {
  it("uses the ledger's own clock: an isolate whose clock runs ahead mints no tokens", async () => {
    const { key, hash } = await keyAndLedger({ name: "fast clock", rate_limit_per_minute: 2 });
    const stub = ledgerFor(env, key.id);
    const lease = (now: number) =>
      stub.lease({ hash, now, rateLimit: true, maxTokens: 1, leaseMs: 0, giveBack: 0 } as Parameters<
        typeof stub.lease
      >[0]);
    expect((await lease(Date.now())).status).toBe("ok");
    expect((await lease(Date.now())).status).toBe("ok");
    // An hour ahead, then back: neither refills the bucket.
    expect((await lease(Date.now() + 3_600_000)).status).toBe("rate_limited");
    expect((await lease(Date.now())).status).toBe("rate_limited");
  });

  it("never admits more than the bucket across isolates (tokens are debited before they are spent)", async () => {
    const { key, hash, ledger } = await keyAndLedger({ name: "two isolates", rate_limit_per_minute: 30 });
    const t = clock(); // frozen: no refill during the test
    // ttl 10 s: a lease is what 30/min refills in 10 s = 5 tokens.
    const a = new KeyCache({ now: t.now, ttlMs: 10_000 });
    const b = new KeyCache({ now: t.now, ttlMs: 10_000 });
    let admitted = 0;
    let refusedBoth = false;
    for (let i = 0; i < 100 && !refusedBoth; i++) {
      const va = await a.admit(key.id, hash, true, ledger);
      const vb = await b.admit(key.id, hash, true, ledger);
      admitted += Number(va.status === "ok") + Number(vb.status === "ok");
      refusedBoth = va.status === "rate_limited" && vb.status === "rate_limited";
    }
    expect(refusedBoth).toBe(true);
    expect(admitted).toBe(30);
    // 30 tokens in leases of 5: 6 granting calls, and one refusal per isolate.
    expect(a.stats.ledgerCalls + b.stats.ledgerCalls).toBe(8);
  });

  it("gives the unspent tokens of an expired lease back to the bucket", async () => {
    const { key, hash, ledger } = await keyAndLedger({ name: "give back", rate_limit_per_minute: 30 });
    const t = clock();
    const a = new KeyCache({ now: t.now, ttlMs: 10_000 });
    const b = new KeyCache({ now: t.now, ttlMs: 10_000 });
    // Leases of 5 (what 30/min refills in 10 s); each request spends 1 of its isolate's lease.
    expect(await a.admit(key.id, hash, true, ledger)).toMatchObject({ status: "ok", remaining: 4 + 25 });
    expect(await b.admit(key.id, hash, true, ledger)).toMatchObject({ status: "ok", remaining: 4 + 20 });
    t.t += 10_000; // a's lease expired; the bucket refilled 5: 25
    // a gives its 4 back (29), then leases 5 again (24): 4 leased + 24 in the bucket. Without the give-back: 4 + 20.
    expect(await a.admit(key.id, hash, true, ledger)).toMatchObject({ status: "ok", remaining: 4 + 24 });
  });

  it("answers 429 locally until the bucket has a token, with a Retry-After that counts down", async () => {
    const { key, hash, ledger } = await keyAndLedger({ name: "blocked", rate_limit_per_minute: 2 });
    const t = clock();
    const a = new KeyCache({ now: t.now, ttlMs: 60_000 });
    expect((await a.admit(key.id, hash, true, ledger)).status).toBe("ok");
    expect((await a.admit(key.id, hash, true, ledger)).status).toBe("ok");
    expect(await a.admit(key.id, hash, true, ledger)).toMatchObject({ status: "rate_limited", retryAfterSeconds: 30 });
    const calls = a.stats.ledgerCalls;
    t.t += 10_000;
    expect(await a.admit(key.id, hash, true, ledger)).toMatchObject({ status: "rate_limited", retryAfterSeconds: 20 });
    expect(a.stats.ledgerCalls).toBe(calls);
    t.t += 20_000; // one token refilled
    expect((await a.admit(key.id, hash, true, ledger)).status).toBe("ok");
    expect(a.stats.ledgerCalls).toBe(calls + 1);
  });

  it("shares one ledger call between concurrent misses of a key", async () => {
    const { key, hash, ledger } = await keyAndLedger({ name: "burst", rate_limit_per_minute: 6000 });
    const a = new KeyCache();
    const verdicts = await Promise.all(Array.from({ length: 20 }, () => a.admit(key.id, hash, true, ledger)));
    expect(verdicts.every((v) => v.status === "ok")).toBe(true);
    // 6000/min over 1 s = 100 tokens, capped at 64 per lease: one call serves all 20.
    expect(a.stats.ledgerCalls).toBe(1);
  });

  it("keeps 429 + Retry-After through the route when the lease is spent", async () => {
    const key = await createKey({ name: "route limit", rate_limit_per_minute: 1 });
    const auth = { authorization: `Bearer ${key.key}` };
    expect((await call("/v1/usage", { headers: auth })).status).toBe(200);
    const limited = await call("/v1/usage", { headers: auth });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(59);
    expect(await errorCode(limited)).toBe("rate_limited");
  });
});

describe("usage buffer", () => {
  it("writes a burst of metered calls with one ledger call per key and day", async () => {
    const key = await createKey({ name: "metered" });
    const meter = new UsageMeter({ flushMs: 20 });
    const record = (id: string, u: { day: string; calls: number; inputElements: number }) =>
      ledgerFor(env, id).record(u);
    const flushes = Array.from({ length: 10 }, () =>
      meter.add(key.id, "2026-03-01", { calls: 1, inputElements: 784 }, record),
    );
    const other = meter.add(key.id, "2026-03-02", { calls: 2, inputElements: 10 }, record);
    await Promise.all([...flushes, other]);
    expect(meter.writes).toBe(2);
    const report = (await ledgerFor(env, key.id).usage({})) as UsageReport;
    expect(report.days).toEqual([
      { day: "2026-03-01", calls: 10, input_elements: 7840 },
      { day: "2026-03-02", calls: 2, input_elements: 10 },
    ]);
  });

  it("settles buffered usage before a read in the same isolate", async () => {
    const key = await createKey({ name: "settle" });
    const meter = new UsageMeter({ flushMs: 60_000 });
    const record = (id: string, u: { day: string; calls: number; inputElements: number }) =>
      ledgerFor(env, id).record(u);
    void meter.add(key.id, "2026-03-03", { calls: 3, inputElements: 30 }, record);
    expect((await ledgerFor(env, key.id).usage({}))?.total.calls).toBe(0);
    await meter.settle(record);
    expect((await ledgerFor(env, key.id).usage({}))?.total).toEqual({ calls: 3, input_elements: 30 });
    expect(meter.writes).toBe(1);
  });
});

describe("usage buffer retries", () => {
  it("retries failed writes with the same id: a refused call and a lost answer each count exactly once", async () => {
    const key = await createKey({ name: "flaky ledger" });
    const meter = new UsageMeter({ flushMs: 5, retryBaseMs: 5 });
    const ledger = ledgerFor(env, key.id);
    let calls = 0;
    const record: RecordCall = async (id, u) => {
      calls++;
      if (calls === 1) throw new Error("injected: the ledger did not answer");
      if (calls === 2) {
        await ledgerFor(env, id).record(u);
        throw new Error("injected: the answer was lost after the write");
      }
      await ledgerFor(env, id).record(u);
    };
    await meter.add(key.id, "2026-04-01", { calls: 7, inputElements: 70 }, record);
    expect(calls).toBe(3);
    expect(meter.dropped).toBe(0);
    expect((await ledger.usage({}))?.total).toEqual({ calls: 7, input_elements: 70 });
  });

  it("gives a write up after its attempts, and says so", async () => {
    const key = await createKey({ name: "dead ledger" });
    const meter = new UsageMeter({ flushMs: 1, retryBaseMs: 1, attempts: 3 });
    let calls = 0;
    await meter.add(key.id, "2026-04-02", { calls: 1, inputElements: 1 }, async () => {
      calls++;
      throw new Error("injected: down");
    });
    expect(calls).toBe(3);
    expect(meter.dropped).toBe(1);
  });
});

describe("key cache options", () => {
  it("rejects bad options", () => {
    expect(() => new KeyCache({ ttlMs: -1 })).toThrow(/ttlMs/);
    expect(() => new KeyCache({ maxLeaseTokens: 0 })).toThrow(/maxLeaseTokens/);
    expect(() => new KeyCache({ maxEntries: 0 })).toThrow(/maxEntries/);
    expect(() => new UsageMeter({ flushMs: -1 })).toThrow(/flushMs/);
    expect(() => new UsageMeter({ attempts: 0 })).toThrow(/attempts/);
  });
});
