/**
 * Issue 17, item 7: fault injection. Durable Object and R2 calls fail in the commit (which stores the payload in the
 * same transaction), during the seal and during the purge (the registry publish is in hardening-lifecycle.test.ts). Oracles: nothing accepted is
 * lost (every receipt's bytes are in the round's update stream, each once), and nothing half-done is visible (no
 * receipt without a commit, no 5xx from a read of a half-purged round, retries finish the job).
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { readUpdateStream, updateDigestHex, type RoundStatus, type UpdateReceipt } from "@fedge/protocol";
import { RoundCoordinator } from "../src/durable-objects/round-coordinator/index.ts";
import {
  adminGet,
  adminPost,
  coordinatorState,
  createApiKey,
  makeUpdate,
  openRound,
  r2Keys,
  registerDevice,
  storedKeys,
  taskFor,
  uniqueModel,
  upload,
  uploadOk,
  type TestDevice,
} from "./rounds-helpers.ts";

const restore: (() => void)[] = [];
afterEach(() => {
  while (restore.length > 0) restore.pop()!();
});

/** Replaces `target[name]` until the test ends. */
function inject<T extends object, K extends keyof T>(target: T, name: K, impl: (original: T[K]) => T[K]): void {
  const own = Object.prototype.hasOwnProperty.call(target, name);
  const original = target[name];
  target[name] = impl(original);
  restore.push(() => {
    if (own) target[name] = original;
    else delete target[name];
  });
}

/** Fails the first `times` calls of a bucket method, then passes them through. */
function failBucket(bucket: R2Bucket, method: "put" | "delete", times: number, after = 0): () => number {
  let calls = 0;
  inject(bucket, method, (original) => {
    const bound = (original as (...a: unknown[]) => Promise<unknown>).bind(bucket);
    return ((...args: unknown[]) => {
      calls++;
      if (calls > after && calls <= after + times) return Promise.reject(new Error(`injected R2 ${method} failure`));
      return bound(...args);
    }) as never;
  });
  return () => calls;
}

interface Fixture {
  model: string;
  round: RoundStatus;
  devices: TestDevice[];
  bodies: Uint8Array[];
}

async function fixture(n: number): Promise<Fixture> {
  const model = uniqueModel("fault");
  const { key } = await createApiKey();
  const devices = await Promise.all(Array.from({ length: n }, () => registerDevice(key)));
  const round = await openRound(model, { update_length: 16 });
  const bodies = [];
  for (const d of devices) bodies.push(await makeUpdate(await taskFor(d, model), d));
  return { model, round, devices, bodies };
}

/** The round's accepted updates as the aggregator streams them: sha256 → count. */
async function streamed(roundId: string): Promise<Map<string, number>> {
  const res = await adminGet(`/v1/admin/rounds/${roundId}/update-stream?limit=1000`);
  expect(res.status, await res.clone().text()).toBe(200);
  const seen = new Map<string, number>();
  for await (const frame of readUpdateStream(res.body!)) {
    const h = await updateDigestHex(frame.update);
    seen.set(h, (seen.get(h) ?? 0) + 1);
  }
  return seen;
}

describe("faults in the commit", () => {
  it("a failed commit and a commit whose answer was lost: retries end with each update once", async () => {
    const { model, round, bodies } = await fixture(3);
    const receipts: UpdateReceipt[] = [];
    receipts.push(await uploadOk(round.round_id, bodies[0]!));

    // 1. The commit fails before it is recorded: nothing stored, no receipt given, the client may retry.
    let commitFails = 1;
    let lostAnswers = 0;
    inject(
      RoundCoordinator.prototype,
      "commitUpload",
      (original) =>
        async function (this: RoundCoordinator, input) {
          if (commitFails-- > 0) throw new Error("injected: coordinator unavailable");
          const result = await original.call(this, input);
          if (lostAnswers-- > 0) throw new Error("injected: the commit's answer was lost");
          return result;
        },
    );
    expect((await upload(round.round_id, bodies[1]!)).status).toBe(500);
    expect((await coordinatorState(model)).updates).toBe(1);
    expect(await storedKeys(round.round_id)).toHaveLength(1);
    receipts.push(await uploadOk(round.round_id, bodies[1]!));

    // 3. The commit is recorded but its answer is lost: the retry gets the first receipt (duplicate), not a second update.
    lostAnswers = 1;
    expect((await upload(round.round_id, bodies[2]!)).status).toBe(500);
    expect((await coordinatorState(model)).updates).toBe(3);
    const retried = await upload(round.round_id, bodies[2]!);
    expect(retried.status).toBe(200);
    const third = await retried.json<UpdateReceipt>();
    expect(third.duplicate).toBe(true);
    receipts.push(third);

    await adminPost(`/v1/admin/rounds/${round.round_id}/close`);
    const seen = await streamed(round.round_id);
    expect([...seen.values()]).toEqual([1, 1, 1]);
    for (const r of receipts) expect(seen.get(r.sha256), r.device_id).toBe(1);
  });
});

