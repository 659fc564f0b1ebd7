/**
 * @module
 * Soak and overload of update ingestion through `wrangler dev` on loopback (issue 17).
 *
 * Soak: N devices upload for M seconds, round after round (open, every device checks in, every device uploads its
 * signed update the way the SDK does: the same bytes again on 429/5xx/connection errors, and a tenth of them send
 * theirs once more after the receipt, as a retry after a lost answer would), then the round is closed and its accepted
 * updates are read back as the aggregator reads them (the paginated list and the update stream). Every receipt is
 * counted against the stored updates. Goal: zero lost (a receipt whose update is not stored and streamed), zero
 * duplicated (an update stored or streamed twice).
 *
 * Overload: the same devices hammer uploads with a key limited to 300 requests a minute, far more concurrently than
 * it allows, for a few seconds. Goal: the edge sheds load with 429 + Retry-After, never with a 5xx or a dropped
 * connection, and its p99 under overload is compared with the p99 of the same uploads unloaded.
 *
 * `FEDGE_BENCH_SOAK_DEVICES` (default 100), `FEDGE_BENCH_SOAK_SECONDS` (default 20), `FEDGE_BENCH_OVERLOAD_SECONDS`
 * (default 8) size the run.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import nacl from "tweetnacl";
import {
  UPDATE_MEDIA_TYPE,
  checkinSigningBytes,
  encodeUpdate,
  fromBase64Url,
  readUpdateStream,
  sha256Hex,
  toBase64Url,
  type AcceptedUpdatePage,
  type CheckinResponse,
  type UpdateReceipt,
} from "@fedge/protocol";
import { startLocalEdge, type LocalEdge } from "@fedge/local-edge";
import { measure, type BenchMeasure } from "../types.ts";

const PORT = 8802;
const DEVICES = Number(process.env.FEDGE_BENCH_SOAK_DEVICES ?? 100);
const SOAK_SECONDS = Number(process.env.FEDGE_BENCH_SOAK_SECONDS ?? 20);
const OVERLOAD_SECONDS = Number(process.env.FEDGE_BENCH_OVERLOAD_SECONDS ?? 8);
const PARAMS = 2048;
const CONCURRENCY = 16;
const OVERLOAD_CONCURRENCY = 48;
const ADMIN_TOKEN = `bench-${toBase64Url(crypto.getRandomValues(new Uint8Array(16)))}`;
const MODEL = "bench-soak";

interface Device {
  id: string;
  keys: nacl.SignKeyPair;
}

const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" };

async function json<T>(res: Response, expectStatus: number): Promise<T> {
  const text = await res.text();
  if (res.status !== expectStatus)
    throw new Error(`HTTP ${res.status} (expected ${expectStatus}): ${text.slice(0, 400)}`);
  return JSON.parse(text) as T;
}

async function pool<T>(items: T[], limit: number, job: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await job(items[next++]!);
    }),
  );
}

const pct = (xs: number[], p: number) =>
  xs.length === 0 ? NaN : [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

function values(seed: number): Float32Array {
  const v = new Float32Array(PARAMS);
  for (let i = 0; i < PARAMS; i++) v[i] = Math.sin(i * 0.37 + seed) * 0.01;
  return v;
}

async function createKey(edge: LocalEdge, name: string, perMinute: number): Promise<{ id: string; key: string }> {
  return json(
    await fetch(`${edge.url}/v1/admin/keys`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({ name, rate_limit_per_minute: perMinute }),
    }),
    201,
  );
}

async function openRound(edge: LocalEdge): Promise<string> {
  const round = await json<{ round_id: string }>(
    await fetch(`${edge.url}/v1/admin/rounds`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({
        model: MODEL,
        model_version: 1,
        clip_norm: 1,
        learning_rate: 0.05,
        local_epochs: 1,
        batch_size: 32,
        privacy_mode: "central",
        trainable: "all",
        update_length: PARAMS,
        sampling_rate: 1,
        min_reports: 1,
        max_reports: 1_000_000,
        duration_s: 3600,
      }),
    }),
    201,
  );
  return round.round_id;
}

/** Every device checks in and signs its update for the open round. */
async function prepareUpdates(edge: LocalEdge, apiKey: string, devices: Device[], seed: number) {
  const updates = new Map<string, Uint8Array>();
  await pool(devices, 8, async (d) => {
    const timestamp = new Date().toISOString();
    const signature = toBase64Url(nacl.sign.detached(checkinSigningBytes(MODEL, d.id, timestamp), d.keys.secretKey));
    const answer = await json<CheckinResponse>(
      await fetch(`${edge.url}/v1/rounds/checkin`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, device_id: d.id, timestamp, signature }),
      }),
      200,
    );
    if (!answer.selected) throw new Error(`q = 1 but ${d.id} was not selected`);
    const bytes = await encodeUpdate(
      {
        roundId: answer.task.round_id,
        deviceId: d.id,
        nonce: fromBase64Url(answer.task.nonce),
        shape: [PARAMS],
        payload: { dtype: "float32", values: values(seed + updates.size) },
      },
      d.keys.secretKey,
    );
    updates.set(d.id, bytes);
  });
  return updates;
}

