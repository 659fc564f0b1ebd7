/**
 * @module
 * Edge ingestion throughput (issue 5): accepted signed 100k-parameter float32 updates per second through `wrangler dev` on
 * loopback (decode, sha256, Ed25519 verify under the key from the device's check-in, shape/finite/norm checks, then one
 * coordinator commit that checks the nonce and stores the payload in the same SQLite transaction), against a bare echo
 * worker (bench/echo) receiving the same bytes over the same loopback in the same run. Goal: ratio ≥ 0.5.
 *
 * Two more baselines from the same echo worker bound what any design can reach here: one durable write of the bytes into a
 * SQLite-backed Durable Object (the cheapest durable store under workerd, and what fedge acknowledges after; goal: ingestion
 * ≥ 0.8× of it), and one R2 put (what ingestion paid when each update went to R2 before its receipt).
 *
 * All servers get the same request count and client concurrency; the updates are signed before timing starts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import nacl from "tweetnacl";
import { checkinSigningBytes, fromBase64Url, toBase64Url, type CheckinResponse, type RoundTask } from "@fedge/protocol";
import { UPDATE_MEDIA_TYPE, encodeUpdate } from "@fedge/protocol";
import { repoRoot, startLocalEdge, type LocalEdge } from "@fedge/local-edge";
import { workerdCpuNs } from "../cpu-time.ts";
import { measure, type BenchMeasure } from "../types.ts";

const N_PARAMS = 100_000;
const N_UPDATES = 160;
const CONCURRENCY = 8;
const EDGE_PORT = Number(process.env.FEDGE_BENCH_INGEST_PORT ?? 8800);
const ECHO_PORT = EDGE_PORT + 1;
const ADMIN_TOKEN = `bench-${toBase64Url(crypto.getRandomValues(new Uint8Array(16)))}`;

async function json<T>(res: Response, expectStatus: number): Promise<T> {
  const text = await res.text();
  if (res.status !== expectStatus)
    throw new Error(`HTTP ${res.status} (expected ${expectStatus}): ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

/** Runs `jobs` with at most `limit` in flight; returns the wall seconds and per-request latencies (ms). */
async function pool(jobs: (() => Promise<void>)[], limit: number): Promise<{ seconds: number; latencies: number[] }> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < jobs.length) {
        const job = jobs[next++]!;
        const t = performance.now();
        await job();
        latencies.push(performance.now() - t);
      }
    }),
  );
  return { seconds: (performance.now() - started) / 1000, latencies };
}

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

function vector(n: number, norm: number): Float32Array {
  const v = new Float32Array(n);
  let s = 0;
  for (let i = 0; i < n; i++) {
    v[i] = Math.sin(i * 0.7368) * 0.5;
    s += v[i]! * v[i]!;
  }
  const k = norm / Math.sqrt(s);
  for (let i = 0; i < n; i++) v[i] = v[i]! * k;
  return v;
}

