/**
 * Secure aggregation through the real edge (`wrangler dev` on port 8844, fresh state): registered devices check in to
 * a distributed round and run SecAgg+ over HTTP with their own SecAggClient, signing every request; a third of them
 * drop (before sharing, before and after masking); the operator closes the stages and receives only the modular sum,
 * which equals the plain sum of the survivors' encoded updates. In a second round a stage closes on its own at the
 * deadline the task stated: the device silent until then is dropped, its late message refused, and the round finishes.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import nacl from "tweetnacl";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  SECAGG_DEVICE_HEADER,
  SECAGG_SIGNATURE_HEADER,
  SECAGG_TIMESTAMP_HEADER,
  checkinSigningBytes,
  secAggRequestSigningBytes,
  sha256Hex,
  toBase64Url,
  type CheckinResponse,
  type SecAggConsistencyRequest,
  type SecAggOutcome,
  type SecAggRoster,
  type SecAggShareRelay,
  type SecAggUnmaskRequest,
} from "@fedge/protocol";
import { decodeVector, SecAggClient } from "@fedge/secagg";
import { EdgeAdminClient } from "fedge/edge";
import { startLocalEdge, type LocalEdge } from "@fedge/local-edge";
import { distributedRoundFields } from "./helpers/distributed-round.ts";

const PORT = 8844;
const ADMIN_TOKEN = `fa_${toBase64Url(crypto.getRandomValues(new Uint8Array(24)))}`;
const BITS = 16;
const LENGTH = 256;

let dir: string;
let edge: LocalEdge;
let apiKey: string;
let operator: EdgeAdminClient;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "fedge-secagg-"));
  edge = await startLocalEdge({
    port: PORT,
    persistTo: path.join(dir, "edge-state"),
    vars: { FEDGE_ADMIN_TOKEN: ADMIN_TOKEN },
    readyTimeoutMs: 120_000,
  });
  operator = new EdgeAdminClient({ baseUrl: edge.url, adminToken: ADMIN_TOKEN });
  apiKey = (await operator.createApiKey("secagg e2e", 1_000_000)).key;
}, 180_000);

afterAll(async () => {
  await edge?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Device {
  id: string;
  keys: nacl.SignKeyPair;
}

async function ok<T>(res: Promise<Response>, status = 200): Promise<T> {
  const r = await res;
  const text = await r.text();
  expect(r.status, text).toBe(status);
  return JSON.parse(text) as T;
}

function admin(method: string, p: string, body?: unknown): Promise<Response> {
  return fetch(`${edge.url}${p}`, {
    method,
    headers: {
      authorization: `Bearer ${ADMIN_TOKEN}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

async function register(): Promise<Device> {
  const keys = nacl.sign.keyPair();
  const res = await fetch(`${edge.url}/v1/devices`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ public_key: toBase64Url(keys.publicKey), platform: "node" }),
  });
  return { id: (await ok<{ device_id: string }>(Promise.resolve(res), 201)).device_id, keys };
}

async function checkin(d: Device, model: string): Promise<CheckinResponse> {
  const timestamp = new Date().toISOString();
  const signature = nacl.sign.detached(checkinSigningBytes(model, d.id, timestamp), d.keys.secretKey);
  return ok<CheckinResponse>(
    fetch(`${edge.url}/v1/rounds/checkin`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model, device_id: d.id, timestamp, signature: toBase64Url(signature) }),
    }),
  );
}

async function signed(d: Device, method: "GET" | "POST", p: string, body?: unknown): Promise<Response> {
  const bytes = body === undefined ? new Uint8Array(0) : new TextEncoder().encode(JSON.stringify(body));
  const timestamp = new Date().toISOString();
  const toSign = secAggRequestSigningBytes(method, p, d.id, timestamp, await sha256Hex(bytes));
  return fetch(`${edge.url}${p}`, {
    method,
    headers: {
      authorization: `Bearer ${apiKey}`,
      [SECAGG_DEVICE_HEADER]: d.id,
      [SECAGG_TIMESTAMP_HEADER]: timestamp,
      [SECAGG_SIGNATURE_HEADER]: toBase64Url(nacl.sign.detached(toSign, d.keys.secretKey)),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: bytes }),
  });
}

describe("secure aggregation through wrangler dev", () => {
  it("gives the operator the exact modular sum of the survivors and nothing else", async () => {
    const model = "secagg-e2e";
    await ok(admin("PUT", `/v1/admin/populations/${model}/privacy-budget`, { epsilon: 1e6, delta: 1e-5 }));
    const round = await ok<{ round_id: string }>(
      admin("POST", "/v1/admin/rounds", {
        model,
        model_version: 1,
        clip_norm: 1,
        learning_rate: 0.1,
        local_epochs: 1,
        batch_size: 16,
        ...distributedRoundFields(LENGTH, { bits: BITS, expectedClients: 12, minClients: 8 }).fields,
        trainable: "all",
        update_length: LENGTH,
        sampling_rate: 1,
        min_reports: 1,
        duration_s: 600,
      }),
      201,
    );
    const roundId = round.round_id;
    const base = `/v1/rounds/${roundId}/secagg`;
    // The aggregator's edge client drives the stages and receives the sum.
    const close = async (stage: string) =>
      expect((await operator.closeSecureAggregationStage(roundId)).stage).toBe(stage);

    const devices = await Promise.all(Array.from({ length: 12 }, () => register()));
    for (const d of devices) {
      const answer = await checkin(d, model);
      expect(answer.selected && answer.task.secure_aggregation).toMatchObject({
        modulus_bits: BITS,
        encoded_length: LENGTH,
      });
    }
    const clients = devices.map(
      (d) =>
        new SecAggClient({
          roundId,
          identity: {
            deviceId: d.id,
            publicKey: d.keys.publicKey,
            sign: (m) => nacl.sign.detached(m, d.keys.secretKey),
          },
        }),
    );
    const inputs = devices.map(() => new Uint32Array(LENGTH).map(() => Math.floor(Math.random() * 2 ** BITS)));

    for (const [i, c] of clients.entries())
      await ok(signed(devices[i]!, "POST", `${base}/advertise`, await c.advertiseKeys()), 202);
    await close("share-keys");
    const sharing = [...devices.keys()].filter((i) => i !== 11); // 11 drops before sharing
    for (const i of sharing) {
      const roster = await ok<SecAggRoster>(signed(devices[i]!, "GET", `${base}/share-keys`));
      await ok(signed(devices[i]!, "POST", `${base}/share-keys`, await clients[i]!.shareKeys(roster)), 202);
    }
    await close("masked-input");
    const masking = sharing.filter((i) => i !== 10); // 10 drops before masking
    for (const i of masking) {
      const relay = await ok<SecAggShareRelay>(signed(devices[i]!, "GET", `${base}/masked-input`));
      await ok(
        signed(devices[i]!, "POST", `${base}/masked-input`, await clients[i]!.maskInput(relay, inputs[i]!)),
        202,
      );
    }
    await close("consistency");
    const staying = masking.filter((i) => i !== 3 && i !== 7); // 3 and 7 drop after masking
    for (const i of staying) {
      const request = await ok<SecAggConsistencyRequest>(signed(devices[i]!, "GET", `${base}/consistency`));
      await ok(signed(devices[i]!, "POST", `${base}/consistency`, await clients[i]!.checkConsistency(request)), 202);
    }
    await close("unmask");
    for (const i of staying) {
      const request = await ok<SecAggUnmaskRequest>(signed(devices[i]!, "GET", `${base}/unmask`));
      await ok(signed(devices[i]!, "POST", `${base}/unmask`, await clients[i]!.unmask(request)), 202);
    }
    await close("finished");

    const outcome = await operator.secureAggregationSum(roundId);
    expect(outcome.survivors).toEqual(masking.map((i) => devices[i]!.id).sort());
    expect([outcome.modulusBits, outcome.encodedLength]).toEqual([BITS, LENGTH]);
    const expected = new Uint32Array(LENGTH);
    for (const i of masking) for (let j = 0; j < LENGTH; j++) expected[j] = (expected[j]! + inputs[i]![j]!) % 2 ** BITS;
    expect(Array.from(outcome.sum)).toEqual(Array.from(expected));
    // The raw answer is the same sum on the wire.
    const wire = await ok<SecAggOutcome>(admin("GET", `/v1/admin/rounds/${roundId}/secagg/sum`));
    expect(Array.from(decodeVector(wire.sum, LENGTH, BITS))).toEqual(Array.from(expected));
  });

  it("closes a stage at its stated deadline: the silent device drops, its late message is refused", async () => {
    const model = "secagg-e2e-deadline";
    await ok(admin("PUT", `/v1/admin/populations/${model}/privacy-budget`, { epsilon: 1e6, delta: 1e-5 }));
    const devices = await Promise.all(Array.from({ length: 9 }, () => register()));
    const { fields } = distributedRoundFields(LENGTH, { bits: BITS, expectedClients: 9, minClients: 6 });
    const stageS = { "share-keys": 4, "masked-input": 4, consistency: 60, unmask: 60 };
    const round = await ok<{ round_id: string; deadline: string }>(
      admin("POST", "/v1/admin/rounds", {
        model,
        model_version: 1,
        clip_norm: 1,
        learning_rate: 0.1,
        local_epochs: 1,
        batch_size: 16,
        ...fields,
        secure_aggregation: { ...(fields.secure_aggregation as object), stage_s: stageS },
        trainable: "all",
        update_length: LENGTH,
        sampling_rate: 1,
        min_reports: 1,
        duration_s: 10,
      }),
      201,
    );
    const roundId = round.round_id;
    const base = `/v1/rounds/${roundId}/secagg`;
    const tasks = await Promise.all(devices.map((d) => checkin(d, model)));
    const deadlines = tasks[0]!.selected ? tasks[0]!.task.secure_aggregation!.stage_deadlines : undefined;
    expect(deadlines?.advertise).toBe(round.deadline);
    expect(Date.parse(deadlines!["masked-input"])).toBe(Date.parse(round.deadline) + 8000);

    const clients = devices.map(
      (d) =>
        new SecAggClient({
          roundId,
          identity: {
            deviceId: d.id,
            publicKey: d.keys.publicKey,
            sign: (m) => nacl.sign.detached(m, d.keys.secretKey),
          },
        }),
    );
    const inputs = devices.map(() => new Uint32Array(LENGTH).map(() => Math.floor(Math.random() * 2 ** BITS)));
    for (const [i, c] of clients.entries())
      await ok(signed(devices[i]!, "POST", `${base}/advertise`, await c.advertiseKeys()), 202);
    // Everyone answered: the operator closes advertise and share-keys early, naming them.
    expect((await operator.closeSecureAggregationStage(roundId, "advertise")).stage).toBe("share-keys");
    for (const [i, c] of clients.entries()) {
      const roster = await ok<SecAggRoster>(signed(devices[i]!, "GET", `${base}/share-keys`));
      await ok(signed(devices[i]!, "POST", `${base}/share-keys`, await c.shareKeys(roster)), 202);
    }
    expect((await operator.closeSecureAggregationStage(roundId, "share-keys")).stage).toBe("masked-input");
    const relays = await Promise.all(
      devices.map((d) => ok<SecAggShareRelay>(signed(d, "GET", `${base}/masked-input`))),
    );
    for (const i of [0, 1, 2, 3, 4, 5, 6, 7]) {
      await ok(
        signed(devices[i]!, "POST", `${base}/masked-input`, await clients[i]!.maskInput(relays[i]!, inputs[i]!)),
        202,
      );
    }
    // Device 8 stays silent past the masked-input deadline; nobody closes the stage: the edge does, at the deadline.
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(deadlines!["masked-input"]) - Date.now()) + 1500));
    const late = await signed(
      devices[8]!,
      "POST",
      `${base}/masked-input`,
      await clients[8]!.maskInput(relays[8]!, inputs[8]!),
    );
    const refusal = (await late.json()) as { error: { code: string; message: string } };
    expect([late.status, refusal.error.code]).toEqual([409, "stage_closed"]);
    expect(await operator.secureAggregationStatus(roundId)).toMatchObject({
      stage: "consistency",
      answered: 0,
      expected: 8,
      deadline: deadlines!.consistency,
    });

    const survivors = [0, 1, 2, 3, 4, 5, 6, 7];
    for (const i of survivors) {
      const request = await ok<SecAggConsistencyRequest>(signed(devices[i]!, "GET", `${base}/consistency`));
      expect(request.survivors).toEqual(survivors.map((j) => devices[j]!.id).sort());
      await ok(signed(devices[i]!, "POST", `${base}/consistency`, await clients[i]!.checkConsistency(request)), 202);
    }
    expect((await operator.closeSecureAggregationStage(roundId, "consistency")).stage).toBe("unmask");
    for (const i of survivors) {
      const request = await ok<SecAggUnmaskRequest>(signed(devices[i]!, "GET", `${base}/unmask`));
      await ok(signed(devices[i]!, "POST", `${base}/unmask`, await clients[i]!.unmask(request)), 202);
    }
    expect((await operator.closeSecureAggregationStage(roundId, "unmask")).stage).toBe("finished");
    const outcome = await operator.secureAggregationSum(roundId);
    const expected = new Uint32Array(LENGTH);
    for (const i of survivors)
      for (let j = 0; j < LENGTH; j++) expected[j] = (expected[j]! + inputs[i]![j]!) % 2 ** BITS;
    expect(Array.from(outcome.sum)).toEqual(Array.from(expected));
  }, 120_000);
});
