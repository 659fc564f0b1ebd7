import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  readUpdateStream,
  toBase64Url,
  type AcceptedUpdatePage,
  type RoundStatus,
  type UpdateReceipt,
} from "@fedge/protocol";
import { decodeUpdate, verifyUpdateSignature } from "@fedge/protocol";
import {
  adminGet,
  adminPost,
  call,
  checkin,
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

describe("round lifecycle", () => {
  it("opens, issues tasks, accepts, closes, lists, streams, aggregates and publishes", async () => {
    const model = uniqueModel();
    const { key } = await createApiKey();
    const a = await registerDevice(key);
    const b = await registerDevice(key);

    expect(await checkin(a, model)).toEqual({ selected: false, reason: "no_open_round", retry_after_s: 60 });

    // Mode none: min_reports above 1 is refused in DP modes.
    const opened = await openRound(model, { privacy_mode: "none", min_reports: 2, update_length: 16 });
    expect(opened).toMatchObject({ round_id: `${model}_1`, state: "open", accepted: 0 });
    // A second round cannot open while this one collects.
    const again = await adminPost("/v1/admin/rounds", { ...opened.params, model, duration_s: 60 });
    expect(again.status).toBe(409);

    const ta = await taskFor(a, model);
    expect(ta).toMatchObject({
      round_id: opened.round_id,
      model,
      update_length: 16,
      clip_norm: 1,
      privacy_mode: "none",
    });
    expect(ta.nonce).toMatch(/^[A-Za-z0-9_-]{22}$/);
    // Same answer on a repeat check-in.
    expect(await taskFor(a, model)).toEqual(ta);
    const tb = await taskFor(b, model);
    expect(tb.nonce).not.toBe(ta.nonce);

    const ua = await makeUpdate(ta, a);
    const receipt = await uploadOk(ta.round_id, ua);
    expect(receipt).toMatchObject({ round_id: ta.round_id, device_id: a.id, duplicate: false });
    // Resubmitting the same bytes: the same receipt, duplicate: true, stored once.
    const dup = await upload(ta.round_id, ua);
    expect(dup.status).toBe(200);
    expect(await dup.json<UpdateReceipt>()).toEqual({ ...receipt, duplicate: true });
    expect(await checkin(a, model)).toMatchObject({ selected: false, reason: "already_reported" });

    let status = await (await adminGet(`/v1/admin/rounds/${ta.round_id}`)).json<RoundStatus>();
    expect(status).toMatchObject({ state: "collecting", accepted: 1, selected: 2, checked_in: 2 });
    // Updates are listed only once the round is closed.
    expect((await adminGet(`/v1/admin/rounds/${ta.round_id}/updates`)).status).toBe(409);
    // min_reports is 2: not aggregatable yet either.
    const early = await adminPost(`/v1/admin/rounds/${ta.round_id}/aggregated`, {});
    expect(early.status).toBe(409);

    await uploadOk(tb.round_id, await makeUpdate(tb, b));
    const closed = await adminPost(`/v1/admin/rounds/${ta.round_id}/close`);
    expect(closed.status).toBe(200);
    status = await closed.json<RoundStatus>();
    expect(status).toMatchObject({ state: "closed", close_reason: "admin", accepted: 2 });

    // Late upload (a device selected but never reported would get 409 too).
    const late = await upload(
      ta.round_id,
      await makeUpdate(ta, a, { payload: { dtype: "float32", values: new Float32Array(16) } }),
    );
    expect(late.status).toBe(409);

    const page1 = await (await adminGet(`/v1/admin/rounds/${ta.round_id}/updates?limit=1`)).json<AcceptedUpdatePage>();
    expect(page1.items).toHaveLength(1);
    expect(page1.items[0]).toMatchObject({ seq: 1, device_id: a.id, public_key: toBase64Url(a.keys.publicKey) });
    expect(page1.next_cursor).toBe("1");
    const page2 = await (
      await adminGet(`/v1/admin/rounds/${ta.round_id}/updates?after=1&limit=1`)
    ).json<AcceptedUpdatePage>();
    expect(page2.items.map((u) => u.device_id)).toEqual([b.id]);
    expect(page2.next_cursor).toBeNull();

    const got = await adminGet(`/v1/admin/rounds/${ta.round_id}/updates/${a.id}`);
    expect(got.status).toBe(200);
    const bytes = new Uint8Array(await got.arrayBuffer());
    expect(bytes).toEqual(ua);
    expect(await verifyUpdateSignature(decodeUpdate(bytes), a.keys.publicKey)).toBe(true);

    const stream = await adminGet(`/v1/admin/rounds/${ta.round_id}/update-stream`);
    expect(stream.status).toBe(200);
    const frames = [];
    for await (const f of readUpdateStream(stream.body!)) frames.push(f);
    expect(frames.map((f) => decodeUpdate(f.update).deviceId)).toEqual([a.id, b.id]);
    for (const f of frames) expect(await verifyUpdateSignature(decodeUpdate(f.update), f.publicKey)).toBe(true);

    const agg = await adminPost(`/v1/admin/rounds/${ta.round_id}/aggregated`);
    expect(agg.status).toBe(200);
    expect(await agg.json<RoundStatus>()).toMatchObject({ state: "aggregated", published_version: null });
    const pub = await adminPost(`/v1/admin/rounds/${ta.round_id}/publish`, { model_version: 2 });
    expect(await pub.json<RoundStatus>()).toMatchObject({ state: "aggregated", published_version: 2 });
    expect((await adminPost(`/v1/admin/rounds/${ta.round_id}/publish`, { model_version: 2 })).status).toBe(200);
    const other = await adminPost(`/v1/admin/rounds/${ta.round_id}/publish`, { model_version: 3 });
    expect(other.status).toBe(409);
    expect(await errorCode(other)).toBe("conflict");

    // The next round opens; check-ins now answer for it.
    const next = await openRound(model, { privacy_mode: "none", update_length: 16 });
    expect(next.round_id).toBe(`${model}_2`);
    expect((await taskFor(a, model)).round_id).toBe(next.round_id);
    expect(await storedKeys(ta.round_id)).toHaveLength(2);
  });

  it("closes at max_reports", async () => {
    const model = uniqueModel();
    const { key } = await createApiKey();
    const devices = [await registerDevice(key), await registerDevice(key), await registerDevice(key)];
    // Mode none only: DP rounds take no max_reports (tested in privacy-budget.test.ts).
    const round = await openRound(model, { privacy_mode: "none", max_reports: 2 });
    const tasks = [];
    for (const d of devices) tasks.push(await taskFor(d, model));
    await uploadOk(round.round_id, await makeUpdate(tasks[0]!, devices[0]!));
    await uploadOk(round.round_id, await makeUpdate(tasks[1]!, devices[1]!));
    const third = await upload(round.round_id, await makeUpdate(tasks[2]!, devices[2]!));
    expect(third.status).toBe(409);
    expect(await errorCode(third)).toBe("round_closed");
    const state = await coordinatorState(model);
    expect(state.rounds[0]).toMatchObject({ state: "closed", close_reason: "max_reports", accepted: 2 });
    expect(await storedKeys(round.round_id)).toHaveLength(2);
  });

  it("closes at the deadline by its alarm", async () => {
    const model = uniqueModel();
    const { key } = await createApiKey();
    const d = await registerDevice(key);
    const round = await openRound(model, { duration_s: 1 });
    const task = await taskFor(d, model);
    const stub = env.ROUNDS.getByName(model);
    expect(await runInDurableObject(stub, (_i, state) => state.storage.getAlarm())).toBe(Date.parse(round.deadline));
    // Before the deadline the alarm re-arms itself and leaves the round open.
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect((await coordinatorState(model)).rounds[0]).toMatchObject({ state: "open" });
    expect(await runInDurableObject(stub, (_i, state) => state.storage.getAlarm())).toBe(Date.parse(round.deadline));
    await new Promise((r) => setTimeout(r, Date.parse(round.deadline) - Date.now() + 50));
    // Run the alarm if workerd has not already fired it; either way only the alarm touched the round (the state is read
    // from SQLite directly, no method that closes lazily was called).
    await runDurableObjectAlarm(stub);
    const state = await coordinatorState(model);
    expect(state.rounds[0]).toMatchObject({ state: "closed", close_reason: "deadline", accepted: 0 });
    const late = await upload(round.round_id, await makeUpdate(task, d));
    expect(late.status).toBe(409);
    expect(await errorCode(late)).toBe("round_closed");
    expect(await storedKeys(round.round_id)).toEqual([]);
    expect(await checkin(d, model)).toMatchObject({ selected: false, reason: "no_open_round" });
  });

  it("lists rounds newest first and lists them in the OpenAPI document", async () => {
    const model = uniqueModel();
    await openRound(model);
    await adminPost(`/v1/admin/rounds/${model}_1/close`);
    await openRound(model);
    const list = await (await adminGet(`/v1/admin/rounds?model=${model}`)).json<{ rounds: RoundStatus[] }>();
    expect(list.rounds.map((r) => r.round_id)).toEqual([`${model}_2`, `${model}_1`]);
    const doc = await (
      await call("/openapi.json")
    ).json<{
      paths: Record<string, unknown>;
      components: { securitySchemes: Record<string, unknown> };
    }>();
    expect(Object.keys(doc.components.securitySchemes)).toContain("aggregatorSignature");
    for (const p of [
      "/v1/devices",
      "/v1/rounds/checkin",
      "/v1/rounds/{id}/updates",
      "/v1/admin/rounds",
      "/v1/admin/rounds/{id}/update-stream",
      "/v1/admin/devices/{id}/revoke",
    ]) {
      expect(Object.keys(doc.paths)).toContain(p);
    }
  });
});
