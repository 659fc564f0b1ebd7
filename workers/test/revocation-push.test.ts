/**
 * Uploads are verified against the key each population's coordinator recorded at check-in, so revocation must reach every
 * coordinator: pushed by the device's DeviceRegistry instance to each population it joined, retried from an outbox.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { deviceStub, MAX_POPULATIONS_PER_DEVICE } from "../src/durable-objects/device-registry.ts";
import { migrateColumns } from "../src/durable-objects/round-coordinator/migrations.ts";
import { KeyStatusCache, type KeyStatus } from "../src/middleware/auth/index.ts";
import {
  ADMIN,
  adminPost,
  call,
  checkin,
  checkinBody,
  checkinRaw,
  coordinatorState,
  createApiKey,
  errorCode,
  makeUpdate,
  openRound,
  registerDevice,
  storedKeys,
  taskFor,
  uniqueModel,
  upload,
  uploadOk,
} from "./rounds-helpers.ts";

async function revokedAt(model: string, deviceId: string): Promise<number | null> {
  return runInDurableObject(env.ROUNDS.getByName(model), (_i, state) => {
    const row = state.storage.sql
      .exec<{ at: number }>("SELECT at FROM revoked_devices WHERE device_id = ?", deviceId)
      .toArray()[0];
    return row ? row.at : null;
  });
}

describe("device keys held by the coordinator", () => {
  it("verifies an upload with the key recorded at check-in, without reading the device's registry", async () => {
    const model = uniqueModel("key");
    const { key } = await createApiKey();
    const d = await registerDevice(key);
    const round = await openRound(model);
    const task = await taskFor(d, model);
    // The device's registry instance loses its record: the upload does not need it.
    await runInDurableObject(deviceStub(env, d.id), (_i, state) => state.storage.sql.exec("DELETE FROM device"));
    const receipt = await uploadOk(round.round_id, await makeUpdate(task, d));
    expect(receipt).toMatchObject({ device_id: d.id, duplicate: false });
  });

  it("pushes a revocation to every population the device joined; uploads and check-ins there are refused", async () => {
    const { key } = await createApiKey();
    const d = await registerDevice(key);
    const models = [uniqueModel("rev"), uniqueModel("rev")];
    const rounds = [];
    const tasks = [];
    for (const m of models) {
      rounds.push(await openRound(m));
      tasks.push(await taskFor(d, m));
    }
    const res = await adminPost(`/v1/admin/devices/${d.id}/revoke`);
    expect(res.status).toBe(200);
    for (const m of models) expect(await revokedAt(m, d.id)).toEqual(expect.any(Number));
    expect(await deviceStub(env, d.id).pendingRevocations()).toEqual([]);
    for (let i = 0; i < models.length; i++) {
      const before = await coordinatorState(models[i]!);
      const up = await upload(rounds[i]!.round_id, await makeUpdate(tasks[i]!, d));
      expect(up.status).toBe(403);
      expect(await errorCode(up)).toBe("device_revoked");
      expect(await coordinatorState(models[i]!)).toEqual(before);
      expect(await storedKeys(rounds[i]!.round_id)).toEqual([]);
    }
  });

  it("retries an undelivered revocation from the outbox by alarm", async () => {
    const { key } = await createApiKey();
    const d = await registerDevice(key);
    const model = uniqueModel("rev");
    const round = await openRound(model);
    const task = await taskFor(d, model);
    // As if the registry crashed right after recording the revocation, before pushing it.
    const at = Date.now();
    await runInDurableObject(deviceStub(env, d.id), (_i, state) => {
      state.storage.sql.exec("UPDATE device SET revoked_at = ?", at);
      state.storage.sql.exec("INSERT INTO revocation_outbox (model, at) SELECT model, ? FROM population", at);
      return state.storage.setAlarm(Date.now() + 60_000);
    });
    expect(await deviceStub(env, d.id).pendingRevocations()).toEqual([model]);
    expect(await revokedAt(model, d.id)).toBeNull();

    expect(await runDurableObjectAlarm(deviceStub(env, d.id))).toBe(true);
    expect(await revokedAt(model, d.id)).toBe(at);
    expect(await deviceStub(env, d.id).pendingRevocations()).toEqual([]);
    const up = await upload(round.round_id, await makeUpdate(task, d));
    expect(up.status).toBe(403);
    expect(await errorCode(up)).toBe("device_revoked");
  });

  it("refuses a check-in the coordinator learns of after the revocation reached it", async () => {
    const { key } = await createApiKey();
    const d = await registerDevice(key);
    const model = uniqueModel("rev");
    await openRound(model);
    // The push can arrive before the device's first check-in to this population (the race the registry orders).
    await env.ROUNDS.getByName(model).revokeDevice(d.id, Date.now());
    const res = await checkinRaw(d, checkinBody(d, model));
    expect(res.status).toBe(403);
    expect(await errorCode(res)).toBe("device_revoked");
    expect((await coordinatorState(model)).checkins).toBe(0);
  });

  it(`caps the populations one device joins at ${MAX_POPULATIONS_PER_DEVICE}`, async () => {
    const { id, key } = await createApiKey();
    const d = await registerDevice(key);
    const stub = deviceStub(env, d.id);
    const claim = (model: string) => {
      const { timestamp, signature } = checkinBody(d, model);
      return { model, apiKeyId: id, timestamp, signature };
    };
    for (let i = 0; i < MAX_POPULATIONS_PER_DEVICE; i++) {
      expect((await stub.checkinDevice(claim(`cap-${i}`))).ok).toBe(true);
    }
    expect(await stub.checkinDevice(claim("cap-one-more"))).toEqual({ ok: false, code: "too_many_populations" });
    // Joined populations stay reachable; a new one is refused with 409 and records nothing.
    expect((await stub.checkinDevice(claim("cap-0"))).ok).toBe(true);
    const extra = uniqueModel("cap");
    await openRound(extra);
    const res = await checkinRaw(d, checkinBody(d, extra));
    expect(res.status).toBe(409);
    expect(await errorCode(res)).toBe("conflict");
    expect((await coordinatorState(extra)).checkins).toBe(0);
    expect(await checkin(d, "cap-0")).toMatchObject({ selected: false, reason: "no_open_round" });
  });

  it("records a population only for a verified check-in of the device's own API key", async () => {
    const { key } = await createApiKey();
    const d = await registerDevice(key);
    const other = await createApiKey();
    const model = uniqueModel("pop");
    await openRound(model);
    const populations = () =>
      runInDurableObject(deviceStub(env, d.id), (_i, state) =>
        state.storage.sql
          .exec<{ model: string }>("SELECT model FROM population")
          .toArray()
          .map((r) => r.model),
      );
    const forged = { ...checkinBody(d, model), signature: checkinBody(d, "another-model").signature };
    const bad = await checkinRaw(d, forged);
    expect(bad.status).toBe(401);
    expect(await errorCode(bad)).toBe("bad_signature");
    const foreign = await checkinRaw({ ...d, apiKey: other.key }, checkinBody(d, model));
    expect(foreign.status).toBe(404);
    expect(await errorCode(foreign)).toBe("device_not_found");
    expect(await populations()).toEqual([]);
    expect((await coordinatorState(model)).checkins).toBe(0);
    await checkin(d, model);
    expect(await populations()).toEqual([model]);
  });
});

describe("API key revocation", () => {
  it("stops the uploads of devices that checked in under a revoked API key; an update accepted before keeps its receipt", async () => {
    const model = uniqueModel("keyrev");
    const { id, key } = await createApiKey();
    const a = await registerDevice(key);
    const b = await registerDevice(key);
    const round = await openRound(model);
    const ta = await taskFor(a, model);
    const tb = await taskFor(b, model);
    const ua = await makeUpdate(ta, a);
    await uploadOk(round.round_id, ua);

    const res = await call(`/v1/admin/keys/${id}`, { method: "DELETE", headers: ADMIN });
    expect(res.status).toBe(200);
    const before = await coordinatorState(model);
    // The revoked key itself no longer authenticates an upload ...
    const revoked = await upload(round.round_id, await makeUpdate(tb, b));
    expect(revoked.status).toBe(403);
    expect(await errorCode(revoked)).toBe("forbidden");
    // ... and a device that checked in under it is refused whatever key the upload carries.
    const other = await createApiKey();
    const up = await upload(round.round_id, await makeUpdate(tb, b), undefined, { apiKey: other.key });
    expect(up.status).toBe(403);
    expect(await errorCode(up)).toBe("forbidden");
    expect(await coordinatorState(model)).toEqual(before);
    expect(await storedKeys(round.round_id)).toHaveLength(1);
    const again = await upload(round.round_id, ua, undefined, { apiKey: other.key });
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ device_id: a.id, duplicate: true });
  });

  it("trusts a ledger answer for the TTL, and a revocation for good", async () => {
    let clock = 1_000;
    const cache = new KeyStatusCache({ ttlMs: 1_000, now: () => clock });
    let answer: KeyStatus = "active";
    let asked = 0;
    const ask = async () => {
      asked += 1;
      return answer;
    };
    expect(await cache.status("k1", ask)).toBe("active");
    answer = "revoked";
    clock += 999;
    expect(await cache.status("k1", ask)).toBe("active");
    expect(asked).toBe(1);
    clock += 1;
    expect(await cache.status("k1", ask)).toBe("revoked");
    answer = "active";
    clock += 10_000;
    expect(await cache.status("k1", ask)).toBe("revoked");
    expect(asked).toBe(2);
    cache.markRevoked("k2");
    expect(await cache.status("k2", ask)).toBe("revoked");
    expect(asked).toBe(2);
  });
});

describe("coordinator storage from an earlier version", () => {
  it("adds the new columns and renames the payload key column in place", async () => {
    const model = uniqueModel("mig");
    const stub = env.ROUNDS.getByName(model);
    const columns = await runInDurableObject(stub, (_instance, state) => {
      const sql = state.storage.sql;
      // (A fresh object has no tables until its first write; drop them in case.)
      sql.exec("DROP TABLE IF EXISTS rounds");
      sql.exec("DROP TABLE IF EXISTS checkins");
      sql.exec("DROP TABLE IF EXISTS updates");
      sql.exec("DROP TABLE IF EXISTS privacy_charges");
      sql.exec(`CREATE TABLE privacy_charges (round_seq INTEGER PRIMARY KEY, round_id TEXT NOT NULL UNIQUE,
        sampling_rate REAL NOT NULL, noise_multiplier REAL NOT NULL, count_noise_std REAL, privacy_mode TEXT NOT NULL,
        clip_rule TEXT NOT NULL, charged_at INTEGER NOT NULL)`);
      sql.exec(`CREATE TABLE rounds (seq INTEGER PRIMARY KEY, round_id TEXT NOT NULL UNIQUE, model TEXT NOT NULL,
        state TEXT NOT NULL, params TEXT NOT NULL, opened_at INTEGER NOT NULL, deadline INTEGER NOT NULL, closed_at INTEGER,
        close_reason TEXT, aggregated_at INTEGER, published_version INTEGER, checked_in INTEGER NOT NULL DEFAULT 0,
        selected INTEGER NOT NULL DEFAULT 0, accepted INTEGER NOT NULL DEFAULT 0)`);
      sql.exec(`CREATE TABLE checkins (round_seq INTEGER NOT NULL, device_id TEXT NOT NULL, selected INTEGER NOT NULL,
        nonce TEXT, at INTEGER NOT NULL, PRIMARY KEY (round_seq, device_id))`);
      sql.exec(`CREATE TABLE updates (round_seq INTEGER NOT NULL, device_id TEXT NOT NULL, n INTEGER NOT NULL,
        public_key TEXT NOT NULL, sha256 TEXT NOT NULL, byte_length INTEGER NOT NULL, r2_key TEXT NOT NULL,
        received_at INTEGER NOT NULL, PRIMARY KEY (round_seq, device_id), UNIQUE (round_seq, n))`);
      sql.exec(
        "INSERT INTO rounds (seq, round_id, model, state, params, opened_at, deadline, closed_at) VALUES (1, 'x_1', 'x', 'closed', '{}', 1, 2, 2)",
      );
      sql.exec(
        "INSERT INTO updates (round_seq, device_id, n, public_key, sha256, byte_length, r2_key, received_at) VALUES (1, 'dev_old', 1, 'k', 'ab', 3, 'rounds/x_1/dev_old/ab', 2)",
      );
      migrateColumns(sql);
      const names = (t: string) =>
        sql
          .exec<{ name: string }>(`PRAGMA table_info(${t})`)
          .toArray()
          .map((c) => c.name);
      return {
        rounds: names("rounds"),
        checkins: names("checkins"),
        updates: names("updates"),
        charges: names("privacy_charges"),
        sealed: sql.exec<{ sealed_at: number | null }>("SELECT sealed_at FROM rounds").one().sealed_at,
        release: sql.exec<{ dp_release: string | null }>("SELECT dp_release FROM rounds").one().dp_release,
        namedBy: sql.exec<{ named_by: string }>("SELECT named_by FROM updates").one().named_by,
        updateStore: sql.exec<{ u: number }>("SELECT update_store_payloads AS u FROM rounds").one().u,
      };
    });
    expect(columns.rounds).toContain("sealed_at");
    expect(columns.checkins).toContain("public_key");
    expect(columns.checkins).toContain("api_key_id");
    expect(columns.updates).toContain("storage_key");
    expect(columns.updates).not.toContain("r2_key");
    // An update accepted before updates were named by their signed digest keeps its whole-body name, and says so.
    expect(columns.namedBy).toBe("body");
    expect(columns.charges).toContain("distributed_noise"); // charges of earlier rounds: null, none was distributed
    // A round closed before payloads went through the store counts as sealed (its payloads are already in R2).
    expect(columns.sealed).toBe(2);
    // A round finished before releases were reported has none.
    expect(columns.rounds).toContain("dp_release");
    expect(columns.release).toBeNull();
    // A round from before the coordinator stored payloads looks for them in its UpdateStore shards too.
    expect(columns.updateStore).toBe(1);
  });
});
