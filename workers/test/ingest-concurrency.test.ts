/**
 * Many uploads in parallel: none lost, none counted twice, each stored once.
 */
import { describe, expect, it } from "vitest";
import { sha256Hex, updateDigestHex, type AcceptedUpdatePage, type UpdateReceipt } from "@fedge/protocol";
import {
  adminGet,
  adminPost,
  coordinatorState,
  createApiKey,
  makeUpdate,
  openRound,
  registerDevice,
  storedKeys,
  taskFor,
  uniqueModel,
  upload,
  vectorWithNorm,
} from "./rounds-helpers.ts";

describe("concurrent ingestion", () => {
  it("accepts 50 parallel uploads (each sent twice at once) exactly once each", async () => {
    const model = uniqueModel("conc");
    const { key } = await createApiKey();
    const n = 50;
    const devices = await Promise.all(Array.from({ length: n }, () => registerDevice(key)));
    const round = await openRound(model, { update_length: 256 });
    const tasks = await Promise.all(devices.map((d) => taskFor(d, model)));
    const bodies = await Promise.all(devices.map((d, i) => makeUpdate(tasks[i]!, d)));

    // Every body twice, all 100 requests in flight together.
    const responses = await Promise.all([...bodies, ...bodies].map((b) => upload(round.round_id, b)));
    const receipts = await Promise.all(responses.map((r) => r.json<UpdateReceipt>()));
    for (const r of responses) expect([200, 201]).toContain(r.status);
    expect(responses.filter((r) => r.status === 201)).toHaveLength(n);
    expect(receipts.filter((r) => !r.duplicate)).toHaveLength(n);
    for (let i = 0; i < n; i++) {
      const [x, y] = [receipts[i]!, receipts[i + n]!];
      expect(x.device_id).toBe(devices[i]!.id);
      expect({ ...x, duplicate: false }).toEqual({ ...y, duplicate: false });
    }

    const state = await coordinatorState(model);
    expect(state.updates).toBe(n);
    expect(state.rounds[0]).toMatchObject({ accepted: n, state: "collecting" });
    const keys = await storedKeys(round.round_id);
    expect(keys).toHaveLength(n);
    expect(new Set(keys.map((k) => k.split("/")[2])).size).toBe(n);

    await adminPost(`/v1/admin/rounds/${round.round_id}/close`);
    const page = await (
      await adminGet(`/v1/admin/rounds/${round.round_id}/updates?limit=1000`)
    ).json<AcceptedUpdatePage>();
    expect(page.items.map((u) => u.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(new Set(page.items.map((u) => u.device_id))).toEqual(new Set(devices.map((d) => d.id)));
  });

  it("lets exactly one of two different updates from the same device win a race", async () => {
    const model = uniqueModel("conc");
    const { key } = await createApiKey();
    const d = await registerDevice(key);
    const round = await openRound(model);
    const task = await taskFor(d, model);
    const variants = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        makeUpdate(task, d, { payload: { dtype: "float32", values: vectorWithNorm(8, 0.1 + i * 0.1) } }),
      ),
    );
    const responses = await Promise.all(variants.map((b) => upload(round.round_id, b)));
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 409, 409, 409, 409, 409]);
    expect((await coordinatorState(model)).updates).toBe(1);
    const keys = await storedKeys(round.round_id);
    expect(keys).toHaveLength(1);
    const winner = await responses.find((r) => r.status === 201)!.json<UpdateReceipt>();
    expect(keys[0]).toBe(`rounds/${round.round_id}/${d.id}/${winner.sha256}`);
    // The update is named by its signed digest (the hash its signature covers), not by a second hash of the body.
    const winnerBytes = variants[responses.findIndex((r) => r.status === 201)]!;
    expect(winner.sha256).toBe(await updateDigestHex(winnerBytes));
    expect(winner.sha256).not.toBe(await sha256Hex(winnerBytes));
  });
});
