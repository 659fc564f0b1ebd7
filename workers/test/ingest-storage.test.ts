/**
 * Where accepted payloads live: durable in the coordinator's SQLite, written in the commit's own transaction, when the
 * upload is acknowledged; sealed into R2 segment objects when the round closes (or sooner, past a threshold); read back
 * byte for byte from either place. Rounds from before keep theirs in UpdateStore shards, still read, sealed and purged.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { parseRoundId, readUpdateStream, type AcceptedUpdatePage, type RoundStatus } from "@fedge/protocol";
import type { RoundCoordinator } from "../src/durable-objects/round-coordinator/index.ts";
import { SEAL_THRESHOLD_BYTES as COORDINATOR_SEAL_BYTES } from "../src/durable-objects/round-coordinator/payloads.ts";
import { DEFAULT_UPDATE_RETENTION_DAYS, updateRetentionMs } from "../src/training/retention.ts";
import {
  SEAL_THRESHOLD_BYTES,
  UPDATE_STORE_SHARDS,
  updateShard,
  updateStorageKey,
  updateStoreStub,
} from "../src/durable-objects/update-store.ts";
import {
  adminGet,
  adminPost,
  createApiKey,
  errorCode,
  makeUpdate,
  openRound,
  r2Keys,
  registerDevice,
  storedKeys,
  taskFor,
  uniqueModel,
  uploadOk,
} from "./rounds-helpers.ts";

async function streamFrames(roundId: string): Promise<{ publicKey: Uint8Array; update: Uint8Array }[]> {
  const res = await adminGet(`/v1/admin/rounds/${roundId}/update-stream`);
  expect(res.status).toBe(200);
  const frames = [];
  for await (const f of readUpdateStream(res.body!)) frames.push({ publicKey: f.publicKey, update: f.update.slice() });
  return frames;
}

/** The payloads of a round its coordinator holds: pending in SQLite, sealed, and its segments. */
function coordinatorCounts(roundId: string) {
  const { model, seq } = parseRoundId(roundId)!;
  return runInDurableObject(env.ROUNDS.getByName(model), (c: RoundCoordinator) => c["payloads"].counts(seq));
}

async function shardCounts(roundId: string) {
  const totals = { pending: 0, sealed: 0, segments: 0 };
  for (let k = 0; k < UPDATE_STORE_SHARDS; k++) {
    const c = await updateStoreStub(env, roundId, k).counts();
    totals.pending += c.pending;
    totals.sealed += c.sealed;
    totals.segments += c.segments;
  }
  return totals;
}

