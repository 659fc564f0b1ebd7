/**
 * What the coordinator's upload commit no longer reads from SQLite: the round it just counted (its cached newest round
 * takes the new count in memory) and, while no device of the population is revoked, the per-device revocation row.
 * Both must stay exactly what the tables say, through the route a device uses.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { RoundRow } from "../src/durable-objects/round-coordinator/rounds.ts";
import {
  adminPost,
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

/** The coordinator's cached newest round beside its stored row. */
async function cachedAndStored(model: string): Promise<{ cached: RoundRow; stored: RoundRow }> {
  return runInDurableObject(env.ROUNDS.getByName(model), (instance, state) => {
    const cached = (instance as unknown as { rounds: { latest: RoundRow } }).rounds.latest;
    const stored = state.storage.sql.exec<RoundRow>("SELECT * FROM rounds ORDER BY seq DESC LIMIT 1").one();
    return { cached: { ...cached }, stored: { ...stored } };
  });
}

describe("the upload commit's caches", () => {
  it("the cached round equals the stored row after every accepted update, including the one that fills max_reports", async () => {
    const model = uniqueModel("commit-cache");
    const { key } = await createApiKey();
    const devices = [await registerDevice(key), await registerDevice(key), await registerDevice(key)];
    const round = await openRound(model, { privacy_mode: "none", max_reports: 3 });
    const tasks = [];
    for (const d of devices) tasks.push(await taskFor(d, model));
    for (let i = 0; i < devices.length; i++) {
      await uploadOk(round.round_id, await makeUpdate(tasks[i]!, devices[i]!));
      const { cached, stored } = await cachedAndStored(model);
      expect(cached).toEqual(stored);
      expect(stored.accepted).toBe(i + 1);
      expect(stored.state).toBe(i < 2 ? "collecting" : "closed");
    }
    expect((await cachedAndStored(model)).stored.close_reason).toBe("max_reports");
  });

  it("a device revoked after the coordinator found no revocation is refused at the commit of its granted upload", async () => {
    const model = uniqueModel("commit-revoked");
    const { key } = await createApiKey();
    const [a, b] = [await registerDevice(key), await registerDevice(key)];
    const round = await openRound(model);
    const [ta, tb] = [await taskFor(a, model), await taskFor(b, model)];
    // A's commit reads the (empty) revocation table and remembers that no device is revoked here.
    await uploadOk(round.round_id, await makeUpdate(ta, a));
    const revoke = await adminPost(`/v1/admin/devices/${b.id}/revoke`);
    expect(revoke.status).toBe(200);
    // B's upload reaches this isolate with the grant of its check-in, so only the commit can refuse it.
    const before = await coordinatorState(model);
    const up = await upload(round.round_id, await makeUpdate(tb, b));
    expect(up.status).toBe(403);
    expect(await errorCode(up)).toBe("device_revoked");
    expect(await coordinatorState(model)).toEqual(before);
    expect(await storedKeys(round.round_id)).toHaveLength(1);
  });
});
