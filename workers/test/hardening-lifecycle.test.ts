/**
 * Issue 17, item 4: data lifecycle. Payloads of a round that closed but was never aggregated are purged too, the
 * retention counting from the close; a version whose bytes were stored but whose index update never happened (an
 * orphan) is recovered by the next upload instead of answering 409 for ever; the registry's index cache is bounded and
 * the model list is cached.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { beforeAll, describe, expect, inject, it } from "vitest";
import type { ModelManifest, RoundStatus } from "@fedge/protocol";
import {
  INDEX_CACHE_MAX,
  ORPHAN_GRACE_MS,
  clearRegistryCache,
  listModels,
  putVersion,
  registryCacheSizes,
  validateUpload,
} from "../src/registry/index.ts";
import { DEFAULT_UPDATE_RETENTION_DAYS } from "../src/training/retention.ts";
import { fromB64 } from "./inference-fixture.ts";
import { mlpManifest, upload as uploadModel, uploadForm } from "./registry-helpers.ts";
import {
  adminGet,
  adminPost,
  call,
  createApiKey,
  makeUpdate,
  openRound,
  r2Keys,
  registerDevice,
  storedKeys,
  taskFor,
  uniqueModel,
  uploadOk,
} from "./rounds-helpers.ts";

let int8: Uint8Array;
let fp32: Uint8Array;

beforeAll(() => {
  const fixture = inject("inferenceFixture");
  int8 = fromB64(fixture.int8Onnx);
  fp32 = fromB64(fixture.fp32Onnx);
});

const DAY = 86_400_000;

/** `env` whose MODELS bucket fails `put` for keys matching `failPut` (and counts `list` calls). */
function faultyEnv(failPut: RegExp | null) {
  const bucket = env.MODELS;
  const counts = { list: 0 };
  const MODELS = {
    put: (key: string, ...rest: unknown[]) => {
      if (failPut?.test(key)) return Promise.reject(new Error(`injected R2 failure on put ${key}`));
      return (bucket.put as (...a: unknown[]) => Promise<unknown>).call(bucket, key, ...rest);
    },
    get: bucket.get.bind(bucket),
    head: bucket.head.bind(bucket),
    delete: bucket.delete.bind(bucket),
    list: (...a: Parameters<R2Bucket["list"]>) => {
      counts.list++;
      return bucket.list(...a);
    },
  } as unknown as R2Bucket;
  return { env: { ...env, MODELS }, counts };
}

async function manifestFor(name: string, version: number, bytes: Uint8Array): Promise<ModelManifest> {
  const fields = mlpManifest(
    name,
    version,
    bytes === fp32 ? { quantization: { scheme: "none", weight_dtype: "float32" } } : {},
  );
  // unsigned manifests: no aggregator key is consulted
  return validateUpload(name, fields as Parameters<typeof validateUpload>[1], bytes, Date.now(), {
    isTrustedSigner: async () => false,
  });
}

describe("payload retention", () => {
  it("purges a round that closed under min_reports and was never aggregated, counting from the close", async () => {
    const model = uniqueModel("abandoned");
    const { key } = await createApiKey();
    const device = await registerDevice(key);
    // min_reports above 1 only exists without DP (DP rounds are never decided on an exact count)
    const round = await openRound(model, { update_length: 16, min_reports: 5, privacy_mode: "none" });
    await uploadOk(round.round_id, await makeUpdate(await taskFor(device, model), device));
    const closed = await (await adminPost(`/v1/admin/rounds/${round.round_id}/close`)).json<RoundStatus>();
    const coordinator = env.ROUNDS.getByName(model);
    await runDurableObjectAlarm(coordinator); // seals into R2
    expect((await r2Keys(round.round_id)).length).toBeGreaterThan(0);
    // Under min_reports it can never be aggregated; its payloads are due the retention after the close.
    expect((await adminPost(`/v1/admin/rounds/${round.round_id}/aggregated`)).status).toBe(409);
    const due = Date.parse(closed.closed_at!) + DEFAULT_UPDATE_RETENTION_DAYS * DAY;
    expect(await runInDurableObject(coordinator, (_i, state) => state.storage.getAlarm())).toBe(due);
    await runInDurableObject(coordinator, async (_i, state) => {
      state.storage.sql.exec("UPDATE rounds SET closed_at = closed_at - ?", 8 * DAY);
      await state.storage.setAlarm(Date.now());
    });
    expect(await runDurableObjectAlarm(coordinator)).toBe(true);
    const status = await (await adminGet(`/v1/admin/rounds/${round.round_id}`)).json<RoundStatus>();
    expect(status).toMatchObject({ state: "closed", payloads_purged_at: expect.any(String) });
    expect(await storedKeys(round.round_id)).toEqual([]);
    expect(await r2Keys(round.round_id)).toEqual([]);
  });
});

describe("registry orphans", () => {
  it("recovers a version whose bytes were stored but whose index update failed", async () => {
    const name = uniqueModel("orphan");
    const manifest = await manifestFor(name, 1, int8);
    const faulty = faultyEnv(/manifest\.json$/);
    await expect(putVersion(faulty.env, manifest, int8, { now: Date.now() })).rejects.toThrow(/injected/);
    // The bytes are there, nothing lists them, nothing serves them.
    expect(await env.MODELS.head(`models/${name}/versions/1/model.onnx`)).not.toBeNull();
    expect((await call(`/v1/models/${name}`)).status).toBe(404);
    // The retried upload is accepted (it answered 409 for ever before).
    const retried = await uploadModel(name, uploadForm(int8, mlpManifest(name, 1)));
    expect(retried.status, await retried.clone().text()).toBe(201);
    const onnx = await call(`/v1/models/${name}/versions/1/model.onnx`);
    expect(new Uint8Array(await onnx.arrayBuffer())).toEqual(int8);
  });

  it("replaces an orphan with other bytes only once it is older than the grace period", async () => {
    const name = uniqueModel("orphan2");
    const faulty = faultyEnv(/index\.json$/);
    await expect(putVersion(faulty.env, await manifestFor(name, 1, int8), int8, { now: Date.now() })).rejects.toThrow(
      /injected/,
    );
    const other = await manifestFor(name, 1, fp32);
    // Young: it may belong to an upload still in flight.
    await expect(putVersion(env, other, fp32, { now: Date.now() })).rejects.toMatchObject({ status: 409 });
    const index = await putVersion(env, other, fp32, { now: Date.now() + ORPHAN_GRACE_MS + 1_000 });
    expect(index.versions.map((v) => v.sha256)).toEqual([other.sha256]);
    const onnx = await call(`/v1/models/${name}/versions/1/model.onnx`);
    expect(new Uint8Array(await onnx.arrayBuffer())).toEqual(fp32);
  });
});

describe("registry caches", () => {
  it("keep at most INDEX_CACHE_MAX indexes, whatever names callers send", async () => {
    clearRegistryCache();
    for (let i = 0; i < INDEX_CACHE_MAX + 40; i++) {
      const res = await call(`/v1/models/nosuchmodel-${i}`);
      expect(res.status).toBe(404);
    }
    expect(registryCacheSizes().indexes).toBeLessThanOrEqual(INDEX_CACHE_MAX);
  });

  it("list R2 once per TTL for GET /v1/models", async () => {
    clearRegistryCache();
    const { env: counted, counts } = faultyEnv(null);
    await listModels(counted);
    await listModels(counted);
    await listModels(counted);
    expect(counts.list).toBe(1);
  });
});
