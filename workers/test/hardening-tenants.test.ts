/**
 * Issue 17, item 3: tenants. A population belongs to the tenant of its first round; only that tenant's API keys check
 * devices in and upload (a refusal changes nothing, not even the device's population list); one key's devices fill at
 * most `max_selected_per_key` selections of a round; a new key may register 1,000 devices unless an admin says more.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { DEFAULT_DEVICE_QUOTA_PER_KEY, type CheckinResponse } from "@fedge/protocol";
import {
  ADMIN,
  adminGet,
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
  ensureBudget,
  roundParams,
  taskFor,
  uniqueModel,
  upload,
} from "./rounds-helpers.ts";

async function populationsOf(deviceId: string): Promise<string[]> {
  return runInDurableObject(env.DEVICES.getByName(`device:${deviceId}`), (_i, state) =>
    state.storage.sql
      .exec<{ model: string }>("SELECT model FROM population")
      .toArray()
      .map((r) => r.model),
  );
}

describe("tenants", () => {
  it("only the owning tenant's keys check devices in; a refusal records nothing", async () => {
    const model = uniqueModel("tenant");
    await openRound(model); // no tenant named: the default tenant owns it
    const foreignKey = await createApiKey("acme");
    const foreign = await registerDevice(foreignKey.key);
    const before = await coordinatorState(model);
    const res = await checkinRaw(foreign, checkinBody(foreign, model));
    expect(res.status).toBe(403);
    expect(await errorCode(res)).toBe("forbidden");
    expect(await coordinatorState(model)).toEqual(before);
    expect(await populationsOf(foreign.id)).toEqual([]);
    // The owner's keys take part.
    const own = await registerDevice((await createApiKey()).key);
    expect((await checkin(own, model)).selected).toBe(true);
  });

  it("a population opened for a tenant takes that tenant's devices only, and cannot change hands", async () => {
    const model = uniqueModel("acme");
    await ensureBudget(model); // a DP round opens only against a budget
    const opened = await call("/v1/admin/rounds", {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ ...roundParams(model), tenant: "acme" }),
    });
    expect(opened.status).toBe(201);
    const acme = await registerDevice((await createApiKey("acme")).key);
    const other = await registerDevice((await createApiKey()).key);
    const task = await taskFor(acme, model);
    const refused = await checkinRaw(other, checkinBody(other, model));
    expect(refused.status).toBe(403);
    // An upload of acme's device with a key of another tenant is refused too, before anything is stored.
    const before = await coordinatorState(model);
    const foreignUpload = await upload(task.round_id, await makeUpdate(task, acme), undefined, {
      apiKey: (await createApiKey("globex")).key,
    });
    expect(foreignUpload.status).toBe(403);
    expect(await coordinatorState(model)).toEqual(before);
    const ok = await upload(task.round_id, await makeUpdate(task, acme));
    expect(ok.status, await ok.clone().text()).toBe(201);
    // The next round cannot be opened for another tenant.
    await call(`/v1/admin/rounds/${task.round_id}/close`, { method: "POST", headers: ADMIN });
    const hijack = await call("/v1/admin/rounds", {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ ...roundParams(model), tenant: "globex" }),
    });
    expect(hijack.status).toBe(409);
    expect(await errorCode(hijack)).toBe("conflict");
  });

  it("caps the selections of one API key per round (rounds without DP; DP rounds refuse the cap)", async () => {
    const dp = await call("/v1/admin/rounds", {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify(roundParams(uniqueModel("capdp"), { max_selected_per_key: 2 })),
    });
    expect(dp.status).toBe(400); // a per-key cap would break the Poisson sampling the accountant assumes
    await dp.body?.cancel();
    const model = uniqueModel("cap");
    await openRound(model, { privacy_mode: "none", max_selected_per_key: 2 });
    const heavy = (await createApiKey()).key;
    const answers: CheckinResponse[] = [];
    for (let i = 0; i < 4; i++) answers.push(await checkin(await registerDevice(heavy), model));
    expect(answers.map((a) => a.selected)).toEqual([true, true, false, false]);
    expect(answers[3]).toMatchObject({ selected: false, reason: "not_sampled" });
    // Another key of the tenant still gets its own selections.
    expect((await checkin(await registerDevice((await createApiKey()).key), model)).selected).toBe(true);
  });

  it("gives a new key a modest default device quota", async () => {
    expect(DEFAULT_DEVICE_QUOTA_PER_KEY).toBe(1_000);
    const { id } = await createApiKey();
    const quota = await (await adminGet(`/v1/admin/device-quotas/${id}`)).json<{ max_devices: number }>();
    expect(quota.max_devices).toBe(1_000);
  });

  it("shows the tenant of a key, and refuses a malformed one", async () => {
    const created = await call("/v1/admin/keys", {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ name: "acme fleet", tenant: "acme" }),
    });
    expect(created.status).toBe(201);
    expect(await created.json()).toMatchObject({ tenant: "acme" });
    const bad = await call("/v1/admin/keys", {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ name: "x", tenant: "Not A Tenant" }),
    });
    expect(bad.status).toBe(400);
  });
});
