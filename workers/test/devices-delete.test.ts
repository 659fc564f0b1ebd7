/**
 * `DELETE /v1/admin/devices/:id` (admin token only): the device is revoked everywhere first (503
 * `revocation_pending` until every population has it, nothing deleted), then its check-ins of uncharged finished
 * rounds are dropped, its quota slot released and its registry record deleted. What the privacy ledger needs stays:
 * its check-ins of charged rounds, and each population's revocation, so a check-in another isolate answers from what
 * it remembers (verified-devices.ts) is still refused. Its public key stays refused under its API key.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { toBase64Url, type PopulationPrivacyStatus, type PopulationSharding } from "@fedge/protocol";
import { deviceStub } from "../src/durable-objects/device-registry.ts";
import { RoundCoordinator } from "../src/durable-objects/round-coordinator/index.ts";
import {
  ADMIN,
  adminGet,
  adminPost,
  call,
  checkinBody,
  checkinRaw,
  createApiKey,
  errorCode,
  openRound,
  registerDevice,
  taskFor,
  uniqueModel,
} from "./rounds-helpers.ts";

/** Coordinator objects (by name) whose `revokeDevice` fails while listed. */
const unreachable = new Set<string>();
const originalRevoke = RoundCoordinator.prototype.revokeDevice;
RoundCoordinator.prototype.revokeDevice = async function (this: RoundCoordinator, deviceId: string, at: number) {
  const name = (this as unknown as { ctx: DurableObjectState }).ctx.id.name;
  if (name !== undefined && unreachable.has(name)) throw new Error(`injected: ${name} is unreachable`);
  return originalRevoke.call(this, deviceId, at);
};
afterEach(() => unreachable.clear());

const remove = (id: string, headers: Record<string, string> = ADMIN) =>
  call(`/v1/admin/devices/${id}`, { method: "DELETE", headers });

/** The device's check-in rows on coordinator object `name`, by round seq. */
function checkinSeqs(name: string, deviceId: string): Promise<number[]> {
  return runInDurableObject(env.ROUNDS.getByName(name), (_i, state) =>
    state.storage.sql
      .exec<{ round_seq: number }>("SELECT round_seq FROM checkins WHERE device_id = ? ORDER BY round_seq", deviceId)
      .toArray()
      .map((r) => r.round_seq),
  );
}

function isRevokedAt(name: string, deviceId: string): Promise<boolean> {
  return runInDurableObject(
    env.ROUNDS.getByName(name),
    (_i, state) =>
      state.storage.sql.exec("SELECT 1 FROM revoked_devices WHERE device_id = ?", deviceId).toArray().length > 0,
  );
}

/** The tables the device's registry instance holds (none once deleted). */
function registryTables(deviceId: string): Promise<string[]> {
  return runInDurableObject(deviceStub(env, deviceId), (_i, state) =>
    state.storage.sql
      .exec<{ name: string }>(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\'",
      )
      .toArray()
      .map((r) => r.name),
  );
}

async function activeDevices(keyId: string): Promise<number> {
  return (await (await adminGet(`/v1/admin/device-quotas/${keyId}`)).json<{ active_devices: number }>()).active_devices;
}

async function close(roundId: string): Promise<void> {
  expect((await adminPost(`/v1/admin/rounds/${roundId}/close`)).status).toBe(200);
}

