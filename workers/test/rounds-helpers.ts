/**
 * Shared helpers for the training-plane tests (devices-*, rounds-*, ingest-*): real HTTP through the worker's fetch
 * handler, real Durable Objects, R2 and KV in workerd.
 */
import { exports } from "cloudflare:workers";
import { env, runInDurableObject } from "cloudflare:test";
import { expect } from "vitest";
import nacl from "tweetnacl";
import {
  checkinSigningBytes,
  fromBase64Url,
  parseRoundId,
  secureAggregationFor,
  toBase64Url,
  type CheckinResponse,
  type DistributedNoise,
  type OpenRoundRequest,
  type RoundStatus,
  type RoundTask,
  type UpdateReceipt,
} from "@fedge/protocol";
import { distributedNoiseOf, planDistributedDiscreteGaussian } from "@fedge/privacy";
import { UPDATE_MEDIA_TYPE, decodeUpdate, encodeUpdate, type UpdatePayload } from "@fedge/protocol";
import { generateApiKey, hashApiKey, ledgerFor } from "../src/middleware/auth/index.ts";
import { UPDATE_STORE_SHARDS, updateStoreStub } from "../src/durable-objects/update-store.ts";
import { shardStub, type RoundCoordinator } from "../src/durable-objects/round-coordinator/index.ts";

export const ADMIN = { authorization: "Bearer test-admin-token" };

export function call(path: string, init: RequestInit = {}): Promise<Response> {
  return exports.default.fetch(`http://edge${path}`, init);
}

export async function errorCode(res: Response): Promise<string> {
  const body = await res.json<{ error: { code: string; message: string } }>();
  expect(Object.keys(body)).toEqual(["error"]);
  expect(body.error.message).toEqual(expect.any(String));
  return body.error.code;
}

/** A fresh API key, created directly in its ledger (with a high rate limit so bulk tests are not throttled). */
export async function createApiKey(tenant?: string): Promise<{ id: string; key: string }> {
  const { id, key } = generateApiKey();
  await ledgerFor(env, id).create({
    id,
    name: "training test",
    hash: await hashApiKey(key),
    rateLimitPerMinute: 1_000_000,
    now: Date.now(),
    ...(tenant ? { tenant } : {}),
  });
  return { id, key };
}

export interface TestDevice {
  id: string;
  keys: nacl.SignKeyPair;
  apiKey: string;
}

/** The API key each registered device was registered under (uploads send it, as the SDK does). */
const deviceApiKeys = new Map<string, string>();
let lastApiKey: string | null = null;

export async function registerDevice(apiKey: string): Promise<TestDevice> {
  const keys = nacl.sign.keyPair();
  const res = await call("/v1/devices", {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ public_key: toBase64Url(keys.publicKey), platform: "node" }),
  });
  expect(res.status).toBe(201);
  const body = await res.json<{ device_id: string }>();
  deviceApiKeys.set(body.device_id, apiKey);
  lastApiKey = apiKey;
  return { id: body.device_id, keys, apiKey };
}

/** The mechanism test rounds are charged for: z = 1 with a fixed clip norm. */
export const TEST_MECHANISM = { noise_multiplier: 1, clip_rule: "fixed" } as const;

/**
 * A distributed round's noise, rotation seed and secure aggregation, kept consistent (one ring Z_{2^b}, d' = the
 * padded length): the noise is `noise` if given, else KLS21's plan for `length` values at 16 bits, z = 1, 10 devices
 * expected and the sum released from 4 on (what these tests' small rounds can reach).
 */
export function distributedRoundFields(length: number, noise?: DistributedNoise) {
  const distributed =
    noise ??
    distributedNoiseOf(
      planDistributedDiscreteGaussian({
        bits: 16,
        length,
        clipNorm: 1,
        noiseMultiplier: 1,
        expectedClients: 10,
        minClients: 4,
      }),
    );
  return {
    mechanism: { ...TEST_MECHANISM, distributed },
    rotation_seed: toBase64Url(crypto.getRandomValues(new Uint8Array(32))),
    secure_aggregation: secureAggregationFor(distributed),
  };
}

/**
 * An open-round body: central mode (charged {@link TEST_MECHANISM}) unless overridden; in local mode the mechanism is
 * the devices' noise; in mode `none` no mechanism, and `max_reports` 1000.
 */
