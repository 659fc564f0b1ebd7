/**
 * @module
 * The training plane under load, against the real local edge (`wrangler dev`, workerd, loopback), in one run:
 *
 * (a) the coordinator's cost per check-in: the admin bench route (workers/src/routes/admin-bench.ts) runs N first
 *     check-ins through `RoundCoordinator.checkin` one RPC after the other and times them inside workerd (the clock
 *     advances at each RPC's completion); baseline: the same number of read-only RPCs to the same object. Concurrency 1,
 *     so the time per check-in is the object's CPU plus its local SQLite write plus one RPC: an upper bound of the CPU a
 *     check-in costs a coordinator in production (docs/SCALE.md sizes the shards with it). Also timed from the client.
 * (b) a round with DEVICES lightweight devices (default 10,000): each has its own Ed25519 key (node:crypto, native),
 *     registers, checks in (q = 1: every device is selected) and uploads a real signed int8 update (codec v3, the
 *     norm bound kept after dequantization), at CONCURRENCY requests in flight. Every 20th device resends its update
 *     (must answer the first receipt, `duplicate: true`) and every 50th also tries a different update with its spent
 *     nonce (must be 409). Then the round is closed and the aggregator's re-verifying stream (`verifiedUpdates`, every
 *     signature checked again) must yield exactly one update per device, each the bytes that device had accepted: zero
 *     lost, zero duplicated. Then the next round opens and every device checks in again: a check-in to a population
 *     the device already joined, what most of a population's check-ins are. Baseline of the rates: the no-op
 *     `GET /v1/health` at the same concurrency, same run.
 *
 * `FEDGE_BENCH_LOAD_DEVICES` shrinks (b) for a quick run.
 */
import { createHash, generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  checkinSigningBytes,
  encodeUpdate,
  fromBase64Url,
  quantizeUpdateInt8,
  toBase64Url,
  UPDATE_MEDIA_TYPE,
  type CheckinResponse,
  type RoundTask,
  type UpdateReceipt,
} from "@fedge/protocol";
import { startLocalEdge, type LocalEdge } from "@fedge/local-edge";
import { EdgeAdminClient, verifiedUpdates } from "fedge/edge";
import { BENCH_UPDATE_LENGTH, benchRoundBody } from "../bench-round.ts";
import { measure, type BenchMeasure } from "../types.ts";
import { workerdCpuNs } from "../cpu-time.ts";

const PORT = Number(process.env.FEDGE_BENCH_LOAD_PORT ?? 8830);
const DEVICES = Number(process.env.FEDGE_BENCH_LOAD_DEVICES ?? 10_000);
const CONCURRENCY = 48;
/** API keys the devices register under (each key's device quota is one object: spread them). */
const API_KEYS = 8;
const CHECKIN_RPCS = 2_000;
const ADMIN_TOKEN = `bench-${toBase64Url(crypto.getRandomValues(new Uint8Array(16)))}`;