interface Outcome {
  status: number;
  ms: number;
  receipt?: UpdateReceipt;
}

async function post(url: string, apiKey: string, bytes: Uint8Array): Promise<Outcome> {
  const t = performance.now();
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": UPDATE_MEDIA_TYPE },
      body: bytes as Uint8Array<ArrayBuffer>,
    });
    const text = await res.text();
    const ms = performance.now() - t;
    return res.ok ? { status: res.status, ms, receipt: JSON.parse(text) as UpdateReceipt } : { status: res.status, ms };
  } catch {
    return { status: 0, ms: performance.now() - t }; // connection error
  }
}

/** The SDK's way: the same bytes again on 429, 5xx or a connection error, with a short backoff. */
async function uploadUntilReceipt(url: string, apiKey: string, bytes: Uint8Array, errors: Map<number, number>) {
  for (let attempt = 0; attempt < 20; attempt++) {
    const out = await post(url, apiKey, bytes);
    if (out.receipt) return out.receipt;
    errors.set(out.status, (errors.get(out.status) ?? 0) + 1);
    if (out.status >= 400 && out.status < 500 && out.status !== 429) throw new Error(`upload refused: ${out.status}`);
    await new Promise((r) => setTimeout(r, 50 * 2 ** Math.min(attempt, 5)));
  }
  throw new Error("no receipt after 20 attempts");
}

/** What the aggregator reads back: the listed updates and the streamed frames (sha256 → count each). */
async function readBack(edge: LocalEdge, roundId: string) {
  const listed = new Map<string, number>();
  let after = 0;
  for (;;) {
    const page = await json<AcceptedUpdatePage>(
      await fetch(`${edge.url}/v1/admin/rounds/${roundId}/updates?after=${after}&limit=1000`, { headers: admin }),
      200,
    );
    for (const u of page.items)
      listed.set(`${u.device_id}:${u.sha256}`, (listed.get(`${u.device_id}:${u.sha256}`) ?? 0) + 1);
    if (page.next_cursor === null) break;
    after = Number(page.next_cursor);
  }
  const streamed = new Map<string, number>();
  after = 0;
  for (;;) {
    const res = await fetch(`${edge.url}/v1/admin/rounds/${roundId}/update-stream?after=${after}&limit=1000`, {
      headers: admin,
    });
    if (res.status !== 200) throw new Error(`update-stream ${res.status}: ${await res.text()}`);
    const next = res.headers.get("x-fedge-next-cursor");
    for await (const frame of readUpdateStream(res.body!)) {
      const h = await sha256Hex(frame.update);
      streamed.set(h, (streamed.get(h) ?? 0) + 1);
    }
    if (next === null) break;
    after = Number(next);
  }
  return { listed, streamed };
}