export function roundParams(model: string, overrides: Partial<OpenRoundRequest> = {}): Record<string, unknown> {
  const mode = overrides.privacy_mode ?? "central";
  const privacy =
    mode === "none"
      ? { max_reports: 1000 }
      : mode === "local"
        ? { mechanism: { noise_multiplier: overrides.local_noise_multiplier, clip_rule: "fixed" } }
        : mode === "distributed"
          ? distributedRoundFields(overrides.update_length ?? 8, overrides.mechanism?.distributed)
          : { mechanism: TEST_MECHANISM };
  return {
    model,
    model_version: 1,
    clip_norm: 1,
    learning_rate: 0.1,
    local_epochs: 1,
    batch_size: 16,
    privacy_mode: "central",
    trainable: "all",
    update_length: 8,
    sampling_rate: 1,
    min_reports: 1,
    ...privacy,
    duration_s: 600,
    ...overrides,
  };
}

/** A budget no test round comes near. */
export const GENEROUS_BUDGET = { epsilon: 1e6, delta: 1e-5 };

/** `PUT /v1/admin/populations/:model/privacy-budget` with the admin token. */
export function putBudget(model: string, budget: Record<string, unknown> = GENEROUS_BUDGET): Promise<Response> {
  return call(`/v1/admin/populations/${model}/privacy-budget`, {
    method: "PUT",
    headers: { ...ADMIN, "content-type": "application/json" },
    body: JSON.stringify(budget),
  });
}

/** Gives `model` a budget no test round comes near, unless it has one already. */
export async function ensureBudget(model: string): Promise<void> {
  const ledger = await (await call(`/v1/populations/${model}/privacy`)).json<{ budget: unknown }>();
  if (ledger.budget !== null) return;
  const res = await putBudget(model);
  expect(res.status, await res.clone().text()).toBe(200);
}

/** Opens a round with the admin token; a DP round's population without a budget gets a generous one first. */
export async function openRound(model: string, overrides: Partial<OpenRoundRequest> = {}): Promise<RoundStatus> {
  if ((overrides.privacy_mode ?? "central") !== "none") await ensureBudget(model);
  const res = await call("/v1/admin/rounds", {
    method: "POST",
    headers: { ...ADMIN, "content-type": "application/json" },
    body: JSON.stringify(roundParams(model, overrides)),
  });
  expect(res.status, await res.clone().text()).toBe(201);
  return res.json<RoundStatus>();
}

