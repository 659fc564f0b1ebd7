/**
 * Sharded round coordination: a population's round served by S RoundCoordinator shards (`model#i`), devices mapped to
 * them by the edge's keyed hash, the round's open and close fanned out, the ledger charged once, S growing between
 * rounds without losing a device's history. Real HTTP through the worker, real Durable Objects in workerd.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import nacl from "tweetnacl";
import {
  devicePrivacySigningBytes,
  toBase64Url,
  type AcceptedUpdatePage,
  type CheckinResponse,
  type PopulationSharding,
  type RoundParams,
  type RoundStatus,
  type UpdateReceipt,
} from "@fedge/protocol";
import { shardOf } from "../src/training/shard-of.ts";
import {
  SHARD_CURSOR_SPAN,
  shardCursor,
  shardParams,
  shardingChangeVerdict,
  splitCursor,
} from "../src/durable-objects/round-coordinator/shards.ts";
import type { RoundRow } from "../src/durable-objects/round-coordinator/rounds.ts";
import type { Bindings } from "../src/env.ts";
import { migrate } from "../src/durable-objects/round-coordinator/migrations.ts";
import {
  ADMIN,
  adminGet,
  adminPost,
  call,
  checkin,
  createApiKey,
  errorCode,
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

/** The worker's bindings with its secrets (the edge key the shard assignment is derived from). */
const edgeEnv = env as Bindings;

