/**
 * A device's repeat check-ins to a population its registry already recorded skip the registry
 * (workers/src/training/verified-devices.ts): checked in the isolate under the key the registry verified, refused by the
 * population's coordinator (or the device's shard) once a revocation reached it. These tests go through the check-in
 * route; the registry is revoked directly where another isolate's admin call would have done it, so this isolate keeps
 * what it remembered about the device.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import nacl from "tweetnacl";
import type { CheckinResponse, PopulationSharding } from "@fedge/protocol";
import { deviceStub } from "../src/durable-objects/device-registry.ts";
import {
  ADMIN,
  adminPost,
  call,
  checkin,
  checkinBody,
  checkinRaw,
  createApiKey,
  errorCode,
  makeUpdate,
  openRound,
  registerDevice,
  taskFor,
  uniqueModel,
  upload,
} from "./rounds-helpers.ts";

/** Check-in rows of a population, over its own object and its shards. */
async function checkinRows(model: string, shards: number): Promise<number> {
  const names = shards === 1 ? [model] : Array.from({ length: shards }, (_, i) => `${model}#${i}`);
  let n = 0;
  for (const name of names) {
    n += await runInDurableObject(env.ROUNDS.getByName(name), (_i, state) => {
      const sql = state.storage.sql;
      if (sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'checkins'").toArray().length === 0) return 0;
      return sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM checkins").one().n;
    });
  }
  return n;
}

async function shardTo(model: string, shards: number): Promise<void> {
  const res = await call(`/v1/admin/populations/${model}/sharding`, {
    method: "PUT",
    headers: { ...ADMIN, "content-type": "application/json" },
    body: JSON.stringify({ shards }),
  });
  expect(res.status, await res.clone().text()).toBe(200);
  expect((await res.json<PopulationSharding>()).shards).toBe(shards);
}

describe("repeat check-ins of a device the registry verified", () => {
  it("are answered without the device's registry once it recorded the population", async () => {
    const { key } = await createApiKey();
    const [seen, unseen] = [await registerDevice(key), await registerDevice(key)];
    const model = uniqueModel("known");
    const r1 = await openRound(model);
    const first = await taskFor(seen, model);
    // Both registry records go away: only a check-in that skips the registry can still be answered.
    for (const d of [seen, unseen]) {
      await runInDurableObject(deviceStub(env, d.id), (_i, state) => state.storage.sql.exec("DELETE FROM device"));
    }
    const again = await checkin(seen, model);
    expect(again).toMatchObject({ selected: true, task: { round_id: r1.round_id, nonce: first.nonce } });
    const res = await checkinRaw(unseen, checkinBody(unseen, model));
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe("device_not_found");
  });

  for (const shards of [1, 4]) {
    it(`are refused at once after a revocation (S = ${shards}), and the refusal changes nothing`, async () => {
      const { key } = await createApiKey();
      const d = await registerDevice(key);
      const model = uniqueModel("revoked");
      if (shards > 1) await shardTo(model, shards);
      const r1 = await openRound(model);
      await taskFor(d, model);
      expect((await adminPost(`/v1/admin/rounds/${r1.round_id}/close`)).status).toBe(200);
      const r2 = await openRound(model);
      // Round 2: a check-in this isolate answers from what it remembers.
      const task = await taskFor(d, model);
      expect(task.round_id).toBe(r2.round_id);
      const rows = await checkinRows(model, shards);
      expect(rows).toBe(2);

      // Revoked through its registry, as an admin call served by another isolate does it.
      const revoked = await deviceStub(env, d.id).revokeDevice(Date.now());
      expect(revoked?.device.revoked_at).toEqual(expect.any(Number));
      expect(revoked?.unreached).toEqual([]);
      const res = await checkinRaw(d, checkinBody(d, model));
      expect(res.status).toBe(403);
      expect(await errorCode(res)).toBe("device_revoked");
      expect(await checkinRows(model, shards)).toBe(rows);
      // Its upload with the round-2 task is refused too.
      const up = await upload(r2.round_id, await makeUpdate(task, d));
      expect(up.status).toBe(403);
      expect(await errorCode(up)).toBe("device_revoked");
      // And again on the next check-in (now through the registry: the refusal made this isolate forget the device).
      const next = await checkinRaw(d, checkinBody(d, model));
      expect(next.status).toBe(403);
      expect(await errorCode(next)).toBe("device_revoked");
    });
  }

  it("refuses a forged signature or another API key, and records nothing", async () => {
    const { key } = await createApiKey();
    const other = await createApiKey();
    const d = await registerDevice(key);
    const model = uniqueModel("forged");
    await openRound(model);
    const before = (await checkin(d, model)) as CheckinResponse;
    const rows = await checkinRows(model, 1);

    const impostor = { ...d, keys: nacl.sign.keyPair() };
    const forged = await checkinRaw(d, checkinBody(impostor, model));
    expect(forged.status).toBe(401);
    expect(await errorCode(forged)).toBe("bad_signature");

    const foreign = await checkinRaw({ ...d, apiKey: other.key }, checkinBody(d, model));
    expect(foreign.status).toBe(404);
    expect(await errorCode(foreign)).toBe("device_not_found");

    expect(await checkinRows(model, 1)).toBe(rows);
    expect(await checkin(d, model)).toEqual(before);
  });
});