export async function adminPost(path: string, body?: unknown): Promise<Response> {
  return call(path, {
    method: "POST",
    headers: { ...ADMIN, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? null : JSON.stringify(body),
  });
}

export async function adminGet(path: string): Promise<Response> {
  return call(path, { headers: ADMIN });
}

export function checkinBody(device: TestDevice, model: string, timestamp = new Date().toISOString()) {
  const signature = nacl.sign.detached(checkinSigningBytes(model, device.id, timestamp), device.keys.secretKey);
  return { model, device_id: device.id, timestamp, signature: toBase64Url(signature) };
}

export async function checkinRaw(device: TestDevice, body: Record<string, unknown>): Promise<Response> {
  return call("/v1/rounds/checkin", {
    method: "POST",
    headers: { authorization: `Bearer ${device.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

export async function checkin(device: TestDevice, model: string): Promise<CheckinResponse> {
  const res = await checkinRaw(device, checkinBody(device, model));
  expect(res.status, await res.clone().text()).toBe(200);
  return res.json<CheckinResponse>();
}

/** Checks in and returns the task (the round must sample with q = 1). */
export async function taskFor(device: TestDevice, model: string): Promise<RoundTask> {
  const answer = await checkin(device, model);
  if (!answer.selected) throw new Error(`device was not selected: ${JSON.stringify(answer)}`);
  return answer.task;
}

/** A float32 vector of `n` values with L2 norm `norm`. */
export function vectorWithNorm(n: number, norm: number): Float32Array {
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = ((i % 7) - 3) / 3 + 0.1;
  let s = 0;
  for (const x of v) s += x * x;
  const k = norm / Math.sqrt(s);
  for (let i = 0; i < n; i++) v[i] = v[i]! * k;
  return v;
}

export interface UpdateOverrides {
  roundId?: string;
  deviceId?: string;
  nonce?: Uint8Array;
  shape?: number[];
  payload?: UpdatePayload;
  secretKey?: Uint8Array;
  /** The clip bit to report; `null` reports none. @default 1 when the task asks for it, else not reported */
  clipBit?: 0 | 1 | null;
}

/** A signed update for `task` from `device` (norm 0.5·C, or 0.5 without a clip norm, unless the payload is overridden). */
export function makeUpdate(task: RoundTask, device: TestDevice, o: UpdateOverrides = {}): Promise<Uint8Array> {
  const values = vectorWithNorm(task.update_length, (task.clip_norm ?? 1) * 0.5);
  const clipBit = o.clipBit !== undefined ? o.clipBit : task.report_clip_bit ? 1 : null;
  return encodeUpdate(
    {
      roundId: o.roundId ?? task.round_id,
      deviceId: o.deviceId ?? device.id,
      nonce: o.nonce ?? fromBase64Url(task.nonce),
      shape: o.shape ?? [task.update_length],
      payload: o.payload ?? { dtype: "float32", values },
      clipBit,
    },
    o.secretKey ?? device.keys.secretKey,
  );
}

/**
 * The same update in the retired format version 1 (no clip-bit field; its byte table is the v1 header of
 * docs/DESIGN.md's history), float32 only, signed by `device`: what an SDK from before the clip bit uploads.
 */
export function makeUpdateV1(task: RoundTask, device: TestDevice): Uint8Array {
  const values = vectorWithNorm(task.update_length, (task.clip_norm ?? 1) * 0.5);
  const ascii = (t: string) => Uint8Array.from(t, (c) => c.charCodeAt(0));
  const round = ascii(task.round_id);
  const dev = ascii(device.id);
  const headerEnd = 31 + round.length + dev.length + 4;
  const payloadAt = Math.ceil(headerEnd / 4) * 4;
  const out = new Uint8Array(payloadAt + 4 * values.length + 64);
  const view = new DataView(out.buffer);
  out.set([0x46, 0x45, 0x44, 0x55, 1, 1, 0, 0], 0);
  let p = 8;
  out[p++] = round.length;
  out.set(round, p);
  p += round.length;
  out[p++] = dev.length;
  out.set(dev, p);
  p += dev.length;
  out.set(fromBase64Url(task.nonce), p);
  p += 16;
  out[p++] = 1;
  view.setUint32(p, values.length, true);
  view.setUint32(p + 4, values.length, true);
  values.forEach((v, i) => view.setFloat32(payloadAt + 4 * i, v, true));
  const end = out.length - 64;
  out.set(nacl.sign.detached(out.subarray(0, end), device.keys.secretKey), end);
  return out;
}

/**
 * The same update in the retired format version 2 (version 3's layout, version byte 2, Ed25519 over the whole body
 * instead of its SHA-256 digest), signed by `device`: what an SDK from before codec version 3 uploads.
 */
export async function makeUpdateV2(task: RoundTask, device: TestDevice, o: UpdateOverrides = {}): Promise<Uint8Array> {
  const out = await makeUpdate(task, device, o);
  out[4] = 2;
  const end = out.length - 64;
  out.set(nacl.sign.detached(out.subarray(0, end), o.secretKey ?? device.keys.secretKey), end);
  return out;
}

/** The API key an upload of `bytes` carries: its device's, else the key of the last registered device. */
function uploadKeyFor(bytes: Uint8Array): string | null {
  try {
    const deviceId = decodeUpdate(bytes, { maxBytes: bytes.length }).deviceId;
    return deviceApiKeys.get(deviceId) ?? lastApiKey;
  } catch {
    return lastApiKey;
  }
}

/**
 * POSTs an update with the API key of its device (as the SDK does); `apiKey: null` sends none.
 */
export function upload(
  roundId: string,
  bytes: Uint8Array,
  contentType = UPDATE_MEDIA_TYPE,
  options: { apiKey?: string | null; headers?: Record<string, string> } = {},
): Promise<Response> {
  const key = options.apiKey === undefined ? uploadKeyFor(bytes) : options.apiKey;
  return call(`/v1/rounds/${roundId}/updates`, {
    method: "POST",
    headers: {
      "content-type": contentType,
      ...(key === null ? {} : { authorization: `Bearer ${key}` }),
      ...options.headers,
    },
    body: bytes,
  });
}

export async function uploadOk(roundId: string, bytes: Uint8Array): Promise<UpdateReceipt> {
  const res = await upload(roundId, bytes);
  expect(res.status, await res.clone().text()).toBe(201);
  return res.json<UpdateReceipt>();
}

/** What the population's coordinator holds, read straight from its SQLite storage. */
export async function coordinatorState(model: string): Promise<{
  rounds: { round_id: string; state: string; accepted: number; close_reason: string | null }[];
  updates: number;
  checkins: number;
}> {
  const stub = env.ROUNDS.getByName(model);
  return runInDurableObject(stub, (_instance, state) => {
    const sql = state.storage.sql;
    return {
      rounds: sql
        .exec<{ round_id: string; state: string; accepted: number; close_reason: string | null }>(
          "SELECT round_id, state, accepted, close_reason FROM rounds ORDER BY seq",
        )
        .toArray()
        .map((r) => ({ ...r })),
      updates: sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM updates").one().n,
      checkins: sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM checkins").one().n,
    };
  });
}

/**
 * Every stored payload key (`updateStorageKey`) of a round, pending in SQLite or sealed into R2: those its coordinator
 * (or, sharded, each coordinator shard) holds, and any in its UpdateStore shards (where payloads went before).
 */
export async function storedKeys(roundId: string): Promise<string[]> {
  const keys: string[] = [];
  const model = parseRoundId(roundId)!.model;
  const population = env.ROUNDS.getByName(model);
  const held = (stub: DurableObjectStub<RoundCoordinator>) =>
    runInDurableObject(stub, (_i, state) => {
      const sql = state.storage.sql;
      if (sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'payload_parts'").toArray().length === 0) return [];
      return sql
        .exec<{ storage_key: string }>(
          `SELECT u.storage_key FROM updates u JOIN rounds r ON r.seq = u.round_seq WHERE r.round_id = ? AND (
             EXISTS (SELECT 1 FROM payload_parts p WHERE p.round_seq = u.round_seq AND p.device_id = u.device_id) OR
             EXISTS (SELECT 1 FROM payload_sealed p WHERE p.round_seq = u.round_seq AND p.device_id = u.device_id))`,
          roundId,
        )
        .toArray()
        .map((r) => r.storage_key);
    });
  const shards = await runInDurableObject(population, (_i, state) => {
    const sql = state.storage.sql;
    if (sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'rounds'").toArray().length === 0) return 1;
    return (
      sql.exec<{ s: number }>("SELECT shard_count AS s FROM rounds WHERE round_id = ?", roundId).toArray()[0]?.s ?? 1
    );
  });
  keys.push(...(await held(population)));
  if (shards > 1) for (let i = 0; i < shards; i++) keys.push(...(await held(shardStub(env, model, i, shards))));
  for (let k = 0; k < UPDATE_STORE_SHARDS; k++) {
    const rows = await runInDurableObject(updateStoreStub(env, roundId, k), (_i, state) => {
      const sql = state.storage.sql;
      // A shard that never stored anything has no tables.
      if (sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'entries'").toArray().length === 0) return [];
      return sql
        .exec<{ key: string }>("SELECT key FROM entries")
        .toArray()
        .map((r) => r.key);
    });
    keys.push(...rows);
  }
  return keys.sort();
}

/** Every R2 object under a round's prefix (the segments its shards sealed). */
export async function r2Keys(roundId: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await env.UPDATES.list({ prefix: `rounds/${roundId}/`, ...(cursor ? { cursor } : {}) });
    keys.push(...page.objects.map((o) => o.key));
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return keys;
}

let modelCounter = 0;
/** A population name unique within the test file. */
export function uniqueModel(prefix = "m"): string {
  modelCounter += 1;
  return `${prefix}-${modelCounter}-${toBase64Url(crypto.getRandomValues(new Uint8Array(4)))
    .toLowerCase()
    .replace(/[^a-z0-9]/g, "x")}`;
}