async function json<T>(res: Response, expectStatus: number): Promise<T> {
  const text = await res.text();
  if (res.status !== expectStatus)
    throw new Error(`HTTP ${res.status} (expected ${expectStatus}): ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

/** Requests retried after a connection error (reported in the notes). */
let retries = 0;

/**
 * `fetch`, retried (up to 4 attempts, 200 ms apart) when the connection fails before an answer (wrangler dev on a
 * loaded machine resets one now and then): what a device's SDK does too. Only network errors are retried.
 */
async function send(url: string, init?: RequestInit): Promise<Response> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetch(url, init);
    } catch (e) {
      if (attempt >= 4) throw e;
      retries++;
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

/** Runs `job(i)` for i in [0, n) with at most `limit` in flight; returns the wall seconds. */
async function pool(n: number, limit: number, job: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < n) await job(next++);
    }),
  );
  return (performance.now() - started) / 1000;
}

interface Device {
  publicKey: string;
  privateKey: KeyObject;
  id: string;
  task?: RoundTask;
  /** sha256 (hex) of the update the edge accepted. */
  accepted?: string;
}

function newDevice(): Device {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const x = publicKey.export({ format: "jwk" }).x!; // base64url of the 32 raw bytes
  return { publicKey: x, privateKey, id: "" };
}

/** A small update of norm ≤ 1, different per device and attempt. */
function values(seed: number): Float32Array {
  const v = new Float32Array(BENCH_UPDATE_LENGTH);
  let x = (seed * 2654435761) >>> 0 || 1;
  let s = 0;
  for (let i = 0; i < v.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    v[i] = (x >>> 8) / 2 ** 24 - 0.5;
    s += v[i]! * v[i]!;
  }
  const k = 0.9 / Math.sqrt(s);
  for (let i = 0; i < v.length; i++) v[i] = v[i]! * k;
  return v;
}

async function openRound(edge: LocalEdge, model: string, q: number, extra: Record<string, unknown> = {}) {
  // A DP round opens only against the population's budget on the edge's ledger (a bench budget: ε is not the point).
  await json(
    await send(`${edge.url}/v1/admin/populations/${model}/privacy-budget`, {
      method: "PUT",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ epsilon: 1e6, delta: 1e-5 }),
    }),
    200,
  );
  return json<{ round_id: string }>(
    await send(`${edge.url}/v1/admin/rounds`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: benchRoundBody(model, q, extra),
    }),
    201,
  );
}

/** (a): the coordinator's time per check-in, inside workerd and from the client. */
async function coordinatorCost(edge: LocalEdge) {
  const model = "bench-coordinator";
  await openRound(edge, model, 0.5);
  const bench = async (rpc: "checkin" | "batch" | "read", n: number, prefix: string) => {
    const t = performance.now();
    const r = await json<{ runs: number; selected: number; elapsed_ms: number }>(
      await send(`${edge.url}/v1/admin/bench/rounds/${model}/checkins?n=${n}&prefix=${prefix}&rpc=${rpc}`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      }),
      200,
    );
    return { ...r, client_ms: performance.now() - t };
  };
  await bench("checkin", 100, "dev_warm");
  await bench("batch", 100, "dev_warmb");
  await bench("read", 100, "dev_warm");
  // The kinds in turn, three rounds each, fresh device ids every time; medians.
  const batch: number[] = [];
  const checkin: number[] = [];
  const read: number[] = [];
  let selected = 0;
  for (let r = 0; r < 3; r++) {
    const zero = await bench("batch", 0, "dev_zero");
    const b = await bench("batch", 5 * CHECKIN_RPCS, `dev_batch${r}x`);
    batch.push((b.elapsed_ms - zero.elapsed_ms) / (5 * CHECKIN_RPCS));
    selected += b.selected;
    checkin.push((await bench("checkin", CHECKIN_RPCS, `dev_run${r}x`)).elapsed_ms / CHECKIN_RPCS);
    read.push((await bench("read", CHECKIN_RPCS, "dev_read")).elapsed_ms / CHECKIN_RPCS);
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  return { batch: med(batch), checkin: med(checkin), read: med(read), selected, all: batch };
}

/** (b): DEVICES devices through one round; returns timings and the integrity check. */
async function fleetRound(edge: LocalEdge) {
  const model = "bench-load";
  const apis: Record<string, string>[] = [];
  for (let k = 0; k < API_KEYS; k++) {
    const { id, key } = await json<{ id: string; key: string }>(
      await send(`${edge.url}/v1/admin/keys`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ name: `load bench ${k}`, rate_limit_per_minute: 1_000_000 }),
      }),
      201,
    );
    // A key registers at most DEFAULT_DEVICE_QUOTA_PER_KEY (1,000) devices unless an admin raises its quota.
    await json(
      await send(`${edge.url}/v1/admin/device-quotas/${id}`, {
        method: "PUT",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ max_devices: Math.ceil(DEVICES / API_KEYS) }),
      }),
      200,
    );
    apis.push({ authorization: `Bearer ${key}`, "content-type": "application/json" });
  }
  const { round_id: roundId } = await openRound(edge, model, 1);
  const devices = Array.from({ length: DEVICES }, newDevice);

  const health = async () => {
    const res = await send(`${edge.url}/v1/health`);
    await res.arrayBuffer();
  };
  /** workerd's CPU (all threads) per request of a phase, ms. */
  const cpuPer = async (phase: () => Promise<number>): Promise<{ s: number; cpuMs: number }> => {
    const c0 = workerdCpuNs(edge.pid!);
    const s = await phase();
    return { s, cpuMs: (workerdCpuNs(edge.pid!) - c0) / 1e6 / DEVICES };
  };
  const healthCpu = await cpuPer(() => pool(DEVICES, CONCURRENCY, health));
  const healthBefore = healthCpu.s;

  const registerS = await pool(DEVICES, CONCURRENCY, async (i) => {
    const d = devices[i]!;
    const r = await json<{ device_id: string }>(
      await send(`${edge.url}/v1/devices`, {
        method: "POST",
        headers: apis[i % API_KEYS]!,
        body: JSON.stringify({ public_key: d.publicKey }),
      }),
      201,
    );
    d.id = r.device_id;
  });

  /** Device `i` checks in (q = 1: it must be selected) and keeps its task. */
  const checkin = async (i: number) => {
    const d = devices[i]!;
    const timestamp = new Date().toISOString();
    const signature = toBase64Url(sign(null, checkinSigningBytes(model, d.id, timestamp), d.privateKey));
    const answer = await json<CheckinResponse>(
      await send(`${edge.url}/v1/rounds/checkin`, {
        method: "POST",
        headers: apis[i % API_KEYS]!,
        body: JSON.stringify({ model, device_id: d.id, timestamp, signature }),
      }),
      200,
    );
    if (!answer.selected) throw new Error(`q = 1 but ${d.id} was not selected (${answer.reason})`);
    d.task = answer.task;
  };
  const checkinCpu = await cpuPer(() => pool(DEVICES, CONCURRENCY, checkin));
  const checkinS = checkinCpu.s;

  const body = async (i: number, attempt: number) => {
    const d = devices[i]!;
    const payload = quantizeUpdateInt8(values(i * 7 + attempt), {
      maxNorm: 1,
      random: (b) => crypto.getRandomValues(b as Uint8Array<ArrayBuffer>),
    });
    return encodeUpdate(
      {
        roundId,
        deviceId: d.id,
        nonce: fromBase64Url(d.task!.nonce),
        shape: [BENCH_UPDATE_LENGTH],
        payload,
      },
      (message) => new Uint8Array(sign(null, message, d.privateKey)),
    );
  };
  // Uploads carry the device's API key, as the SDK sends them.
  const post = (bytes: Uint8Array, i: number) =>
    send(`${edge.url}/v1/rounds/${roundId}/updates`, {
      method: "POST",
      headers: { "content-type": UPDATE_MEDIA_TYPE, authorization: apis[i % API_KEYS]!.authorization! },
      body: bytes as Uint8Array<ArrayBuffer>,
    });
  let resent = 0;
  let refusedReplays = 0;
  let uploads = 0;
  const uploadS = await pool(DEVICES, CONCURRENCY, async (i) => {
    const d = devices[i]!;
    const bytes = await body(i, 0);
    const first = await post(bytes, i);
    // A retried POST whose first attempt was stored before the connection broke answers 200 with the same receipt.
    const receipt = await json<UpdateReceipt>(first, first.status === 200 ? 200 : 201);
    uploads++;
    // The edge names an update by its signed digest: SHA-256 of every byte before the 64-byte signature.
    const sha = createHash("sha256")
      .update(bytes.subarray(0, bytes.length - 64) as Uint8Array<ArrayBuffer>)
      .digest("hex");
    if (receipt.sha256 !== sha) throw new Error(`${d.id}: receipt sha256 ${receipt.sha256} ≠ ${sha}`);
    d.accepted = sha;
    if (i % 20 === 0) {
      // A retry of the same bytes (the answer was lost): the first receipt again.
      const again = await json<UpdateReceipt>(await post(bytes, i), 200);
      if (!again.duplicate || again.sha256 !== sha) throw new Error(`${d.id}: resend not answered as a duplicate`);
      resent++;
      uploads++;
    }
    if (i % 50 === 0) {
      // A second, different update with the spent nonce.
      const res = await post(await body(i, 1), i);
      await res.arrayBuffer();
      if (res.status !== 409) throw new Error(`${d.id}: a second update with a spent nonce got ${res.status}`);
      refusedReplays++;
      uploads++;
    }
  });
  const healthAfter = await pool(DEVICES, CONCURRENCY, health);
  console.log(
    `  ${DEVICES} devices: register ${registerS.toFixed(0)} s, check-in ${checkinS.toFixed(0)} s, upload ${uploadS.toFixed(0)} s`,
  );

  // Integrity: the edge's count, then the aggregator's re-verifying stream, one update per device, the accepted bytes.
  const status = await json<{ accepted: number }>(
    await send(`${edge.url}/v1/admin/rounds/${roundId}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }),
    200,
  );
  const admin = new EdgeAdminClient({ baseUrl: edge.url, adminToken: ADMIN_TOKEN });
  await admin.closeRound(roundId);
  const refused: { deviceId: string; reason: string }[] = [];
  const seen = new Map<string, number>();
  const byId = new Map(devices.map((d) => [d.id, d]));
  let mismatched = 0;
  const streamT0 = performance.now();
  for await (const u of verifiedUpdates(admin, roundId, BENCH_UPDATE_LENGTH, refused, { pageSize: 500 })) {
    seen.set(u.deviceId!, (seen.get(u.deviceId!) ?? 0) + 1);
    if (!byId.has(u.deviceId!)) mismatched++;
  }
  const streamS = (performance.now() - streamT0) / 1000;
  // The stored bytes are the accepted ones: the edge's update list names each device's sha256.
  let listed = 0;
  let after: number | null = 0;
  while (after !== null) {
    const page = await admin.listUpdates(roundId, after, 1000);
    for (const item of page.items) {
      listed++;
      if (byId.get(item.device_id)?.accepted !== item.sha256) mismatched++;
    }
    after = page.next_cursor === null ? null : Number(page.next_cursor);
  }
  const duplicated = [...seen.values()].filter((c) => c > 1).length;
  const lost = devices.filter((d) => !seen.has(d.id)).length;

  // The population's next round: every device checks in again, to a population it already joined.
  const { round_id: nextRoundId } = await openRound(edge, model, 1);
  const repeatCpu = await cpuPer(() =>
    pool(DEVICES, CONCURRENCY, async (i) => {
      await checkin(i);
      if (devices[i]!.task!.round_id !== nextRoundId)
        throw new Error(`${devices[i]!.id}: not a task of ${nextRoundId}`);
    }),
  );
  const repeatCheckinS = repeatCpu.s;
  await admin.closeRound(nextRoundId);
  return {
    accepted: status.accepted,
    streamed: [...seen.values()].reduce((a, b) => a + b, 0),
    listed,
    lost,
    duplicated,
    mismatched,
    refused: refused.length,
    resent,
    refusedReplays,
    uploads,
    registerS,
    checkinS,
    uploadS,
    streamS,
    repeatCheckinS,
    cpuMs: { health: healthCpu.cpuMs, checkin: checkinCpu.cpuMs, repeat: repeatCpu.cpuMs },
    healthS: (healthBefore + healthAfter) / 2,
  };
}

