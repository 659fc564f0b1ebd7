/**
 * What the edge does with the privacy fields of a round (the update codec's clip bit, `report_clip_bit`, privacy mode
 * `none`, `population_privacy`): retired version 1 and 2 bodies, a missing or unasked clip bit, and a non-private round's
 * unclipped update. Every refusal is a 4xx with no state change (coordinator rows and stored payloads unchanged).
 */
import { describe, expect, it } from "vitest";
import { decodeUpdate } from "@fedge/protocol";
import {
  adminGet,
  coordinatorState,
  createApiKey,
  makeUpdate,
  makeUpdateV1,
  makeUpdateV2,
  openRound,
  registerDevice,
  roundParams,
  storedKeys,
  taskFor,
  uniqueModel,
  upload,
  uploadOk,
  vectorWithNorm,
  call,
  ADMIN,
} from "./rounds-helpers.ts";

async function setup(overrides: Parameters<typeof openRound>[1] = {}) {
  const model = uniqueModel("priv");
  const { key } = await createApiKey();
  const device = await registerDevice(key);
  const round = await openRound(model, overrides);
  const task = await taskFor(device, model);
  return { model, round, device, task };
}

async function snapshot(model: string, roundId: string) {
  return { coordinator: await coordinatorState(model), stored: await storedKeys(roundId) };
}

/** Asserts a 4xx envelope with `code`, a message matching `message`, and no state change. */
async function expectRefused(
  res: Response,
  status: number,
  code: string,
  message: RegExp,
  model: string,
  roundId: string,
  before: Awaited<ReturnType<typeof snapshot>>,
) {
  const body = await res.json<{ error: { code: string; message: string } }>();
  expect(res.status, JSON.stringify(body)).toBe(status);
  expect(body.error.code).toBe(code);
  expect(body.error.message).toMatch(message);
  expect(await snapshot(model, roundId)).toEqual(before);
}

describe("update format version", () => {
  it("refuses version 1 (no clip bit) and 2 (whole-body signature) bodies with 400 naming the version; v3 is accepted", async () => {
    const { model, round, device, task } = await setup();
    const before = await snapshot(model, round.round_id);
    const v1 = makeUpdateV1(task, device);
    expect(v1[4]).toBe(1);
    await expectRefused(
      await upload(round.round_id, v1),
      400,
      "malformed_update",
      /update format version 1 is not supported \(this codec reads version 3 only; version 1 has no clip-bit field/,
      model,
      round.round_id,
      before,
    );
    const v2 = await makeUpdateV2(task, device);
    expect(v2[4]).toBe(2);
    await expectRefused(
      await upload(round.round_id, v2),
      400,
      "malformed_update",
      /update format version 2 is not supported \(this codec reads version 3 only; version 2 signs the whole body, not its SHA-256 digest/,
      model,
      round.round_id,
      before,
    );
    await uploadOk(round.round_id, await makeUpdate(task, device));
  });
});

describe("clip bit", () => {
  it("a round with report_clip_bit takes b = 0 and b = 1 and refuses an update that reports none", async () => {
    const { model, round, device, task } = await setup({ report_clip_bit: true });
    expect(task.report_clip_bit).toBe(true);
    const before = await snapshot(model, round.round_id);
    await expectRefused(
      await upload(round.round_id, await makeUpdate(task, device, { clipBit: null })),
      400,
      "malformed_update",
      /needs the device's clip bit/,
      model,
      round.round_id,
      before,
    );
    await uploadOk(round.round_id, await makeUpdate(task, device, { clipBit: 0 }));
    const other = await registerDevice((await createApiKey()).key);
    const t2 = await taskFor(other, model);
    await uploadOk(round.round_id, await makeUpdate(t2, other, { clipBit: 1 }));
    const res = await adminGet(`/v1/admin/rounds/${round.round_id}/updates/${other.id}`);
    expect(res.status).toBe(200);
    expect(decodeUpdate(new Uint8Array(await res.arrayBuffer())).clipBit).toBe(1);
  });

  it("a round without it (central without adaptive clipping, local) refuses an update that reports one", async () => {
    for (const over of [{}, { privacy_mode: "local" as const, local_noise_multiplier: 1 }]) {
      const { model, round, device, task } = await setup(over);
      expect(task.report_clip_bit).toBeUndefined();
      const before = await snapshot(model, round.round_id);
      await expectRefused(
        await upload(round.round_id, await makeUpdate(task, device, { clipBit: 1 })),
        400,
        "malformed_update",
        new RegExp(`privacy mode ${task.privacy_mode}\\) does not take a clip bit`),
        model,
        round.round_id,
        before,
      );
      await uploadOk(round.round_id, await makeUpdate(task, device));
    }
  });

  it("report_clip_bit outside central mode is refused when the round is opened", async () => {
    const res = await call("/v1/admin/rounds", {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify(
        roundParams(uniqueModel("priv"), { privacy_mode: "local", local_noise_multiplier: 1, report_clip_bit: true }),
      ),
    });
    expect(res.status).toBe(400);
    expect((await res.json<{ error: { message: string } }>()).error.message).toMatch(/report_clip_bit/);
  });
});

describe("privacy mode none", () => {
  it("is stated in the task, has no clip norm, and takes an unclipped update (never a clip bit)", async () => {
    const { clip_norm: _c, ...rest } = roundParams("unused", { privacy_mode: "none" });
    const model = uniqueModel("none");
    const res = await call("/v1/admin/rounds", {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ ...rest, model }),
    });
    expect(res.status, await res.clone().text()).toBe(201);
    const device = await registerDevice((await createApiKey()).key);
    const task = await taskFor(device, model);
    expect(task.privacy_mode).toBe("none");
    expect(task.clip_norm).toBeUndefined();
    expect(task.population_privacy).toBeUndefined();
    const roundId = task.round_id;
    const before = await snapshot(model, roundId);
    const good = await makeUpdate(task, device, { payload: { dtype: "float32", values: vectorWithNorm(8, 1000) } });
    expect((await upload(roundId, await makeUpdate(task, device, { clipBit: 1 }))).status).toBe(400);
    expect(await snapshot(model, roundId)).toEqual(before);
    await uploadOk(roundId, good);
  });

  it("refuses a central or local round without clip_norm, and population_privacy in mode none", async () => {
    const { clip_norm: _c, ...noClip } = roundParams(uniqueModel("none"));
    for (const body of [
      noClip,
      { ...noClip, privacy_mode: "local", local_noise_multiplier: 1 },
      { ...noClip, privacy_mode: "none", population_privacy: { epsilon: 1, delta: 1e-5 } },
    ]) {
      const res = await call("/v1/admin/rounds", {
        method: "POST",
        headers: { ...ADMIN, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(400);
      expect((await res.json<{ error: { code: string } }>()).error.code).toBe("validation_failed");
    }
  });
});

describe("population privacy", () => {
  it("reaches every selected device's task as the aggregator stated it", async () => {
    const population_privacy = { epsilon: 0.8, planned_epsilon: 4, delta: 1e-5 };
    const { task, round } = await setup({ population_privacy });
    expect(task.population_privacy).toEqual(population_privacy);
    expect(round.params.population_privacy).toEqual(population_privacy);
  });
});