export default async function run(): Promise<BenchMeasure[]> {
  const persistTo = mkdtempSync(path.join(os.tmpdir(), "fedge-soak-bench-"));
  let edge: LocalEdge | undefined;
  try {
    edge = await startLocalEdge({ port: PORT, persistTo, vars: { FEDGE_ADMIN_TOKEN: ADMIN_TOKEN } });
    const fleet = await createKey(edge, "soak fleet", 1_000_000);
    await json(
      await fetch(`${edge.url}/v1/admin/device-quotas/${fleet.id}`, {
        method: "PUT",
        headers: admin,
        body: JSON.stringify({ max_devices: DEVICES }),
      }),
      200,
    );
    const devices: Device[] = [];
    await pool(
      Array.from({ length: DEVICES }, () => nacl.sign.keyPair()),
      8,
      async (keys) => {
        const { device_id } = await json<{ device_id: string }>(
          await fetch(`${edge!.url}/v1/devices`, {
            method: "POST",
            headers: { authorization: `Bearer ${fleet.key}`, "content-type": "application/json" },
            body: JSON.stringify({ public_key: toBase64Url(keys.publicKey) }),
          }),
          201,
        );
        devices.push({ id: device_id, keys });
      },
    );

    // ── soak ──
    let receipts = 0;
    let lost = 0;
    let duplicated = 0;
    let unacknowledged = 0;
    let accepted = 0;
    let rounds = 0;
    const retried = new Map<number, number>();
    const started = performance.now();
    let uploadSeconds = 0;
    while ((performance.now() - started) / 1000 < SOAK_SECONDS || rounds === 0) {
      const roundId = await openRound(edge);
      const updates = await prepareUpdates(edge, fleet.key, devices, rounds * 1000);
      const url = `${edge.url}/v1/rounds/${roundId}/updates`;
      const mine = new Map<string, string>();
      const t = performance.now();
      await pool([...updates], CONCURRENCY, async ([deviceId, bytes]) => {
        const receipt = await uploadUntilReceipt(url, fleet.key, bytes, retried);
        mine.set(deviceId, receipt.sha256);
        // A tenth send theirs again after the receipt (a retry after a lost answer): the same receipt, duplicate.
        if (deviceId.charCodeAt(deviceId.length - 1) % 10 === 0) {
          const again = await uploadUntilReceipt(url, fleet.key, bytes, retried);
          if (again.sha256 !== receipt.sha256 || !again.duplicate) duplicated++;
        }
      });
      uploadSeconds += (performance.now() - t) / 1000;
      await json(await fetch(`${edge.url}/v1/admin/rounds/${roundId}/close`, { method: "POST", headers: admin }), 200);
      const { listed, streamed } = await readBack(edge, roundId);
      receipts += mine.size;
      accepted += listed.size;
      for (const [deviceId, sha] of mine) {
        if ((listed.get(`${deviceId}:${sha}`) ?? 0) === 0 || (streamed.get(sha) ?? 0) === 0) lost++;
      }
      for (const n of [...listed.values(), ...streamed.values()]) if (n > 1) duplicated += n - 1;
      const acknowledged = new Set([...mine].map(([d, s]) => `${d}:${s}`));
      for (const k of listed.keys()) if (!acknowledged.has(k)) unacknowledged++;
      rounds++;
    }
    const soakSeconds = (performance.now() - started) / 1000;

    // ── overload ──
    const limited = await createKey(edge, "soak overload (300/min)", 300);
    const roundId = await openRound(edge);
    const updates = [...(await prepareUpdates(edge, fleet.key, devices, 99_999)).values()];
    const url = `${edge.url}/v1/rounds/${roundId}/updates`;
    // Unloaded: one at a time, with the fleet's key (the first accepts, the rest are duplicates: the same path).
    const calm: number[] = [];
    for (let i = 0; i < Math.min(60, updates.length * 2); i++) {
      const out = await post(url, fleet.key, updates[i % updates.length]!);
      if (!out.receipt) throw new Error(`unloaded upload answered ${out.status}`);
      calm.push(out.ms);
    }
    const loaded: Outcome[] = [];
    const until = performance.now() + OVERLOAD_SECONDS * 1000;
    let i = 0;
    await Promise.all(
      Array.from({ length: OVERLOAD_CONCURRENCY }, async () => {
        while (performance.now() < until) loaded.push(await post(url, limited.key, updates[i++ % updates.length]!));
      }),
    );
    const byStatus = new Map<number, number>();
    for (const o of loaded) byStatus.set(o.status, (byStatus.get(o.status) ?? 0) + 1);
    const failures = loaded.filter((o) => o.status === 0 || o.status >= 500).length;
    const ok = loaded.filter((o) => o.status >= 200 && o.status < 300).length;
    const shed = byStatus.get(429) ?? 0;
    const statuses = JSON.stringify(Object.fromEntries([...byStatus].sort(([a], [b]) => a - b)));
    const p = (xs: number[]) => `p50 ${pct(xs, 0.5).toFixed(1)} ms, p99 ${pct(xs, 0.99).toFixed(1)} ms`;
    const soakNotes =
      `${DEVICES} devices, ${rounds} rounds in ${soakSeconds.toFixed(1)} s (${(accepted / uploadSeconds).toFixed(0)} accepted ` +
      `${PARAMS * 4 + 140}-byte updates/s while uploading, concurrency ${CONCURRENCY}); ${receipts} receipts, ${accepted} ` +
      `updates listed, ${unacknowledged} accepted without a receipt reaching the client; retried answers ` +
      `${JSON.stringify(Object.fromEntries(retried))}; client and edge share this machine's ${os.cpus().length} cores`;
    return [
      measure({
        name: "soak-lost-updates",
        description:
          "receipts whose update is not among the round's stored and streamed updates, after a soak of uploads",
        value: lost,
        unit: "updates",
        baseline_name: "receipts given in the same soak",
        baseline: receipts,
        better: "lower",
        goalRatio: 0,
        notes: soakNotes,
      }),
      measure({
        name: "soak-duplicated-updates",
        description: "updates stored or streamed more than once (retries and resends included), after the same soak",
        value: duplicated,
        unit: "updates",
        baseline_name: "updates stored in the same soak",
        baseline: accepted,
        better: "lower",
        goalRatio: 0,
        notes: soakNotes,
      }),
      measure({
        name: "overload-p99",
        description: `upload p99 latency with ${OVERLOAD_CONCURRENCY} in flight on a key limited to 300/min for ${OVERLOAD_SECONDS} s`,
        value: pct(
          loaded.map((o) => o.ms),
          0.99,
        ),
        unit: "ms",
        baseline_name: "the same uploads one at a time, unloaded, same run",
        baseline: pct(calm, 0.99),
        better: "lower",
        notes: `${loaded.length} requests: ${statuses} (${ok} accepted, ${shed} shed with 429); overload ${p(loaded.map((o) => o.ms))}; unloaded ${p(calm)}`,
      }),
      measure({
        name: "overload-errors",
        description: "5xx answers and dropped connections among those overload requests (load must be shed with 429)",
        value: failures,
        unit: "requests",
        baseline_name: "requests sent under overload",
        baseline: loaded.length,
        better: "lower",
        goalRatio: 0,
        notes: `${statuses}`,
      }),
    ];
  } finally {
    await edge?.stop();
    rmSync(persistTo, { recursive: true, force: true });
  }
}