async function prepare(
  edge: LocalEdge,
  model: string,
): Promise<{ roundId: string; bodies: Uint8Array[]; apiKey: string }> {
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" };
  const key = await json<{ key: string }>(
    await fetch(`${edge.url}/v1/admin/keys`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({ name: "ingest bench", rate_limit_per_minute: 1_000_000 }),
    }),
    201,
  );
  const round = await json<{ round_id: string }>(
    await fetch(`${edge.url}/v1/admin/rounds`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({
        model,
        model_version: 1,
        clip_norm: 1,
        learning_rate: 0.05,
        local_epochs: 1,
        batch_size: 32,
        // Mode none: the ingest path is the same as central's (norm ≤ C), without a privacy budget to set up.
        privacy_mode: "none",
        trainable: "all",
        update_length: N_PARAMS,
        sampling_rate: 1,
        min_reports: 1,
        max_reports: 100_000,
        duration_s: 3600,
      }),
    }),
    201,
  );
  const apiHeaders = { authorization: `Bearer ${key.key}`, "content-type": "application/json" };
  const bodies: Uint8Array[] = new Array(N_UPDATES);
  const values = vector(N_PARAMS, 0.5);
  await pool(
    Array.from({ length: N_UPDATES }, (_, i) => async () => {
      const keys = nacl.sign.keyPair();
      const { device_id } = await json<{ device_id: string }>(
        await fetch(`${edge.url}/v1/devices`, {
          method: "POST",
          headers: apiHeaders,
          body: JSON.stringify({ public_key: toBase64Url(keys.publicKey) }),
        }),
        201,
      );
      const timestamp = new Date().toISOString();
      const signature = toBase64Url(
        nacl.sign.detached(checkinSigningBytes(model, device_id, timestamp), keys.secretKey),
      );
      const answer = await json<CheckinResponse>(
        await fetch(`${edge.url}/v1/rounds/checkin`, {
          method: "POST",
          headers: apiHeaders,
          body: JSON.stringify({ model, device_id, timestamp, signature }),
        }),
        200,
      );
      if (!answer.selected) throw new Error("q = 1 but a device was not selected");
      const task: RoundTask = answer.task;
      values[i % N_PARAMS] = 0; // a different body per device (the norm only shrinks)
      bodies[i] = await encodeUpdate(
        {
          roundId: task.round_id,
          deviceId: device_id,
          nonce: fromBase64Url(task.nonce),
          shape: [N_PARAMS],
          payload: { dtype: "float32", values: values.slice() },
        },
        keys.secretKey,
      );
    }),
    4,
  );
  return { roundId: round.round_id, bodies, apiKey: key.key };
}