describe("update storage", () => {
  it("spreads devices over the shards deterministically", () => {
    const ids = Array.from({ length: 1600 }, (_, i) => `dev_${i.toString(36).padStart(20, "x")}`);
    const counts = new Array<number>(UPDATE_STORE_SHARDS).fill(0);
    for (const id of ids) {
      const k = updateShard(id);
      expect(updateShard(id)).toBe(k);
      counts[k]! += 1;
    }
    // 100 expected per shard; every shard gets a fair share (a 5σ binomial band is about ±48).
    for (const c of counts) expect(Math.abs(c - 100)).toBeLessThan(50);
  });

  it("keeps accepted payloads in SQLite until the round closes, then seals them into R2 and still serves them", async () => {
    const model = uniqueModel("store");
    const { key } = await createApiKey();
    const devices = await Promise.all(Array.from({ length: 6 }, () => registerDevice(key)));
    const round = await openRound(model, { update_length: 64 });
    const uploads = new Map<string, Uint8Array>();
    for (const d of devices) {
      const bytes = await makeUpdate(await taskFor(d, model), d);
      await uploadOk(round.round_id, bytes);
      uploads.set(d.id, bytes);
    }
    // Acknowledged means durable in the coordinator; nothing has gone to R2 yet, and no UpdateStore shard was used.
    expect(await storedKeys(round.round_id)).toHaveLength(6);
    expect(await r2Keys(round.round_id)).toEqual([]);
    expect(await coordinatorCounts(round.round_id)).toEqual({ pending: 6, sealed: 0, segments: 0 });
    expect(await shardCounts(round.round_id)).toEqual({ pending: 0, sealed: 0, segments: 0 });
    const pending = await adminGet(`/v1/admin/rounds/${round.round_id}/updates/${devices[0]!.id}`);
    expect(new Uint8Array(await pending.arrayBuffer())).toEqual(uploads.get(devices[0]!.id));

    expect((await adminPost(`/v1/admin/rounds/${round.round_id}/close`)).status).toBe(200);
    const before = await streamFrames(round.round_id);
    expect(before).toHaveLength(6);

    // The close armed the coordinator's alarm, which seals the round's payloads into R2.
    const coordinator = env.ROUNDS.getByName(model);
    await runDurableObjectAlarm(coordinator);
    const counts = await coordinatorCounts(round.round_id);
    expect(counts).toMatchObject({ pending: 0, sealed: 6 });
    const segments = await r2Keys(round.round_id);
    expect(segments.length).toBe(counts.segments);
    expect(segments.every((k) => k.startsWith(`rounds/${round.round_id}/segments/`))).toBe(true);
    const sealedAt = await runInDurableObject(coordinator, (_i, state) =>
      state.storage.sql
        .exec<{ sealed_at: number | null }>("SELECT sealed_at FROM rounds WHERE round_id = ?", round.round_id)
        .one(),
    );
    expect(sealedAt.sealed_at).toEqual(expect.any(Number));
    // No SQLite copy is left behind.
    const parts = await runInDurableObject(coordinator, (_i, state) =>
      state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM payload_parts").one(),
    );
    expect(parts.n).toBe(0);

    // Served identically from R2: the stream, and each update on its own.
    const after = await streamFrames(round.round_id);
    expect(after).toEqual(before);
    for (const d of devices) {
      const res = await adminGet(`/v1/admin/rounds/${round.round_id}/updates/${d.id}`);
      expect(res.status).toBe(200);
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(uploads.get(d.id));
    }
    const page = await (await adminGet(`/v1/admin/rounds/${round.round_id}/updates`)).json<AcceptedUpdatePage>();
    expect(page.items.map((u) => u.device_id).sort()).toEqual(devices.map((d) => d.id).sort());
  });

  it("splits large payloads into parts, seals incrementally, removes, and reads payloads stored before it existed", async () => {
    const roundId = `${uniqueModel("shard")}_1`;
    const store = updateStoreStub(env, roundId, 3);
    const big = crypto.getRandomValues(new Uint8Array(65536)).slice();
    const large = new Uint8Array(2.5 * 1024 * 1024);
    for (let at = 0; at < large.length; at += big.length) large.set(big.subarray(0, large.length - at), at);
    large[large.length - 1] = 7;
    const small = new Uint8Array([1, 2, 3, 4, 5]);
    const keyLarge = updateStorageKey(roundId, "dev_large", "aa");
    const keySmall = updateStorageKey(roundId, "dev_small", "bb");

    await store.put(roundId, keyLarge, large);
    await store.put(roundId, keyLarge, new Uint8Array(3)); // a retry with the same key stores nothing new
    const parts = await runInDurableObject(store, (_i, state) =>
      state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM parts").one(),
    );
    expect(parts.n).toBe(3);
    expect(await store.read(keyLarge)).toEqual(large);

    expect(await store.seal()).toBe(1);
    await store.put(roundId, keySmall, small);
    expect(await store.counts()).toEqual({ pending: 1, sealed: 1, segments: 1 });
    expect(await store.seal()).toBe(1);
    expect(await store.seal()).toBe(0);
    expect(await store.counts()).toEqual({ pending: 0, sealed: 2, segments: 2 });
    expect(await store.read(keyLarge)).toEqual(large);
    expect(await store.read(keySmall)).toEqual(small);

    await store.remove(keySmall);
    expect(await store.read(keySmall)).toBeNull();

    // A payload written to R2 one object per update (before UpdateStore) is still found under its key.
    const legacyKey = updateStorageKey(roundId, "dev_legacy", "cc");
    await env.UPDATES.put(legacyKey, new Uint8Array([9, 8, 7]));
    expect(await store.read(legacyKey)).toEqual(new Uint8Array([9, 8, 7]));
    expect(await store.read(updateStorageKey(roundId, "dev_nobody", "dd"))).toBeNull();
  });

  it("seals a shard by its own alarm once its pending bytes pass the threshold", async () => {
    const roundId = `${uniqueModel("shard")}_1`;
    const store = updateStoreStub(env, roundId, 0);
    const mib = new Uint8Array(1024 * 1024);
    const n = SEAL_THRESHOLD_BYTES / mib.length;
    for (let i = 0; i < n - 1; i++) await store.put(roundId, updateStorageKey(roundId, `dev_${i}`, "aa"), mib);
    // Below the threshold no alarm is armed.
    expect(await runInDurableObject(store, (_i, state) => state.storage.getAlarm())).toBeNull();
    await store.put(roundId, updateStorageKey(roundId, "dev_last", "aa"), mib);
    expect(await runInDurableObject(store, (_i, state) => state.storage.getAlarm())).toEqual(expect.any(Number));
    expect(await runDurableObjectAlarm(store)).toBe(true);
    // 64 MiB pending make two 32 MiB segments.
    expect(await store.counts()).toEqual({ pending: 0, sealed: n, segments: 2 });
    expect(await store.read(updateStorageKey(roundId, "dev_last", "aa"))).toEqual(mib);
  });

  it("serves a payload accepted before the coordinator stored payloads from the round's UpdateStore shard", async () => {
    const model = uniqueModel("legacy");
    const { key } = await createApiKey();
    const device = await registerDevice(key);
    const round = await openRound(model, { update_length: 16 });
    const bytes = await makeUpdate(await taskFor(device, model), device);
    const receipt = await uploadOk(round.round_id, bytes);
    // As the code before stored it: the payload in the device's UpdateStore shard, only the index row here.
    const coordinator = env.ROUNDS.getByName(model);
    await runInDurableObject(coordinator, (_i, state) => {
      state.storage.sql.exec("DELETE FROM payload_parts");
      state.storage.sql.exec("UPDATE rounds SET update_store_payloads = 1");
    });
    const stored = updateStorageKey(round.round_id, device.id, receipt.sha256);
    await updateStoreStub(env, round.round_id, updateShard(device.id)).put(round.round_id, stored, bytes);
    const one = await adminGet(`/v1/admin/rounds/${round.round_id}/updates/${device.id}`);
    expect(new Uint8Array(await one.arrayBuffer())).toEqual(bytes);
    expect((await adminPost(`/v1/admin/rounds/${round.round_id}/close`)).status).toBe(200);
    expect((await streamFrames(round.round_id)).map((f) => f.update)).toEqual([bytes]);
    // The round's seal seals its UpdateStore shards too; the payload is still served, now from R2.
    expect(await runDurableObjectAlarm(coordinator)).toBe(true);
    expect(await shardCounts(round.round_id)).toEqual({ pending: 0, sealed: 1, segments: 1 });
    expect((await streamFrames(round.round_id)).map((f) => f.update)).toEqual([bytes]);
  });

  it("seals a collecting round's payloads once they pass the threshold, bounding the coordinator's storage", async () => {
    const model = uniqueModel("bound");
    const { key } = await createApiKey();
    const devices = await Promise.all(Array.from({ length: 2 }, () => registerDevice(key)));
    const round = await openRound(model, { update_length: 32 });
    const coordinator = env.ROUNDS.getByName(model);
    const first = await makeUpdate(await taskFor(devices[0]!, model), devices[0]!);
    await uploadOk(round.round_id, first);
    // As if the round had already taken the threshold's worth in 1 MiB payloads (written as a commit writes them).
    const mib = new Uint8Array(1024 * 1024).fill(3);
    const n = COORDINATOR_SEAL_BYTES / mib.length;
    // One of them spans three ≤ 1 MiB rows (a row or BLOB is capped at 2 MB).
    const big = crypto.getRandomValues(new Uint8Array(65536));
    const large = new Uint8Array(2.5 * 1024 * 1024).map((_, i) => big[i % big.length]!);
    const readBack = await runInDurableObject(coordinator, (c: RoundCoordinator, state) => {
      state.storage.transactionSync(() => {
        c["payloads"].insert(1, "dev_large", large);
        for (let i = 0; i < n; i++) c["payloads"].insert(1, `dev_filler${i}`, mib);
      });
      return c["payloads"].locate(1, "dev_large");
    });
    expect(readBack).toEqual({ at: "sqlite", bytes: large });
    const alarmBefore = await runInDurableObject(coordinator, (_i, state) => state.storage.getAlarm());
    // The next accepted upload asks for the alarm now (the round's deadline is an hour away).
    const second = await makeUpdate(await taskFor(devices[1]!, model), devices[1]!);
    await uploadOk(round.round_id, second);
    const alarm = await runInDurableObject(coordinator, (_i, state) => state.storage.getAlarm());
    expect(alarm).toBeLessThan(alarmBefore!);
    expect(await runDurableObjectAlarm(coordinator)).toBe(true);
    // Over 64 MiB pending make at least three segments of ≤ 32 MiB; the round still collects, its deadline alarm back.
    const counts = await coordinatorCounts(round.round_id);
    expect(counts).toMatchObject({ pending: 0, sealed: n + 3 });
    expect(counts.segments).toBeGreaterThanOrEqual(3);
    expect((await r2Keys(round.round_id)).length).toBe(counts.segments);
    expect((await adminGet(`/v1/admin/rounds/${round.round_id}`)).status).toBe(200);
    expect(await runInDurableObject(coordinator, (_i, state) => state.storage.getAlarm())).toBe(alarmBefore);
    // Read back from R2.
    const sealed = await runInDurableObject(coordinator, (c: RoundCoordinator) => c["payloads"].locate(1, "dev_large"));
    if (sealed?.at !== "r2") throw new Error(`dev_large is not sealed: ${JSON.stringify(sealed)}`);
    const range = await env.UPDATES.get(sealed.key, { range: { offset: sealed.offset, length: sealed.length } });
    expect(new Uint8Array(await range!.arrayBuffer())).toEqual(large);
    for (const [d, bytes] of [
      [devices[0]!, first],
      [devices[1]!, second],
    ] as const) {
      const res = await adminGet(`/v1/admin/rounds/${round.round_id}/updates/${d.id}`);
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(bytes);
    }
  });

  it("deletes an aggregated round's payloads once the retention has passed; the metadata stays, payload reads are 404", async () => {
    const model = uniqueModel("retain");
    const { key } = await createApiKey();
    const devices = await Promise.all(Array.from({ length: 3 }, () => registerDevice(key)));
    const round = await openRound(model, { update_length: 32 });
    for (const d of devices) await uploadOk(round.round_id, await makeUpdate(await taskFor(d, model), d));
    await adminPost(`/v1/admin/rounds/${round.round_id}/close`);
    const coordinator = env.ROUNDS.getByName(model);
    await runDurableObjectAlarm(coordinator);
    expect((await r2Keys(round.round_id)).length).toBeGreaterThan(0);
    const aggregated = await (await adminPost(`/v1/admin/rounds/${round.round_id}/aggregated`)).json<RoundStatus>();
    expect(aggregated).toMatchObject({ state: "aggregated", payloads_purged_at: null });
    // The alarm waits for the retention (7 days by default), counted from the close.
    const due = Date.parse(aggregated.closed_at!) + DEFAULT_UPDATE_RETENTION_DAYS * 86_400_000;
    expect(await runInDurableObject(coordinator, (_i, state) => state.storage.getAlarm())).toBe(due);
    // Nothing is deleted before then.
    await runDurableObjectAlarm(coordinator);
    expect(await storedKeys(round.round_id)).toHaveLength(3);

    // A round opened before the coordinator stored payloads may hold some in its UpdateStore shards: they go too.
    const legacy = updateStorageKey(round.round_id, "dev_legacylegacylegacy0", "ee");
    await runInDurableObject(coordinator, (_i, state) => {
      state.storage.sql.exec("UPDATE rounds SET update_store_payloads = 1 WHERE round_id = ?", round.round_id);
    });
    await updateStoreStub(env, round.round_id, 5).put(round.round_id, legacy, new Uint8Array([1, 2, 3]));
    expect(await storedKeys(round.round_id)).toHaveLength(4);

    // As if the retention had passed.
    await runInDurableObject(coordinator, async (_i, state) => {
      state.storage.sql.exec("UPDATE rounds SET closed_at = closed_at - ?", 8 * 86_400_000);
      await state.storage.setAlarm(Date.now());
    });
    expect(await runDurableObjectAlarm(coordinator)).toBe(true);
    const status = await (await adminGet(`/v1/admin/rounds/${round.round_id}`)).json<RoundStatus>();
    expect(status.payloads_purged_at).toEqual(expect.any(String));
    expect(await storedKeys(round.round_id)).toEqual([]);
    expect(await r2Keys(round.round_id)).toEqual([]);
    expect(await shardCounts(round.round_id)).toEqual({ pending: 0, sealed: 0, segments: 0 });
    expect(await coordinatorCounts(round.round_id)).toEqual({ pending: 0, sealed: 0, segments: 0 });

    const one = await adminGet(`/v1/admin/rounds/${round.round_id}/updates/${devices[0]!.id}`);
    expect(one.status).toBe(404);
    expect(await errorCode(one)).toBe("not_found");
    const stream = await adminGet(`/v1/admin/rounds/${round.round_id}/update-stream`);
    expect(stream.status).toBe(404);
    expect(await stream.json()).toMatchObject({ error: { message: expect.stringMatching(/retention/) } });
    const page = await (await adminGet(`/v1/admin/rounds/${round.round_id}/updates`)).json<AcceptedUpdatePage>();
    expect(page.items.map((u) => u.device_id).sort()).toEqual(devices.map((d) => d.id).sort());
    // No alarm is left once nothing is due.
    expect(await runInDurableObject(coordinator, (_i, state) => state.storage.getAlarm())).toBeNull();
  });

  it("runs a purge after a seal in progress, so no segment outlives the purge, and stores nothing after it", async () => {
    const roundId = `${uniqueModel("sealpurge")}_1`;
    const store = updateStoreStub(env, roundId, 3);
    const keys = ["dev_a", "dev_b", "dev_c"].map((d) => updateStorageKey(roundId, d, "ab".repeat(32)));
    for (const k of keys) await store.put(roundId, k, new Uint8Array(4096).fill(7));
    expect(await store.counts()).toEqual({ pending: 3, sealed: 0, segments: 0 });
    // The seal's R2 write is in flight when the purge arrives (the alarm and a coordinator can overlap).
    const [moved, purged] = await Promise.all([store.seal(), store.purge()]);
    expect(moved).toBe(3);
    expect(purged).toBe(3);
    expect(await r2Keys(roundId)).toEqual([]);
    expect(await store.counts()).toEqual({ pending: 0, sealed: 0, segments: 0 });
    // An upload that stores its payload after the purge (its commit will be refused) leaves nothing behind.
    expect(await store.put(roundId, updateStorageKey(roundId, "dev_late", "cd".repeat(32)), new Uint8Array(8))).toBe(
      false,
    );
    expect(await store.counts()).toEqual({ pending: 0, sealed: 0, segments: 0 });
    expect(await store.read(updateStorageKey(roundId, "dev_late", "cd".repeat(32)))).toBeNull();
  });

  it("leaves no storage in a shard that never stored anything, whatever it is asked", async () => {
    const roundId = `${uniqueModel("empty")}_1`;
    const store = updateStoreStub(env, roundId, 9);
    expect(await store.seal()).toBe(0);
    expect(await store.purge()).toBe(0);
    expect(await store.counts()).toEqual({ pending: 0, sealed: 0, segments: 0 });
    expect(await store.read(updateStorageKey(roundId, "dev_x", "ff"))).toBeNull();
    await store.remove(updateStorageKey(roundId, "dev_x", "ff"));
    const tables = await runInDurableObject(store, (_i, state) =>
      state.storage.sql.exec("SELECT name FROM sqlite_master WHERE type = 'table'").toArray(),
    );
    expect(tables.filter((t) => !String(t.name).startsWith("_cf_"))).toEqual([]);
  });

  it("reads the retention from FEDGE_UPDATE_RETENTION_DAYS, refusing nonsense", () => {
    const day = 86_400_000;
    expect(updateRetentionMs(undefined)).toEqual({ ms: DEFAULT_UPDATE_RETENTION_DAYS * day });
    expect(updateRetentionMs("0")).toEqual({ ms: 0 });
    expect(updateRetentionMs("0.5")).toEqual({ ms: day / 2 });
    for (const bad of ["-1", "abc", "Infinity"]) {
      const r = updateRetentionMs(bad);
      expect(r.ms).toBe(DEFAULT_UPDATE_RETENTION_DAYS * day);
      expect(r.error).toMatch(/FEDGE_UPDATE_RETENTION_DAYS must be a number of days >= 0/);
    }
  });
});