function putSharding(model: string, body: unknown, headers: Record<string, string> = ADMIN): Promise<Response> {
  return call(`/v1/admin/populations/${model}/sharding`, {
    method: "PUT",
    headers: { ...headers, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function shardTo(model: string, shards: number): Promise<void> {
  const res = await putSharding(model, { shards });
  expect(res.status, await res.clone().text()).toBe(200);
  expect((await res.json<PopulationSharding>()).shards).toBe(shards);
}

function shardObject(model: string, index: number) {
  return env.ROUNDS.getByName(`${model}#${index}`);
}

/** Rows of a table in one coordinator object ([] when it never created its tables). */
function rowsIn<T>(stub: ReturnType<typeof shardObject>, query: string, ...args: unknown[]): Promise<T[]> {
  return runInDurableObject(stub, (_i, state) => {
    const sql = state.storage.sql;
    if (sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'rounds'").toArray().length === 0) return [];
    return sql
      .exec(query, ...args)
      .toArray()
      .map((r) => ({ ...r }) as T);
  });
}

async function statusOf(roundId: string): Promise<RoundStatus> {
  const res = await adminGet(`/v1/admin/rounds/${roundId}`);
  expect(res.status).toBe(200);
  return res.json<RoundStatus>();
}

/** Every accepted update's device id, walking the pages (optionally one shard's) with a small page size. */
async function listedDevices(roundId: string, shard?: number): Promise<string[]> {
  const ids: string[] = [];
  let after = 0;
  for (;;) {
    const q = `after=${after}&limit=2${shard === undefined ? "" : `&shard=${shard}`}`;
    const res = await adminGet(`/v1/admin/rounds/${roundId}/updates?${q}`);
    expect(res.status, await res.clone().text()).toBe(200);
    const page = await res.json<AcceptedUpdatePage>();
    ids.push(...page.items.map((u) => u.device_id));
    if (page.next_cursor === null) return ids;
    after = Number(page.next_cursor);
  }
}

function readPrivacy(device: TestDevice): Promise<Response> {
  const timestamp = new Date().toISOString();
  const signature = nacl.sign.detached(devicePrivacySigningBytes(device.id, timestamp), device.keys.secretKey);
  return call(`/v1/devices/${device.id}/privacy`, {
    headers: {
      authorization: `Bearer ${device.apiKey}`,
      "x-fedge-timestamp": timestamp,
      "x-fedge-signature": toBase64Url(signature),
    },
  });
}

describe("shard assignment", () => {
  it("is a keyed hash: stable, spread over 0…S−1, and not the device id's own hash", async () => {
    const ids = Array.from({ length: 400 }, (_, i) => `dev_assign${String(i).padStart(6, "0")}`);
    const shards = await Promise.all(ids.map((id) => shardOf(edgeEnv, id, 4)));
    expect(await Promise.all(ids.map((id) => shardOf(edgeEnv, id, 4)))).toEqual(shards);
    const counts = [0, 1, 2, 3].map((s) => shards.filter((x) => x === s).length);
    // Binomial(400, 1/4) per shard: mean 100, σ ≈ 8.66; 5σ bounds fail with probability < 4 · 6e-7.
    for (const c of counts) expect(Math.abs(c - 100)).toBeLessThan(5 * Math.sqrt(400 * 0.25 * 0.75));
    // Another key maps differently: the assignment depends on the edge's secret, not on the id alone.
    const other = { FEDGE_EDGE_SIGNING_KEY: toBase64Url(new Uint8Array(32).fill(7)) };
    const moved = (await Promise.all(ids.map((id) => shardOf(other, id, 4)))).filter((s, i) => s !== shards[i]);
    expect(moved.length).toBeGreaterThan(200);
    expect(await shardOf({}, "dev_any", 1)).toBe(0);
  });
});

describe("shard rules (pure)", () => {
  it("splits a round's count caps between the shards, in privacy mode none only", () => {
    const none = {
      model_version: 1,
      learning_rate: 0.1,
      local_epochs: 1,
      batch_size: 16,
      privacy_mode: "none",
      trainable: "all",
      update_length: 8,
      update_dtype: "float32",
      sampling_rate: 1,
      min_reports: 5,
      max_reports: 10,
    } as const;
    expect(shardParams(none, 1)).toBe(none);
    expect(shardParams(none, 4)).toMatchObject({ max_reports: 3, min_reports: 3, max_selected_per_key: 250 });
    const central = { ...none, privacy_mode: "central", max_reports: undefined, min_reports: 1 } as const;
    const split = shardParams(central, 4);
    expect(split.max_reports).toBeUndefined();
    expect(split.max_selected_per_key).toBeUndefined();
  });

  it("walks the cursor shard by shard", () => {
    expect(splitCursor(shardCursor(3, 17))).toEqual({ shard: 3, after: 17 });
    expect(splitCursor(0)).toEqual({ shard: 0, after: 0 });
    expect(shardCursor(1, 0)).toBe(SHARD_CURSOR_SPAN);
  });

  it("lets S grow between rounds only", () => {
    const row = (state: RoundRow["state"]) => ({ state, round_id: "m_1", shard_count: 2 }) as RoundRow;
    expect(shardingChangeVerdict(null, 1, 4).ok).toBe(true);
    expect(shardingChangeVerdict(row("closed"), 2, 4).ok).toBe(true);
    expect(shardingChangeVerdict(row("collecting"), 2, 2).ok).toBe(true);
    expect(shardingChangeVerdict(row("collecting"), 2, 4)).toMatchObject({ ok: false, status: 409 });
    expect(shardingChangeVerdict(row("open"), 2, 4)).toMatchObject({ ok: false, status: 409 });
    expect(shardingChangeVerdict(null, 4, 2)).toMatchObject({ ok: false, status: 409, code: "conflict" });
  });
});

describe("sharded rounds", () => {
  it("samples each device with probability q on every shard, and charges the population's ledger once", async () => {
    const model = uniqueModel("pois");
    await shardTo(model, 4);
    const q = 0.3;
    const round = await openRound(model, { sampling_rate: q });
    expect(round.shards).toBe(4);
    const { key } = await createApiKey();
    const n = 240;
    const devices: TestDevice[] = [];
    for (let i = 0; i < n; i++) devices.push(await registerDevice(key));
    const answers: CheckinResponse[] = [];
    for (const d of devices) answers.push(await checkin(d, model));
    const where = await Promise.all(devices.map((d) => shardOf(edgeEnv, d.id, 4)));

    // Each device's coin is recorded on its own shard only, never on the population's object.
    for (let s = 0; s < 4; s++) {
      const rows = await rowsIn<{ device_id: string; selected: number }>(
        shardObject(model, s),
        "SELECT device_id, selected FROM checkins",
      );
      const mine = devices.filter((_, i) => where[i] === s).map((d) => d.id);
      expect(rows.map((r) => r.device_id).sort()).toEqual(mine.sort());
      // Per shard: Binomial(m, q) within 5σ.
      const picked = rows.filter((r) => r.selected === 1).length;
      const sigma = Math.sqrt(rows.length * q * (1 - q));
      expect(Math.abs(picked - rows.length * q)).toBeLessThan(5 * sigma + 1);
      // The shards split the devices: Binomial(n, 1/4) within 5σ.
      expect(Math.abs(rows.length - n / 4)).toBeLessThan(5 * Math.sqrt(n * 0.25 * 0.75));
    }
    expect(await rowsIn(env.ROUNDS.getByName(model), "SELECT * FROM checkins")).toEqual([]);

    // All shards together: Binomial(240, 0.3), mean 72, σ ≈ 7.1. Each of the 9 two-sided 5σ bounds in this test fails
    // by chance with probability < 6e-7 (normal tail; the +1 above covers the discreteness), so the test falsely fails
    // with probability < 6e-6.
    const selected = answers.filter((a) => a.selected).length;
    expect(Math.abs(selected - n * q)).toBeLessThan(5 * Math.sqrt(n * q * (1 - q)));
    // Selected devices got distinct nonces, each issued by its shard.
    const nonces = answers.flatMap((a) => (a.selected ? [a.task.nonce] : []));
    expect(new Set(nonces).size).toBe(selected);
    // Every device got its signed receipt (its coin was flipped), with the round's charged terms.
    for (const a of answers) expect(a.receipt).toMatchObject({ round_id: round.round_id, sampling_rate: q });

    // The counters are the shards' sums; the ledger holds one charge, on the population's object only.
    const status = await statusOf(round.round_id);
    expect(status).toMatchObject({ checked_in: n, selected, shards: 4 });
    const ledger = await (await call(`/v1/populations/${model}/privacy`)).json<{ rounds: unknown[] }>();
    expect(ledger.rounds).toHaveLength(1);
    for (let s = 0; s < 4; s++) {
      expect(await rowsIn(shardObject(model, s), "SELECT * FROM privacy_charges")).toEqual([]);
    }
  });

  it("keeps a device's receipts, updates and revocation when it moves shard as S grows", async () => {
    const model = uniqueModel("grow");
    const { key } = await createApiKey();
    const d = await registerDevice(key);

    // Round 1 on the population's one coordinator.
    const r1 = await openRound(model);
    expect(r1.shards).toBe(1);
    const receipt1 = await uploadOk(r1.round_id, await makeUpdate(await taskFor(d, model), d));
    expect((await adminPost(`/v1/admin/rounds/${r1.round_id}/close`)).status).toBe(200);

    // S grows to 4 between rounds: the device now checks in at its shard.
    await shardTo(model, 4);
    const r2 = await openRound(model);
    expect(r2.shards).toBe(4);
    const task2 = await taskFor(d, model);
    const home = await shardOf(edgeEnv, d.id, 4);
    expect(await rowsIn(shardObject(model, home), "SELECT device_id FROM checkins")).toEqual([{ device_id: d.id }]);
    const receipt2 = await uploadOk(r2.round_id, await makeUpdate(task2, d));
    expect(receipt2).toMatchObject({ round_id: r2.round_id, device_id: d.id, duplicate: false });
    // The same bytes again: the shard returns the first receipt (the nonce is single-use there).
    const again = await upload(r2.round_id, await makeUpdate(task2, d));
    expect(again.status).toBe(200);
    expect(await again.json<UpdateReceipt>()).toMatchObject({ duplicate: true });

    // Its privacy record lists both rounds, from the old coordinator and from its new shard.
    const privacy = await readPrivacy(d);
    expect(privacy.status).toBe(200);
    const rounds = (await privacy.json<{ populations: { model: string; rounds: { round_id: string }[] }[] }>())
      .populations[0]!.rounds;
    expect(rounds.map((r) => r.round_id)).toEqual([r1.round_id, r2.round_id]);
    // Its round-1 update is still found where it was accepted.
    const old = await adminGet(`/v1/admin/rounds/${r1.round_id}/updates/${d.id}`);
    expect(old.status).toBe(200);
    expect(old.headers.get("x-fedge-sha256")).toBe(receipt1.sha256);
    expect((await adminGet(`/v1/admin/rounds/${r2.round_id}/updates/${d.id}`)).headers.get("x-fedge-sha256")).toBe(
      receipt2.sha256,
    );

    // A revocation reaches every shard of the population.
    expect((await adminPost(`/v1/admin/devices/${d.id}/revoke`)).status).toBe(200);
    for (let s = 0; s < 4; s++) {
      const rows = await rowsIn(shardObject(model, s), "SELECT device_id FROM revoked_devices");
      expect(rows).toEqual([{ device_id: d.id }]);
    }
    expect((await adminPost(`/v1/admin/rounds/${r2.round_id}/close`)).status).toBe(200);

    // S grows again: the new shards learn the revocation when the next round opens; the device stays refused there.
    await shardTo(model, 8);
    const r3 = await openRound(model);
    for (let s = 0; s < 8; s++) {
      expect(await rowsIn(shardObject(model, s), "SELECT device_id FROM revoked_devices")).toEqual([
        { device_id: d.id },
      ]);
    }
    const late = await upload(r3.round_id, await makeUpdate({ ...task2, round_id: r3.round_id }, d));
    expect(late.status).toBe(403);
    expect(await errorCode(late)).toBe("device_revoked");
  });

  it("loses no accepted update when the shards' alarms fire late, and accepts none after the deadline", async () => {
    const model = uniqueModel("late");
    await shardTo(model, 4);
    const { key } = await createApiKey();
    const devices: TestDevice[] = [];
    for (let i = 0; i < 12; i++) devices.push(await registerDevice(key));
    const round = await openRound(model, { duration_s: 6 });
    // Every shard's deadline alarm is lost (as if it fired late); only the population's object keeps its own.
    for (let s = 0; s < 4; s++) {
      await runInDurableObject(shardObject(model, s), (_i, state) => state.storage.deleteAlarm());
    }
    const tasks = [];
    for (const d of devices) tasks.push(await taskFor(d, model));
    // Ten devices upload while the round collects (on a loaded machine the last ones may already meet the deadline:
    // each upload is either accepted with a receipt or refused, never both).
    const receipts: UpdateReceipt[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await upload(round.round_id, await makeUpdate(tasks[i]!, devices[i]!));
      if (res.status === 201) receipts.push(await res.json<UpdateReceipt>());
      else expect(await errorCode(res)).toBe("round_closed");
    }
    expect(receipts.length).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(round.deadline) - Date.now()) + 200));

    // After the deadline nothing more is accepted, whatever shard the device is on.
    for (let i = 10; i < 12; i++) {
      const res = await upload(round.round_id, await makeUpdate(tasks[i]!, devices[i]!));
      expect(res.status).toBe(409);
      expect(await errorCode(res)).toBe("round_closed");
    }
    const status = await statusOf(round.round_id);
    expect(status).toMatchObject({ state: "closed", close_reason: "deadline", accepted: receipts.length, shards: 4 });
    // Every shard is closed, and the listing (walking the shards, or one shard at a time) has every accepted update.
    for (let s = 0; s < 4; s++) {
      const rows = await rowsIn<{ state: string }>(shardObject(model, s), "SELECT state FROM rounds");
      expect(rows).toEqual([{ state: "closed" }]);
    }
    const accepted = receipts.map((r) => r.device_id).sort();
    expect((await listedDevices(round.round_id)).sort()).toEqual(accepted);
    const perShard: string[] = [];
    for (let s = 0; s < 4; s++) perShard.push(...(await listedDevices(round.round_id, s)));
    expect(perShard.sort()).toEqual(accepted);
    // The stream the aggregator reads carries every one of them.
    const stream = await adminGet(`/v1/admin/rounds/${round.round_id}/update-stream?limit=1000`);
    expect(stream.headers.get("x-fedge-update-count")).toBe(String(receipts.length));
    await stream.arrayBuffer();
  });

  it("tells a shard that missed the round's opening again from the alarm", async () => {
    const model = uniqueModel("retry");
    await shardTo(model, 2);
    const { key } = await createApiKey();
    let d: TestDevice;
    do d = await registerDevice(key);
    while ((await shardOf(edgeEnv, d.id, 2)) !== 1);
    // Shard 1 cannot take the opening: a row in its way makes its transaction fail (and roll back).
    await runInDurableObject(shardObject(model, 1), (_i, state) => {
      migrate(state.storage.sql);
      state.storage.sql.exec(
        "INSERT INTO rounds (seq, round_id, model, state, params, opened_at, deadline) VALUES (1, 'in-the-way_1', 'x', 'closed', '{}', 0, 0)",
      );
    });
    const round = await openRound(model);
    const opened = () =>
      rowsIn<{ at: number | null }>(env.ROUNDS.getByName(model), "SELECT shards_opened_at AS at FROM rounds");
    expect(await opened()).toEqual([{ at: null }]);
    expect(await rowsIn(shardObject(model, 0), "SELECT round_id FROM rounds")).toEqual([{ round_id: round.round_id }]);
    // Shard 1 answers that opening with a refusal: no exception crosses the RPC (workerd reports one escaping an RPC
    // method as uncaught, whoever catches it), and its rows stay as they were.
    const [row] = await rowsIn<{ params: string; deadline: number; opened_at: number }>(
      env.ROUNDS.getByName(model),
      "SELECT params, deadline, opened_at FROM rounds",
    );
    const opening = {
      model,
      seq: 1,
      shard: 1,
      shards: 2,
      params: JSON.parse(row!.params) as RoundParams,
      deadline: row!.deadline,
      openedAt: row!.opened_at,
      owner: "default",
      terms: null,
      revoked: [],
    };
    expect(await shardObject(model, 1).openShardRound(opening)).toMatchObject({ ok: false, code: "conflict" });
    expect(await rowsIn(shardObject(model, 1), "SELECT round_id FROM rounds")).toEqual([{ round_id: "in-the-way_1" }]);

    // Once the obstacle is gone, the population's alarm tells shard 1 again, and its devices take part.
    await runInDurableObject(shardObject(model, 1), (_i, state) => state.storage.sql.exec("DELETE FROM rounds"));
    expect(await runDurableObjectAlarm(env.ROUNDS.getByName(model))).toBe(true);
    expect(await opened()).toEqual([{ at: expect.any(Number) }]);
    expect(await rowsIn(shardObject(model, 1), "SELECT round_id FROM rounds")).toEqual([{ round_id: round.round_id }]);
    const task = await taskFor(d, model);
    expect(await uploadOk(round.round_id, await makeUpdate(task, d))).toMatchObject({ device_id: d.id });
  });

  it("stops every shard when an admin closes the round", async () => {
    const model = uniqueModel("close");
    await shardTo(model, 3);
    const round = await openRound(model);
    const { key } = await createApiKey();
    const devices = [await registerDevice(key), await registerDevice(key), await registerDevice(key)];
    const tasks = [];
    for (const d of devices) tasks.push(await taskFor(d, model));
    await uploadOk(round.round_id, await makeUpdate(tasks[0]!, devices[0]!));
    const closed = await adminPost(`/v1/admin/rounds/${round.round_id}/close`);
    expect(await closed.json<RoundStatus>()).toMatchObject({ state: "closed", accepted: 1, close_reason: "admin" });
    const res = await upload(round.round_id, await makeUpdate(tasks[1]!, devices[1]!));
    expect(res.status).toBe(409);
    expect(await listedDevices(round.round_id)).toEqual([devices[0]!.id]);
  });

  it("refuses a bad shard count, shrinking S, and changing S mid-round, and changes nothing", async () => {
    const model = uniqueModel("bad");
    for (const body of [{ shards: 0 }, { shards: 65 }, { shards: 2.5 }, {}, { shards: 2, expected_devices: 10 }]) {
      const res = await putSharding(model, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(await errorCode(res)).toBe("validation_failed");
    }
    const { key } = await createApiKey();
    const byKey = await putSharding(model, { shards: 2 }, { authorization: `Bearer ${key}` });
    expect(byKey.status).toBe(403);
    // A population nobody sharded runs on one coordinator, and reading it stores nothing.
    expect(await (await adminGet(`/v1/admin/populations/${model}/sharding`)).json()).toEqual({
      model,
      shards: 1,
      expected_devices: null,
      set_at: null,
    });
    expect(await rowsIn(env.ROUNDS.getByName(model), "SELECT 1 FROM rounds")).toEqual([]);

    // The default from the expected size: ⌈120,000 / 50,000⌉ = 3.
    const sized = await putSharding(model, { expected_devices: 120_000 });
    expect(await sized.json()).toMatchObject({ shards: 3, expected_devices: 120_000 });
    const before = await (await adminGet(`/v1/admin/populations/${model}/sharding`)).json();

    const shrink = await putSharding(model, { shards: 2 });
    expect(shrink.status).toBe(409);
    expect(await errorCode(shrink)).toBe("conflict");
    const round = await openRound(model);
    expect(round.shards).toBe(3);
    const grow = await putSharding(model, { shards: 6 });
    expect(grow.status).toBe(409);
    expect(await errorCode(grow)).toBe("conflict");
    const shrinkMidRound = await putSharding(model, { shards: 1 });
    expect(shrinkMidRound.status).toBe(409);
    expect(await errorCode(shrinkMidRound)).toBe("conflict");
    expect(await (await adminGet(`/v1/admin/populations/${model}/sharding`)).json()).toEqual(before);
    expect((await statusOf(round.round_id)).shards).toBe(3);

    // A shard the round does not have.
    expect((await adminPost(`/v1/admin/rounds/${round.round_id}/close`)).status).toBe(200);
    const noShard = await adminGet(`/v1/admin/rounds/${round.round_id}/updates?shard=3`);
    expect(noShard.status).toBe(400);
    expect(await errorCode(noShard)).toBe("validation_failed");
  });

  it("is documented in the OpenAPI document", async () => {
    const doc = await (
      await call("/openapi.json")
    ).json<{
      paths: Record<string, Record<string, { parameters?: { name: string }[] }>>;
      components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
    }>();
    expect(Object.keys(doc.paths["/v1/admin/populations/{name}/sharding"]!).sort()).toEqual(["get", "put"]);
    expect(JSON.stringify(doc.paths["/v1/admin/populations/{name}/sharding"]!.put)).toContain("expected_devices");
    for (const path of ["/v1/admin/rounds/{id}/updates", "/v1/admin/rounds/{id}/update-stream"]) {
      expect(doc.paths[path]!.get!.parameters!.map((p) => p.name)).toContain("shard");
    }
    expect(Object.keys(doc.components.schemas.RoundStatus!.properties!)).toContain("shards");
  });

  it("splits max_reports between the shards in privacy mode none, and closes the round when all are full", async () => {
    const model = uniqueModel("cap");
    await shardTo(model, 2);
    const round = await openRound(model, { privacy_mode: "none", max_reports: 4, min_reports: 1 });
    const { key } = await createApiKey();
    const byShard: [TestDevice[], TestDevice[]] = [[], []];
    while (byShard[0].length < 3 || byShard[1].length < 3) {
      const d = await registerDevice(key);
      byShard[await shardOf(edgeEnv, d.id, 2)]!.push(d);
    }
    for (const shard of byShard) {
      const tasks = [];
      for (const d of shard.slice(0, 3)) tasks.push(await taskFor(d, model));
      const results = [];
      for (let i = 0; i < 3; i++)
        results.push((await upload(round.round_id, await makeUpdate(tasks[i]!, shard[i]!))).status);
      // ⌈4 / 2⌉ = 2 per shard: the third device of each shard finds its shard closed.
      expect(results).toEqual([201, 201, 409]);
    }
    expect(await statusOf(round.round_id)).toMatchObject({ state: "closed", close_reason: "max_reports", accepted: 4 });
  });

  it("keeps every accepted payload while a shard collects, when another shard filled its share and its retention passed", async () => {
    const model = uniqueModel("purge");
    await shardTo(model, 2);
    const round = await openRound(model, { privacy_mode: "none", max_reports: 4, min_reports: 1 });
    const { key } = await createApiKey();
    const byShard: [TestDevice[], TestDevice[]] = [[], []];
    while (byShard[0].length < 2 || byShard[1].length < 2) {
      const d = await registerDevice(key);
      byShard[await shardOf(edgeEnv, d.id, 2)]!.push(d);
    }
    const accepted = new Map<string, Uint8Array>();
    const send = async (d: TestDevice) => {
      const bytes = await makeUpdate(await taskFor(d, model), d);
      await uploadOk(round.round_id, bytes);
      accepted.set(d.id, bytes);
    };
    // Shard 0 fills its share (⌈4 / 2⌉ = 2) and stops; shard 1 has accepted one update and still collects.
    await send(byShard[0][0]!);
    await send(byShard[0][1]!);
    await send(byShard[1][0]!);
    expect(await rowsIn(shardObject(model, 0), "SELECT state FROM rounds")).toEqual([{ state: "closed" }]);
    // Shard 0's close is older than the retention, and its alarm runs: it must not delete what shard 1 accepted.
    await runInDurableObject(shardObject(model, 0), async (_i, state) => {
      state.storage.sql.exec("UPDATE rounds SET closed_at = closed_at - ?", 8 * 86_400_000);
      await state.storage.setAlarm(Date.now());
    });
    await runDurableObjectAlarm(shardObject(model, 0));
    // Shard 1 goes on, and its second update (committed after shard 0's alarm) fills the round.
    await send(byShard[1][1]!);
    expect(await statusOf(round.round_id)).toMatchObject({ state: "closed", accepted: 4, payloads_purged_at: null });
    for (const [id, bytes] of accepted) {
      const res = await adminGet(`/v1/admin/rounds/${round.round_id}/updates/${id}`);
      expect(res.status, `${id}: ${await res.clone().text()}`).toBe(200);
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(bytes);
    }

    // The population's object purges the round once its own retention passed, every shard's payloads with it.
    const population = env.ROUNDS.getByName(model);
    await runInDurableObject(population, async (_i, state) => {
      state.storage.sql.exec("UPDATE rounds SET closed_at = closed_at - ?", 8 * 86_400_000);
      await state.storage.setAlarm(Date.now());
    });
    expect(await runDurableObjectAlarm(population)).toBe(true);
    expect(await statusOf(round.round_id)).toMatchObject({ payloads_purged_at: expect.any(String) });
    expect(await storedKeys(round.round_id)).toEqual([]);
    expect(await r2Keys(round.round_id)).toEqual([]);
    for (const id of accepted.keys()) {
      expect((await adminGet(`/v1/admin/rounds/${round.round_id}/updates/${id}`)).status).toBe(404);
    }
    // A shard's alarm (sealing what it closed with) stores nothing again, and none is left for a purge it never runs.
    for (let s = 0; s < 2; s++) {
      await runDurableObjectAlarm(shardObject(model, s));
      expect(await runInDurableObject(shardObject(model, s), (_i, state) => state.storage.getAlarm())).toBeNull();
    }
    expect(await storedKeys(round.round_id)).toEqual([]);
    expect(await r2Keys(round.round_id)).toEqual([]);
  });
});

describe("the admin check-in bench route on a sharded population", () => {
  it("puts each bench device on the shard its keyed hash names, one by one and batched, and names the S", async () => {
    const model = uniqueModel("benchshard");
    await shardTo(model, 4);
    const round = await openRound(model, { sampling_rate: 0.5 });
    const bench = async (rpc: "checkin" | "batch", n: number, prefix: string) => {
      const res = await call(`/v1/admin/bench/rounds/${model}/checkins?n=${n}&prefix=${prefix}&rpc=${rpc}`, {
        method: "POST",
        headers: ADMIN,
      });
      expect(res.status, await res.clone().text()).toBe(200);
      return res.json<{ runs: number; selected: number; shards: number }>();
    };
    const one = await bench("checkin", 12, "dev_one_");
    const batch = await bench("batch", 24, "dev_batch_");
    expect([one.runs, one.shards, batch.runs, batch.shards]).toEqual([12, 4, 24, 4]);
    const ids = [
      ...Array.from({ length: 12 }, (_, i) => `dev_one_${i}`),
      ...Array.from({ length: 24 }, (_, i) => `dev_batch_${i}`),
    ];
    const held = new Map<string, number>();
    for (let s = 0; s < 4; s++) {
      for (const r of await rowsIn<{ device_id: string }>(shardObject(model, s), "SELECT device_id FROM checkins")) {
        expect(held.has(r.device_id), `${r.device_id} on two shards`).toBe(false);
        held.set(r.device_id, s);
      }
    }
    for (const id of ids) expect([id, held.get(id)]).toEqual([id, await shardOf(edgeEnv, id, 4)]);
    expect(held.size).toBe(ids.length);
    // The population's object took none of them, and the round counts every one (summed from its shards).
    expect(await rowsIn(env.ROUNDS.getByName(model), "SELECT device_id FROM checkins")).toEqual([]);
    const status = await statusOf(round.round_id);
    expect(status.checked_in).toBe(ids.length);
    expect(status.selected).toBe(one.selected + batch.selected);
  });
});