export default async function run(): Promise<BenchMeasure[]> {
  const persistTo = mkdtempSync(path.join(os.tmpdir(), "fedge-load-bench-"));
  let edge: LocalEdge | undefined;
  try {
    // Every simulated device uploads from the one loopback address: lift the per-address upload limit (3,000 a minute by
    // default, which a fleet behind one address would meet too).
    edge = await startLocalEdge({
      port: PORT,
      persistTo,
      vars: { FEDGE_ADMIN_TOKEN: ADMIN_TOKEN, FEDGE_UPLOADS_PER_MINUTE_PER_IP: "1000000" },
    });
    const cost = await coordinatorCost(edge);
    console.log(
      `  coordinator: ${cost.batch.toFixed(3)} ms per check-in batched, ${cost.checkin.toFixed(3)} ms one RPC each, ${cost.read.toFixed(3)} ms per read RPC`,
    );
    const t0 = performance.now();
    const f = await fleetRound(edge);
    const roundS = (performance.now() - t0) / 1000;
    const healthRate = DEVICES / f.healthS;
    const common = `${DEVICES} devices, ${CONCURRENCY} requests in flight; client and edge share this machine's ${os.cpus().length} cores`;
    return [
      measure({
        name: "coordinator-checkin-cpu-ms",
        description:
          "the coordinator's own work per first check-in (CSPRNG coin, SQLite reads and transaction, q = 0.5): N check-ins inside one RPC, minus the same RPC with none, ÷ N, timed inside workerd",
        value: cost.batch,
        unit: "ms",
        baseline_name: "one read-only RPC to the same coordinator (listRounds), timed the same way",
        baseline: cost.read,
        better: "lower",
        notes: `${5 * CHECKIN_RPCS} check-ins × 3 (medians; per run ${cost.all.map((x) => x.toFixed(4)).join(", ")} ms; ${cost.selected} selected). One RPC per check-in, each committed to local storage: ${cost.checkin.toFixed(3)} ms per check-in (wall, concurrency 1; the local SQLite commit is most of it, production commits differently). Machine loaded by other jobs`,
      }),
      {
        ...measure({
          name: "load-10k-devices-accepted-once",
          description: `one round, ${DEVICES} devices each registering, checking in and uploading a signed int8 update (with resends and spent-nonce replays): updates the aggregator's re-verifying stream yields`,
          value: f.streamed,
          unit: "updates",
          baseline_name: "devices that uploaded",
          baseline: DEVICES,
          better: "higher",
        }),
        goal: "= 1 (zero lost, zero duplicated)",
        goal_met:
          f.streamed === DEVICES &&
          f.accepted === DEVICES &&
          f.listed === DEVICES &&
          f.lost === 0 &&
          f.duplicated === 0 &&
          f.mismatched === 0 &&
          f.refused === 0,
        notes: `edge accepted ${f.accepted}, listed ${f.listed}, streamed ${f.streamed}; lost ${f.lost}, duplicated ${f.duplicated}, bytes differing from the accepted ones ${f.mismatched}, refused by re-verification ${f.refused}; ${f.resent} resends answered as duplicates, ${f.refusedReplays} spent-nonce replays refused (409); ${retries} requests retried after a connection error; round wall time ${roundS.toFixed(0)} s (register ${f.registerS.toFixed(0)} s, check-in ${f.checkinS.toFixed(0)} s, upload ${f.uploadS.toFixed(0)} s, re-verified stream ${f.streamS.toFixed(1)} s)`,
      },
      measure({
        name: "load-checkins-per-s",
        description: "device check-ins per second (API key, device signature, device registry + coordinator)",
        value: DEVICES / f.checkinS,
        unit: "checkins/s",
        baseline_name: "GET /v1/health (no-op route) requests per second, same concurrency, same run",
        baseline: healthRate,
        better: "higher",
        notes: `${common}; workerd CPU per request (all threads): first check-in ${f.cpuMs.checkin.toFixed(2)} ms, GET /v1/health ${f.cpuMs.health.toFixed(2)} ms`,
      }),
      measure({
        name: "load-repeat-checkins-per-s",
        description:
          "check-ins per second of the same devices to the population's next round (they joined it in the round before)",
        value: DEVICES / f.repeatCheckinS,
        unit: "checkins/s",
        baseline_name: "GET /v1/health (no-op route) requests per second, same concurrency, same run",
        baseline: healthRate,
        better: "higher",
        notes: `${common}; first check-ins of the same run: ${(DEVICES / f.checkinS).toFixed(1)}/s. workerd CPU per request (all threads): repeat check-in ${f.cpuMs.repeat.toFixed(2)} ms, first check-in ${f.cpuMs.checkin.toFixed(2)} ms, GET /v1/health ${f.cpuMs.health.toFixed(2)} ms`,
      }),
      measure({
        name: "load-uploads-per-s",
        description: `update uploads per second (${BENCH_UPDATE_LENGTH}-value int8 updates: decode, SHA-256 + Ed25519, checks, shard write, commit)`,
        value: f.uploads / f.uploadS,
        unit: "uploads/s",
        baseline_name: "GET /v1/health (no-op route) requests per second, same concurrency, same run",
        baseline: healthRate,
        better: "higher",
        notes: `${common}; ${f.uploads} upload requests (resends and replays included)`,
      }),
      measure({
        name: "load-registrations-per-s",
        description: "device registrations per second (POST /v1/devices: device registry + the API key's quota)",
        value: DEVICES / f.registerS,
        unit: "registrations/s",
        baseline_name: "GET /v1/health (no-op route) requests per second, same concurrency, same run",
        baseline: healthRate,
        better: "higher",
        notes: common,
      }),
    ];
  } finally {
    await edge?.stop();
    rmSync(persistTo, { recursive: true, force: true });
  }
}