describe("faults during the seal and the purge", () => {
  it("a seal whose R2 writes fail keeps serving every update from SQLite and finishes on the next alarm", async () => {
    const { model, round, bodies } = await fixture(4);
    for (const b of bodies) await uploadOk(round.round_id, b);
    await adminPost(`/v1/admin/rounds/${round.round_id}/close`);
    const before = await streamed(round.round_id);
    const coordinator = env.ROUNDS.getByName(model);
    const puts = failBucket(env.UPDATES, "put", 1_000);
    await runDurableObjectAlarm(coordinator);
    expect(puts()).toBeGreaterThan(0);
    expect(await r2Keys(round.round_id)).toEqual([]);
    expect(await streamed(round.round_id)).toEqual(before);
    // The alarm comes back for it.
    expect(await runInDurableObject(coordinator, (_i, state) => state.storage.getAlarm())).toEqual(expect.any(Number));
    restore.pop()!();
    await runInDurableObject(coordinator, (_i, state) => state.storage.setAlarm(Date.now()));
    expect(await runDurableObjectAlarm(coordinator)).toBe(true);
    expect((await r2Keys(round.round_id)).length).toBeGreaterThan(0);
    expect(await streamed(round.round_id)).toEqual(before);
  });

  it("a purge whose R2 deletes fail half way answers 404, never a missing payload, and finishes on the next alarm", async () => {
    const { model, round, devices, bodies } = await fixture(6);
    for (const b of bodies) await uploadOk(round.round_id, b);
    await adminPost(`/v1/admin/rounds/${round.round_id}/close`);
    const coordinator = env.ROUNDS.getByName(model);
    await runDurableObjectAlarm(coordinator); // sealed into an R2 segment
    expect((await r2Keys(round.round_id)).length).toBeGreaterThan(0);
    await runInDurableObject(coordinator, async (_i, state) => {
      state.storage.sql.exec("UPDATE rounds SET closed_at = closed_at - ?", 8 * 86_400_000);
      await state.storage.setAlarm(Date.now());
    });
    // Every R2 delete fails: the payloads are given up, their deletion waits for the next alarm.
    failBucket(env.UPDATES, "delete", 1_000);
    await runDurableObjectAlarm(coordinator);
    const status = await (await adminGet(`/v1/admin/rounds/${round.round_id}`)).json<RoundStatus>();
    expect(status.payloads_purged_at).toEqual(expect.any(String));
    for (const d of devices) {
      const one = await adminGet(`/v1/admin/rounds/${round.round_id}/updates/${d.id}`);
      expect(one.status, d.id).toBe(404);
    }
    expect((await adminGet(`/v1/admin/rounds/${round.round_id}/update-stream`)).status).toBe(404);
    expect((await storedKeys(round.round_id)).length).toBeGreaterThan(0);
    restore.pop()!();
    await runInDurableObject(coordinator, (_i, state) => state.storage.setAlarm(Date.now()));
    expect(await runDurableObjectAlarm(coordinator)).toBe(true);
    expect(await storedKeys(round.round_id)).toEqual([]);
    expect(await r2Keys(round.round_id)).toEqual([]);
    expect(await runInDurableObject(coordinator, (_i, state) => state.storage.getAlarm())).toBeNull();
  });
});