describe("DELETE /v1/admin/devices/:id", () => {
  it("removes the identity and the uncharged check-ins; the ledger keeps the charged ones and refuses the device", async () => {
    const { id: keyId, key } = await createApiKey();
    const d = await registerDevice(key);
    const other = await registerDevice(key);
    // A DP population (every round charged) and one in mode none (no round charged): in each, a finished round
    // and a round still collecting.
    const [dp, none] = [uniqueModel("deldp"), uniqueModel("delnone")];
    for (const [model, mode] of [
      [dp, "central"],
      [none, "none"],
    ] as const) {
      const r1 = await openRound(model, { privacy_mode: mode });
      for (const x of [d, other]) await taskFor(x, model);
      await close(r1.round_id);
      await openRound(model, { privacy_mode: mode });
      await taskFor(d, model);
      expect(await checkinSeqs(model, d.id)).toEqual([1, 2]);
    }
    const ledger = await (await call(`/v1/populations/${dp}/privacy`)).json<PopulationPrivacyStatus>();
    expect(ledger.rounds).toHaveLength(2);
    expect(await activeDevices(keyId)).toBe(2);

    const res = await remove(d.id);
    expect(res.status, await res.clone().text()).toBe(204);
    expect(await registryTables(d.id)).toEqual([]);
    const gone = await adminGet(`/v1/admin/devices/${d.id}`);
    expect(gone.status).toBe(404);
    expect(await errorCode(gone)).toBe("device_not_found");
    expect(await activeDevices(keyId)).toBe(1);
    // Charged rounds' check-ins (the device's privacy history) stay, and so does a collecting round's; the finished
    // uncharged round's is gone. The other device keeps all of its own.
    expect(await checkinSeqs(dp, d.id)).toEqual([1, 2]);
    expect(await checkinSeqs(none, d.id)).toEqual([2]);
    for (const model of [dp, none]) expect(await checkinSeqs(model, other.id)).toEqual([1]);
    expect(await (await call(`/v1/populations/${dp}/privacy`)).json()).toEqual(ledger);
    for (const model of [dp, none]) expect(await isRevokedAt(model, d.id)).toBe(true);

    // Refused everywhere: through the registry (no device), by the coordinator a remembering isolate calls directly,
    // and a registration of the same public key.
    const viaRegistry = await checkinRaw(d, checkinBody(d, none));
    expect(viaRegistry.status).toBe(404);
    expect(await errorCode(viaRegistry)).toBe("device_not_found");
    const direct = await env.ROUNDS.getByName(none).checkin(d.id, toBase64Url(d.keys.publicKey), keyId, Date.now());
    expect(direct).toMatchObject({ ok: false, code: "device_revoked" });
    const again = await call("/v1/devices", {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ public_key: toBase64Url(d.keys.publicKey), platform: "node" }),
    });
    expect(again.status).toBe(403);
    expect(await errorCode(again)).toBe("device_revoked");
    expect(await activeDevices(keyId)).toBe(1);

    // Deleted: a second call is a 404 and changes nothing.
    expect((await remove(d.id)).status).toBe(404);
  });

  it("drops the uncharged check-ins on every shard of a sharded population", async () => {
    const { key } = await createApiKey();
    const devices = [await registerDevice(key), await registerDevice(key), await registerDevice(key)];
    const model = uniqueModel("dels");
    const sharding = await call(`/v1/admin/populations/${model}/sharding`, {
      method: "PUT",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ shards: 4 }),
    });
    expect((await sharding.json<PopulationSharding>()).shards).toBe(4);
    const r1 = await openRound(model, { privacy_mode: "none" });
    for (const x of devices) await taskFor(x, model);
    await close(r1.round_id);
    const shards = Array.from({ length: 4 }, (_, i) => `${model}#${i}`);
    const rows = async (deviceId: string) => (await Promise.all(shards.map((s) => checkinSeqs(s, deviceId)))).flat();
    for (const x of devices) expect(await rows(x.id)).toEqual([1]);

    for (const x of devices) expect((await remove(x.id)).status).toBe(204);
    for (const x of devices) expect(await rows(x.id)).toEqual([]);
    for (const s of shards) for (const x of devices) expect(await isRevokedAt(s, x.id)).toBe(true);
  });

  it("answers 503 revocation_pending and deletes nothing until every population has the revocation", async () => {
    const { id: keyId, key } = await createApiKey();
    const d = await registerDevice(key);
    const model = uniqueModel("delp");
    const r1 = await openRound(model, { privacy_mode: "none" });
    await taskFor(d, model);
    await close(r1.round_id);
    unreachable.add(model);

    const res = await remove(d.id);
    expect(res.status, await res.clone().text()).toBe(503);
    expect(res.headers.get("retry-after")).toBe("5");
    expect(await errorCode(res)).toBe("revocation_pending");
    // Revoked at its registry, but still there with its check-ins: nothing was deleted.
    const info = await adminGet(`/v1/admin/devices/${d.id}`);
    expect(info.status).toBe(200);
    expect(await info.json()).toMatchObject({ device_id: d.id, revoked_at: expect.any(String) });
    expect(await checkinSeqs(model, d.id)).toEqual([1]);

    unreachable.clear();
    expect((await remove(d.id)).status).toBe(204);
    expect(await registryTables(d.id)).toEqual([]);
    expect(await checkinSeqs(model, d.id)).toEqual([]);
    expect(await activeDevices(keyId)).toBe(0);
  });

  it("refuses bad requests and other credentials with a 4xx, and changes nothing", async () => {
    const { id: keyId, key } = await createApiKey();
    const d = await registerDevice(key);
    const cases: Array<[string, Record<string, string>, number, string]> = [
      [d.id, {}, 401, "unauthorized"],
      [d.id, { authorization: "Bearer wrong" }, 403, "forbidden"],
      [d.id, { authorization: `Bearer ${key}` }, 403, "forbidden"],
      ["not-a-device", ADMIN, 400, "validation_failed"],
      ["dev_nobodynobodynobody00", ADMIN, 404, "device_not_found"],
    ];
    for (const [id, headers, status, code] of cases) {
      const res = await remove(id, headers);
      expect([id, res.status, await errorCode(res)]).toEqual([id, status, code]);
    }
    expect(await adminGet(`/v1/admin/devices/${d.id}`).then((r) => r.json())).toMatchObject({ revoked_at: null });
    expect(await activeDevices(keyId)).toBe(1);
    // An unknown id reached no registry storage.
    expect(await registryTables("dev_nobodynobodynobody00")).toEqual([]);
  });
});
