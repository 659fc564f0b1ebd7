/**
 * Audit shadow populations: `POST /v1/admin/populations/:name/audit-shadows` copies a population's serving model into
 * `<name>-audit-<id>` with its own budget; the registry never serves a shadow's version (uploads stay unpromoted, a
 * promote or rollback is 409 `audit_shadow`), reserved names cannot be created by a plain upload, and every refused
 * request writes nothing. `DELETE …/audit-shadows/:id` deletes a shadow again, payloads, ledger and versions.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { beforeAll, describe, expect, inject, it } from "vitest";
import type { AuditShadow, ModelDetail, PopulationPrivacyStatus } from "@fedge/protocol";
import { fromB64 } from "./inference-fixture.ts";
import { ADMIN, call, errorCode, mlpManifest, storedKeys, upload, uploadForm } from "./registry-helpers.ts";
import { deviceStub } from "../src/durable-objects/device-registry.ts";
import {
  checkinBody,
  checkinRaw,
  createApiKey,
  makeUpdate,
  openRound,
  r2Keys,
  registerDevice,
  storedKeys as payloadKeys,
  taskFor,
  uploadOk,
} from "./rounds-helpers.ts";

let int8: Uint8Array;
beforeAll(() => {
  int8 = fromB64(inject("inferenceFixture").int8Onnx);
});

const BUDGET = { epsilon: 8, delta: 1e-5, accountant: "rdp" };

function createShadow(source: string, body: unknown, headers: Record<string, string> = ADMIN): Promise<Response> {
  return call(`/v1/admin/populations/${source}/audit-shadows`, {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function detail(name: string): Promise<ModelDetail> {
  const res = await call(`/v1/models/${name}`);
  expect(res.status, await res.clone().text()).toBe(200);
  return res.json<ModelDetail>();
}

async function seed(name: string): Promise<void> {
  const res = await upload(name, uploadForm(int8, mlpManifest(name, 1)));
  expect(res.status, await res.clone().text()).toBe(201);
}

describe("audit shadow populations", () => {
  it("copies the serving model into a never-served shadow with its own budget", async () => {
    await seed("aud-a");
    const res = await createShadow("aud-a", { id: "x1", budget: BUDGET });
    expect(res.status, await res.clone().text()).toBe(201);
    const shadow = await res.json<AuditShadow>();
    expect(shadow).toMatchObject({ name: "aud-a-audit-x1", audit_of: "aud-a", source_version: 1, model_version: 1 });
    expect(shadow.privacy).toMatchObject({ budget: { epsilon: 8, delta: 1e-5 }, epsilon_spent: 0 });

    const d = await detail("aud-a-audit-x1");
    expect(d).toMatchObject({ audit_of: "aud-a", serving_version: null, serving: null });
    const source = await detail("aud-a");
    expect(d.versions[0]!.sha256).toBe(source.versions[0]!.sha256);
    expect(source.audit_of).toBeUndefined();
    // devices can fetch the copy to train from; the source's own ledger is untouched
    const onnx = await call("/v1/models/aud-a-audit-x1/versions/1/model.onnx");
    expect(onnx.status).toBe(200);
    expect(new Uint8Array(await onnx.arrayBuffer())).toEqual(int8);
    const ledger = await (await call("/v1/populations/aud-a/privacy")).json<PopulationPrivacyStatus>();
    expect(ledger.budget).toBeNull();
    // and /predict has nothing to serve under the shadow's name
    const predict = await call("/v1/models/aud-a-audit-x1/predict", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer x" },
      body: JSON.stringify({ inputs: [[0]] }),
    });
    expect(predict.status).toBeGreaterThanOrEqual(400);
  });

  it("never serves a shadow's version: uploads stay unpromoted, promote and rollback are refused", async () => {
    await seed("aud-b");
    expect((await createShadow("aud-b", { id: "y", budget: BUDGET })).status).toBe(201);
    const name = "aud-b-audit-y";
    const plain = await upload(name, uploadForm(int8, mlpManifest(name, 2)));
    expect(plain.status, await plain.clone().text()).toBe(201);
    expect((await detail(name)).serving_version).toBeNull();

    const before = await storedKeys(env.MODELS, name);
    const promoted = await upload(name, uploadForm(int8, mlpManifest(name, 3), { promote: "true" }));
    expect(promoted.status).toBe(409);
    expect(await errorCode(promoted)).toBe("audit_shadow");
    const serve = await call(`/v1/admin/models/${name}/serving`, {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ version: 2 }),
    });
    expect(serve.status).toBe(409);
    expect(await errorCode(serve)).toBe("audit_shadow");
    const back = await call(`/v1/admin/models/${name}/rollback`, { method: "POST", headers: ADMIN });
    expect(back.status).toBe(409);
    expect(await errorCode(back)).toBe("audit_shadow");
    expect(await storedKeys(env.MODELS, name)).toEqual(before);
    expect((await detail(name)).serving_version).toBeNull();
  });

  it("reserves -audit- names: a plain upload cannot create one", async () => {
    const res = await upload("aud-c-audit-z", uploadForm(int8, mlpManifest("aud-c-audit-z", 1)));
    expect(res.status).toBe(409);
    expect(await errorCode(res)).toBe("audit_shadow");
    expect(await storedKeys(env.MODELS, "aud-c-audit-z")).toEqual([]);
  });

  it("refuses bad requests with a 4xx and writes nothing", async () => {
    await seed("aud-d");
    const ledger = async (n: string) =>
      (await (await call(`/v1/populations/${n}/privacy`)).json<PopulationPrivacyStatus>()).budget;
    const cases: Array<[string, unknown, number, string, Record<string, string>?]> = [
      ["aud-none", { id: "a", budget: BUDGET }, 404, "model_not_found"],
      ["aud-d", { id: "Bad!", budget: BUDGET }, 400, "validation_failed"],
      ["aud-d", { id: "a", budget: { epsilon: -1, delta: 1e-5 } }, 400, "validation_failed"],
      ["aud-d", { id: "a", budget: BUDGET, extra: 1 }, 400, "validation_failed"],
      ["aud-d", { id: "a", budget: BUDGET }, 403, "forbidden", { authorization: "Bearer wrong" }],
      [`aud-d${"x".repeat(50)}`, { id: "abcdefghij", budget: BUDGET }, 400, "validation_failed"],
    ];
    for (const [source, body, status, code, headers] of cases) {
      const res = await createShadow(source, body, headers ?? ADMIN);
      expect(res.status, `${source} ${JSON.stringify(body)}`).toBe(status);
      expect(await errorCode(res)).toBe(code);
    }
    expect(await storedKeys(env.MODELS, "aud-d-audit-a")).toEqual([]);
    expect(await ledger("aud-d-audit-a")).toBeNull();
    // a shadow of a shadow, and a second shadow under a taken id, are conflicts
    expect((await createShadow("aud-d", { id: "a", budget: BUDGET })).status).toBe(201);
    const twice = await createShadow("aud-d", { id: "a", budget: BUDGET });
    expect(twice.status).toBe(409);
    const nested = await createShadow("aud-d-audit-a", { id: "b", budget: BUDGET });
    expect(nested.status).toBe(409);
    expect(await errorCode(nested)).toBe("audit_shadow");
    expect(await ledger("aud-d-audit-a-audit-b")).toBeNull();
  });
});

describe("deleting an audit shadow", () => {
  const remove = (source: string, id: string, headers: Record<string, string> = ADMIN) =>
    call(`/v1/admin/populations/${source}/audit-shadows/${id}`, { method: "DELETE", headers });
  const privacy = async (n: string) => (await call(`/v1/populations/${n}/privacy`)).json<PopulationPrivacyStatus>();
  /** The tables the shadow's coordinator holds in SQLite (none once it was deleted). */
  const coordinatorTables = (n: string) =>
    runInDurableObject(env.ROUNDS.getByName(n), (_i, state) =>
      state.storage.sql
        .exec<{ name: string }>(
          "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\'",
        )
        .toArray()
        .map((r) => r.name),
    );

  it("deletes its rounds' payloads, its ledger and its versions; the population is untouched and the id is free", async () => {
    await seed("aud-e");
    expect((await createShadow("aud-e", { id: "gone", budget: { ...BUDGET, epsilon: 1000 } })).status).toBe(201);
    const name = "aud-e-audit-gone";
    const round = await openRound(name);
    const device = await registerDevice((await createApiKey()).key);
    await uploadOk(round.round_id, await makeUpdate(await taskFor(device, name), device));
    expect(await payloadKeys(round.round_id)).toHaveLength(1);
    expect((await privacy(name)).rounds).toHaveLength(1);
    const source = await storedKeys(env.MODELS, "aud-e");

    const res = await remove("aud-e", "gone");
    expect(res.status, await res.clone().text()).toBe(204);
    expect(await payloadKeys(round.round_id)).toEqual([]);
    expect(await r2Keys(round.round_id)).toEqual([]);
    expect(await storedKeys(env.MODELS, name)).toEqual([]);
    expect(await coordinatorTables(name)).toEqual([]);
    expect((await call(`/v1/models/${name}`)).status).toBe(404);
    expect(await privacy(name)).toMatchObject({ budget: null, rounds: [], epsilon_spent: null });
    expect(await storedKeys(env.MODELS, "aud-e")).toEqual(source);
    // gone: a second delete is a 404; the id makes a fresh shadow with an empty ledger
    expect((await remove("aud-e", "gone")).status).toBe(404);
    const again = await createShadow("aud-e", { id: "gone", budget: BUDGET });
    expect(again.status, await again.clone().text()).toBe(201);
    expect((await again.json<AuditShadow>()).privacy).toMatchObject({ epsilon_spent: 0, rounds: [] });
  });

  it("keeps no storage when a device that trained there is revoked or deleted afterwards", async () => {
    await seed("aud-g");
    expect((await createShadow("aud-g", { id: "rev", budget: { ...BUDGET, epsilon: 1000 } })).status).toBe(201);
    const name = "aud-g-audit-rev";
    const round = await openRound(name);
    const [a, b] = [await registerDevice((await createApiKey()).key), await registerDevice((await createApiKey()).key)];
    for (const d of [a, b]) await taskFor(d, name);
    expect(round.round_id).toBe(`${name}_1`);
    expect((await remove("aud-g", "rev")).status).toBe(204);
    expect(await coordinatorTables(name)).toEqual([]);

    // The devices' registries recorded the shadow: the revocation and the deletion reach its name, and leave nothing.
    // (`a` is revoked at its registry, as an admin call served by another isolate does it: this isolate forgets nothing.)
    expect((await deviceStub(env, a.id).revokeDevice(Date.now()))?.unreached).toEqual([]);
    expect((await call(`/v1/admin/devices/${b.id}`, { method: "DELETE", headers: ADMIN })).status).toBe(204);
    expect(await coordinatorTables(name)).toEqual([]);
    expect(await privacy(name)).toMatchObject({ budget: null, rounds: [] });

    // The name made again is a fresh shadow. The revoked device cannot join it: check-ins to a shadow always ask the
    // device's registry, so nothing this isolate remembers lets it in.
    expect((await createShadow("aud-g", { id: "rev", budget: BUDGET })).status).toBe(201);
    await openRound(name);
    const res = await checkinRaw(a, checkinBody(a, name));
    expect(res.status).toBe(403);
    expect(await errorCode(res)).toBe("device_revoked");
  });

  it("refuses anything but the admin token and a shadow of that population, and changes nothing", async () => {
    await seed("aud-f");
    expect((await createShadow("aud-f", { id: "kept", budget: BUDGET })).status).toBe(201);
    const name = "aud-f-audit-kept";
    const before = await storedKeys(env.MODELS, name);
    const cases: Array<[string, string, Record<string, string>, number, string]> = [
      ["aud-f", "kept", {}, 401, "unauthorized"],
      ["aud-f", "kept", { authorization: "Bearer wrong" }, 403, "forbidden"],
      ["aud-f", "nope", ADMIN, 404, "not_found"],
      ["aud-none", "kept", ADMIN, 404, "not_found"],
      ["aud-f", "Bad!", ADMIN, 400, "validation_failed"],
    ];
    for (const [source, id, headers, status, code] of cases) {
      const res = await remove(source, id, headers);
      expect(res.status, `${source} ${id}`).toBe(status);
      expect(await errorCode(res)).toBe(code);
    }
    expect(await storedKeys(env.MODELS, name)).toEqual(before);
    expect((await privacy(name)).budget).toMatchObject({ epsilon: 8 });
    // a made-up shadow never reaches a coordinator: no tables were made for it
    expect(await coordinatorTables("aud-f-audit-nope")).toEqual([]);
  });
});