export default async function run(): Promise<BenchMeasure[]> {
  const persistTo = mkdtempSync(path.join(os.tmpdir(), "fedge-ingest-bench-"));
  let edge: LocalEdge | undefined;
  let echo: LocalEdge | undefined;
  try {
    // One after the other: two wrangler processes starting at once can race for their internal sockets.
    edge = await startLocalEdge({ port: EDGE_PORT, persistTo, vars: { FEDGE_ADMIN_TOKEN: ADMIN_TOKEN } });
    echo = await startLocalEdge({
      port: ECHO_PORT,
      persistTo: path.join(persistTo, "echo"),
      config: path.join(repoRoot, "bench/echo/wrangler.toml"),
    });
    const { roundId, bodies, apiKey } = await prepare(edge, "bench-ingest");
    const post = (url: string, body: Uint8Array, expectStatus: number) => async () => {
      const res = await fetch(url, {
        method: "POST",
        // Uploads carry the fleet's API key (the echo baselines ignore it).
        headers: { "content-type": UPDATE_MEDIA_TYPE, authorization: `Bearer ${apiKey}` },
        body: body as Uint8Array<ArrayBuffer>,
      });
      const text = await res.text();
      if (res.status !== expectStatus) throw new Error(`HTTP ${res.status}: ${text.slice(0, 300)}`);
    };
    const echoUrl = `${echo.url}/v1/rounds/${roundId}/updates`;
    const durableUrl = `${echoUrl}?store=do`;
    const r2Url = `${echoUrl}?store=r2`;
    const edgeUrl = `${edge.url}/v1/rounds/${roundId}/updates`;
    // Each server's workerd CPU time (all threads) over the run, per request: what the upload costs the edge's one
    // process, which wall time on this shared machine hides under other tenants' load.
    const run = async (url: string, batch: Uint8Array[]) => {
      const pid = url.startsWith(edge!.url) ? edge!.pid! : echo!.pid!;
      const cpu0 = workerdCpuNs(pid);
      const timing = await pool(
        batch.map((b) => post(url, b, 201)),
        CONCURRENCY,
      );
      return { ...timing, cpuMsPerRequest: (workerdCpuNs(pid) - cpu0) / 1e6 / batch.length };
    };
    // Warm everything (JIT, connections, the Durable Object shards): the edge with 16 real uploads not counted below.
    const warm = 16;
    for (const url of [echoUrl, durableUrl, r2Url, edgeUrl]) await run(url, bodies.slice(0, warm));
    const timed = bodies.slice(warm);
    // Baselines before and after the edge run, averaged, so a load change on the machine hits both sides.
    const echo1 = await run(echoUrl, timed);
    const durable1 = await run(durableUrl, timed);
    const r2 = await run(r2Url, timed);
    const edgeRun = await run(edgeUrl, timed);
    const durable2 = await run(durableUrl, timed);
    const echo2 = await run(echoUrl, timed);

    // Every upload must be counted exactly once.
    const status = await json<{ accepted: number }>(
      await fetch(`${edge.url}/v1/admin/rounds/${roundId}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }),
      200,
    );
    if (status.accepted !== bodies.length) throw new Error(`accepted ${status.accepted}, expected ${bodies.length}`);

    const n = timed.length;
    const echoRate = (2 * n) / (echo1.seconds + echo2.seconds);
    const durableRate = (2 * n) / (durable1.seconds + durable2.seconds);
    const r2Rate = n / r2.seconds;
    const edgeRate = n / edgeRun.seconds;
    const bytes = bodies[0]!.length;
    const durableCpu = (durable1.cpuMsPerRequest + durable2.cpuMsPerRequest) / 2;
    const echoCpu = (echo1.cpuMsPerRequest + echo2.cpuMsPerRequest) / 2;
    const ms = (xs: number[]) => `p50 ${pct(xs, 0.5).toFixed(1)} ms, p99 ${pct(xs, 0.99).toFixed(1)} ms`;
    const common =
      `${n} uploads at concurrency ${CONCURRENCY}; edge ${ms(edgeRun.latencies)}; ` +
      `client and all servers share this machine's ${os.cpus().length} cores`;
    return [
      measure({
        name: "ingest-100k-float32-updates-per-s",
        description: `accepted signed ${N_PARAMS}-parameter float32 updates (${bytes} bytes) per second through wrangler dev on loopback`,
        value: edgeRate,
        unit: "updates/s",
        baseline_name: "bare echo worker (bench/echo) receiving the same bytes, same concurrency, same run",
        baseline: echoRate,
        better: "higher",
        goalRatio: 0.5,
        notes: `${common}; echo ${ms(echo1.latencies)} (measured before and after the edge, averaged)`,
      }),
      measure({
        name: "ingest-vs-durable-write-floor",
        description:
          "the same ingestion rate against an echo worker that also writes the bytes durably into a SQLite-backed Durable Object",
        value: edgeRate,
        unit: "updates/s",
        baseline_name:
          "echo worker + one durable Durable Object SQLite write of the same bytes (bench/echo ?store=do), same concurrency, same run",
        baseline: durableRate,
        better: "higher",
        goalRatio: 0.8,
        notes:
          `${common}; echo+DO write ${ms(durable1.latencies)}; echo+DO / bare echo = ${(durableRate / echoRate).toFixed(3)}. ` +
          "An upload is acknowledged only once its bytes are durable, so this baseline bounds ingestion under wrangler dev",
      }),
      measure({
        name: "ingest-vs-r2-put",
        description: "the same ingestion rate against an echo worker that also puts the bytes into R2 once",
        value: edgeRate,
        unit: "updates/s",
        baseline_name: "echo worker + one R2 put of the same bytes (bench/echo ?store=r2), same concurrency, same run",
        baseline: r2Rate,
        better: "higher",
        notes:
          `${common}; echo+R2 ${ms(r2.latencies)}; echo+R2 / bare echo = ${(r2Rate / echoRate).toFixed(3)}. ` +
          "What ingestion paid per update when each payload went to R2 before its receipt; now R2 gets sealed segments",
      }),
      measure({
        name: "ingest-cpu-vs-durable-write-floor",
        description:
          "workerd CPU time (all threads of the edge's process: route, codec, signature, Durable Objects, SQLite) per accepted update",
        value: edgeRun.cpuMsPerRequest,
        unit: "ms/update",
        baseline_name:
          "workerd CPU time per request of the echo worker + one durable Durable Object SQLite write of the same bytes, same run",
        baseline: durableCpu,
        better: "lower",
        notes:
          `${common}; bare echo ${echoCpu.toFixed(2)} ms per request. CPU time, unlike the rates above, is not shared ` +
          "with the load generator or other tenants: the per-update work that sets how many updates one core ingests",
      }),
    ];
  } finally {
    await Promise.all([edge?.stop(), echo?.stop()]);
    rmSync(persistTo, { recursive: true, force: true });
  }
}
