/**
 * A revocation whose push to a population fails. A repeat check-in may be answered from what an isolate remembers
 * (verified-devices.ts), without the device's registry, so a revocation is in force only once every population's
 * coordinator (and every shard) has it: until then the revoke answers 503 `revocation_pending` with `Retry-After`,
 * never 200, and the device's registry refuses it meanwhile. Pushes fail here by an injected fault in the coordinator
 * the push reaches (a population's object, or one shard of a sharded population).
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import type { DeviceInfo, PopulationSharding } from "@fedge/protocol";
import { deviceStub } from "../src/durable-objects/device-registry.ts";
import { RoundCoordinator } from "../src/durable-objects/round-coordinator/index.ts";
import {
  ADMIN,
  adminGet,
  adminPost,
  call,
  checkinBody,
  checkinRaw,
  coordinatorState,
  createApiKey,
  errorCode,
  makeUpdate,
  openRound,
  registerDevice,
  taskFor,
  uniqueModel,
  upload,
} from "./rounds-helpers.ts";

/** Coordinator objects (by name) whose `revokeDevice` fails while listed. */
const unreachable = new Set<string>();
const original = RoundCoordinator.prototype.revokeDevice;
RoundCoordinator.prototype.revokeDevice = async function (this: RoundCoordinator, deviceId: string, at: number) {
  const name = (this as unknown as { ctx: DurableObjectState }).ctx.id.name;
  if (name !== undefined && unreachable.has(name)) throw new Error(`injected: ${name} is unreachable`);
  return original.call(this, deviceId, at);
};
afterEach(() => unreachable.clear());

/** When `name`'s coordinator object recorded the revocation of `deviceId` (null: it does not know it). */
function revokedAt(name: string, deviceId: string): Promise<number | null> {
  return runInDurableObject(env.ROUNDS.getByName(name), (_i, state) => {
    const sql = state.storage.sql;
    if (sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'revoked_devices'").toArray().length === 0) return null;
    return (
      sql.exec<{ at: number }>("SELECT at FROM revoked_devices WHERE device_id = ?", deviceId).toArray()[0]?.at ?? null
    );
  });
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

describe("a revocation that has not reached every population", () => {
  it("answers 503 revocation_pending, refuses the device at its registry, and 200 once every push landed", async () => {
    const { key } = await createApiKey();
    const d = await registerDevice(key);
    const [reached, failing] = [uniqueModel("rp"), uniqueModel("rp")];
    const rounds = [await openRound(reached), await openRound(failing)];
    await taskFor(d, reached);
    const task = await taskFor(d, failing);
    unreachable.add(failing);

    const res = await adminPost(`/v1/admin/devices/${d.id}/revoke`);
    expect(res.status, await res.clone().text()).toBe(503);
    expect(res.headers.get("retry-after")).toBe("5");
    const body = await res.json<{ error: { code: string; message: string } }>();
    expect(body.error.code).toBe("revocation_pending");
    expect(body.error.message).toContain(failing);
    expect(await revokedAt(reached, d.id)).toEqual(expect.any(Number));
    expect(await revokedAt(failing, d.id)).toBeNull();
    expect(await deviceStub(env, d.id).pendingRevocations()).toEqual([failing]);

    // Meanwhile the registry refuses the device, and the refusal changes nothing in the population.
    const info = await (await adminGet(`/v1/admin/devices/${d.id}`)).json<DeviceInfo>();
    expect(info.revoked_at).toEqual(expect.any(String));
    const before = await coordinatorState(failing);
    const refused = await checkinRaw(d, checkinBody(d, failing));
    expect(refused.status).toBe(403);
    expect(await errorCode(refused)).toBe("device_revoked");
    expect(await coordinatorState(failing)).toEqual(before);

    // The call answers 503 again while the population stays unreachable, then 200 once the push landed.
    expect((await adminPost(`/v1/admin/devices/${d.id}/revoke`)).status).toBe(503);
    unreachable.delete(failing);
    const again = await adminPost(`/v1/admin/devices/${d.id}/revoke`);
    expect(again.status, await again.clone().text()).toBe(200);
    expect((await again.json<DeviceInfo>()).revoked_at).toBe(info.revoked_at);
    expect(await revokedAt(failing, d.id)).toEqual(expect.any(Number));
    expect(await deviceStub(env, d.id).pendingRevocations()).toEqual([]);
    const up = await upload(rounds[1]!.round_id, await makeUpdate(task, d));
    expect(up.status).toBe(403);
    expect(await errorCode(up)).toBe("device_revoked");
  });

  it("counts a sharded population as reached only once every shard has it", async () => {
    const { key } = await createApiKey();
    const d = await registerDevice(key);
    const model = uniqueModel("rps");
    await shardTo(model, 4);
    await openRound(model);
    await taskFor(d, model);
    unreachable.add(`${model}#2`);

    const res = await adminPost(`/v1/admin/devices/${d.id}/revoke`);
    expect(res.status, await res.clone().text()).toBe(503);
    expect(await errorCode(res)).toBe("revocation_pending");
    expect(await revokedAt(`${model}#2`, d.id)).toBeNull();

    // The registry's alarm pushes again (as it does every 5 s); once it landed the revoke answers 200 at once.
    unreachable.clear();
    expect(await runDurableObjectAlarm(deviceStub(env, d.id))).toBe(true);
    for (let i = 0; i < 4; i++)
      expect(await revokedAt(`${model}#${i}`, d.id), `shard ${i}`).toEqual(expect.any(Number));
    expect((await adminPost(`/v1/admin/devices/${d.id}/revoke`)).status).toBe(200);
  });

  it("the registry names the populations the revocation has not reached yet", async () => {
    const { key } = await createApiKey();
    const d = await registerDevice(key);
    const model = uniqueModel("rpd");
    await openRound(model);
    await taskFor(d, model);
    unreachable.add(model);
    const revoked = await deviceStub(env, d.id).revokeDevice(Date.now());
    expect(revoked?.unreached).toEqual([model]);
    unreachable.clear();
    expect((await deviceStub(env, d.id).revokeDevice(Date.now()))?.unreached).toEqual([]);
  });
});
