/**
 * @module
 * What sharded round coordination costs where it cannot help: against the real local edge (`wrangler dev`, one workerd
 * process on loopback, on the same cores as this load generator), two bench populations, one on a single coordinator
 * (S = 1) and one on S = 4 shards (`PUT /v1/admin/populations/{name}/sharding`), in the same run:
 *
 * (a) check-ins per second. DEVICES devices (each its own Ed25519 key, registered once) check in to a fresh central-DP
 *     round (q = 0.3, so every check-in flips a coin, writes it and gets a signed receipt) at CONCURRENCY requests in
 *     flight, through `POST /v1/rounds/checkin`: API key, device signature, the device's registry, the population's
 *     routing, then the device's coordinator (at S = 4 the shard `model#i` its keyed hash names). The two populations
 *     take turns, TRIALS times each (S = 1 first, then S = 4, and so on), each turn a new round so every check-in is a
 *     first one; the medians are compared. Goal (issue 19): S = 4 ≥ 0.9× S = 1. Every object runs inside the one
 *     workerd process here, so shards add no cores, only routing; the workerd CPU time per check-in (all its threads,
 *     `schedstat`) is reported beside it.
 * (b) the coordinator's CPU time per check-in at S = 1 and S = 4: the admin bench route
 *     (workers/src/routes/admin-bench.ts) runs N first check-ins, each device on the shard its keyed hash names, in
 *     one RPC per shard (`rpc=batch`, one commit each), and workerd's CPU time for that request is read from
 *     `schedstat` (all threads). The difference between a call with CPU_LARGE and one with CPU_SMALL check-ins,
 *     ÷ their difference, is the marginal work per check-in: each object's fixed cost per call (its RPC, opening and
 *     committing its transaction, about the same at any N) cancels, where against a call with no check-in it would
 *     weigh S times at S shards. The populations again take turns, three times each, medians; the time the route
 *     measures inside workerd (wall: it also waits for the local SQLite commits) and the value against the empty call
 *     are in the notes. This is the per-object cost docs/SCALE.md sizes shards with.
 *
 * `FEDGE_BENCH_SHARDS_DEVICES` and `FEDGE_BENCH_SHARDS_TRIALS` change the size of (a).
 */
import { generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { checkinSigningBytes, toBase64Url, type CheckinResponse } from "@fedge/protocol";
import { startLocalEdge, type LocalEdge } from "@fedge/local-edge";
import { EdgeAdminClient } from "fedge/edge";
import { benchRoundBody } from "../bench-round.ts";
import { cpuTimed, workerdCpuNs } from "../cpu-time.ts";
import { measure, type BenchMeasure } from "../types.ts";

const PORT = Number(process.env.FEDGE_BENCH_SHARDS_PORT ?? 8850);
const DEVICES = Number(process.env.FEDGE_BENCH_SHARDS_DEVICES ?? 400);
const TRIALS = Number(process.env.FEDGE_BENCH_SHARDS_TRIALS ?? 5);
const CONCURRENCY = 24; // as many in flight as `npm run demo`'s devices
const Q = 0.3;
const SHARDED = 4;
/** Check-ins of the small and large bench calls (their difference cancels each object's fixed cost per call). */
const CPU_SMALL = 4_000;
const CPU_LARGE = 16_000;
const CPU_TRIALS = 3;
const ADMIN_TOKEN = `bench-${toBase64Url(crypto.getRandomValues(new Uint8Array(16)))}`;
const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" };

async function json<T>(res: Response, expectStatus: number): Promise<T> {
  const text = await res.text();
  if (res.status !== expectStatus)
    throw new Error(`HTTP ${res.status} (expected ${expectStatus}): ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
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

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/** A population with its shard count set and a bench privacy budget (ε is not the point here). */
async function population(operator: EdgeAdminClient, model: string, shards: number): Promise<void> {
  await operator.setPrivacyBudget(model, { epsilon: 1e6, delta: 1e-5 });
  const set = await operator.setSharding(model, { shards });
  if (set.shards !== shards) throw new Error(`${model}: asked for ${shards} shards, the edge set ${set.shards}`);
}

/** Closes the population's previous round (if any) and opens a fresh central-DP one; returns its id. */
async function freshRound(edge: LocalEdge, model: string, previous: string | null, q: number): Promise<string> {
  if (previous !== null) {
    await json(await fetch(`${edge.url}/v1/admin/rounds/${previous}/close`, { method: "POST", headers: admin }), 200);
  }
  const opened = await json<{ round_id: string }>(
    await fetch(`${edge.url}/v1/admin/rounds`, {
      method: "POST",
      headers: admin,
      body: benchRoundBody(model, q),
    }),
    201,
  );
  return opened.round_id;
}

interface Device {
  id: string;
  privateKey: KeyObject;
}

/** (a): the check-in throughput of both populations, taking turns. */
async function checkinThroughput(edge: LocalEdge, operator: EdgeAdminClient) {
  const { key } = await operator.createApiKey("shards bench", 1_000_000);
  const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };
  const devices: Device[] = [];
  await pool(DEVICES, 8, async () => {
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    const { device_id } = await json<{ device_id: string }>(
      await fetch(`${edge.url}/v1/devices`, {
        method: "POST",
        headers,
        body: JSON.stringify({ public_key: publicKey.export({ format: "jwk" }).x! }),
      }),
      201,
    );
    devices.push({ id: device_id, privateKey });
  });
  const populations = [
    { model: "bench-shards-s1", shards: 1, round: null as string | null, rates: [] as number[], cpu: [] as number[] },
    {
      model: "bench-shards-s4",
      shards: SHARDED,
      round: null as string | null,
      rates: [] as number[],
      cpu: [] as number[],
    },
  ];
  for (const p of populations) await population(operator, p.model, p.shards);
  let selected = 0;
  let checkins = 0;
  // One untimed turn each first (JIT, connections, the shards' objects and tables), then TRIALS timed turns each.
  for (let turn = 0; turn <= TRIALS; turn++) {
    for (const p of populations) {
      p.round = await freshRound(edge, p.model, p.round, Q);
      // Signed before the clock starts: the device's own work is not the edge's.
      const timestamp = new Date().toISOString();
      const bodies = devices.map((d) =>
        JSON.stringify({
          model: p.model,
          device_id: d.id,
          timestamp,
          signature: toBase64Url(sign(null, checkinSigningBytes(p.model, d.id, timestamp), d.privateKey)),
        }),
      );
      const cpu0 = workerdCpuNs(edge.pid!);
      const seconds = await pool(DEVICES, CONCURRENCY, async (i) => {
        const answer = await json<CheckinResponse & { receipt?: unknown }>(
          await fetch(`${edge.url}/v1/rounds/checkin`, { method: "POST", headers, body: bodies[i]! }),
          200,
        );
        if (answer.receipt === undefined) throw new Error(`${p.model}: a DP check-in came without its receipt`);
        if (answer.selected) selected++;
        checkins++;
      });
      const cpuMs = (workerdCpuNs(edge.pid!) - cpu0) / 1e6;
      if (turn === 0) continue;
      p.rates.push(DEVICES / seconds);
      p.cpu.push(cpuMs / DEVICES);
    }
  }
  // Every check-in was counted once, on the round of its population (at S = 4: the shards' counters summed).
  for (const p of populations) {
    const status = await json<{ checked_in: number }>(
      await fetch(`${edge.url}/v1/admin/rounds/${p.round}`, { headers: admin }),
      200,
    );
    if (status.checked_in !== DEVICES) throw new Error(`${p.round}: ${status.checked_in} check-ins, sent ${DEVICES}`);
  }
  const [s1, s4] = populations;
  return { s1: s1!, s4: s4!, selected, checkins };
}

/** (b): the coordinators' own CPU time per check-in, timed inside workerd by the admin bench route. */
async function coordinatorCpu(edge: LocalEdge, operator: EdgeAdminClient) {
  const populations = [
    {
      model: "bench-shards-cpu-s1",
      shards: 1,
      cpu: [] as number[],
      elapsed: [] as number[],
      againstZero: [] as number[],
    },
    {
      model: "bench-shards-cpu-s4",
      shards: SHARDED,
      cpu: [] as number[],
      elapsed: [] as number[],
      againstZero: [] as number[],
    },
  ];
  /** One bench call: workerd's CPU ms for it (schedstat) and the ms it took inside workerd. */
  const bench = async (model: string, n: number, prefix: string, shards: number) => {
    let r!: { runs: number; shards: number; elapsed_ms: number };
    const { cpu } = await cpuTimed(edge.pid!, async () => {
      r = await json(
        await fetch(`${edge.url}/v1/admin/bench/rounds/${model}/checkins?n=${n}&prefix=${prefix}&rpc=batch`, {
          method: "POST",
          headers: admin,
        }),
        200,
      );
    });
    if (r.shards !== shards) throw new Error(`${model}: the bench route routed with S = ${r.shards}, not ${shards}`);
    return { cpu, elapsed: r.elapsed_ms };
  };
  for (const p of populations) {
    await population(operator, p.model, p.shards);
    await freshRound(edge, p.model, null, 0.5);
    await bench(p.model, 200, "dev_warm", p.shards);
  }
  for (let r = 0; r < CPU_TRIALS; r++) {
    for (const p of populations) {
      const zero = await bench(p.model, 0, "dev_zero", p.shards);
      const small = await bench(p.model, CPU_SMALL, `dev_small${r}x`, p.shards);
      const large = await bench(p.model, CPU_LARGE, `dev_large${r}x`, p.shards);
      p.cpu.push((large.cpu - small.cpu) / (CPU_LARGE - CPU_SMALL));
      p.elapsed.push((large.elapsed - small.elapsed) / (CPU_LARGE - CPU_SMALL));
      p.againstZero.push((large.cpu - zero.cpu) / CPU_LARGE);
    }
  }
  const [s1, s4] = populations;
  return { s1: s1!, s4: s4! };
}

export default async function run(): Promise<BenchMeasure[]> {
  const persistTo = mkdtempSync(path.join(os.tmpdir(), "fedge-shards-bench-"));
  let edge: LocalEdge | undefined;
  try {
    edge = await startLocalEdge({ port: PORT, persistTo, vars: { FEDGE_ADMIN_TOKEN: ADMIN_TOKEN } });
    const operator = new EdgeAdminClient({ baseUrl: edge.url, adminToken: ADMIN_TOKEN });
    const t = await checkinThroughput(edge, operator);
    const cpu = await coordinatorCpu(edge, operator);
    const rate1 = median(t.s1.rates);
    const rate4 = median(t.s4.rates);
    const perRun = (xs: number[], digits: number) => xs.map((x) => x.toFixed(digits)).join(", ");
    const where = `client and edge share this machine's ${os.cpus().length} cores (loaded by other jobs); every Durable Object runs in the one workerd process`;
    console.log(
      `  check-ins/s S=1 ${perRun(t.s1.rates, 0)}; S=${SHARDED} ${perRun(t.s4.rates, 0)}; coordinator CPU ms/check-in S=1 ${perRun(cpu.s1.cpu, 4)}; S=${SHARDED} ${perRun(cpu.s4.cpu, 4)}`,
    );
    return [
      measure({
        name: "checkins-per-s-s4-vs-s1",
        description: `device check-ins per second (POST /v1/rounds/checkin, central DP, q = ${Q}, signed receipts) into a population on ${SHARDED} coordinator shards`,
        value: rate4,
        unit: "checkins/s",
        baseline_name: "the same check-ins into a population on one coordinator (S = 1), turns alternating, same run",
        baseline: rate1,
        better: "higher",
        goalRatio: 0.9,
        notes:
          `${DEVICES} devices, ${CONCURRENCY} in flight, ${TRIALS} turns each (medians; per turn S=1 ${perRun(t.s1.rates, 0)}, ` +
          `S=${SHARDED} ${perRun(t.s4.rates, 0)} check-ins/s), each turn a fresh round; ${t.checkins} check-ins, ${t.selected} selected. ` +
          `workerd CPU per check-in (all threads): S=1 ${median(t.s1.cpu).toFixed(3)} ms, S=${SHARDED} ${median(t.s4.cpu).toFixed(3)} ms (medians). ${where}`,
      }),
      measure({
        name: "edge-cpu-ms-per-checkin-s4-vs-s1",
        description: `workerd CPU time per check-in (route, device registry, routing, coordinator; all threads) on ${SHARDED} shards`,
        value: median(t.s4.cpu),
        unit: "ms",
        baseline_name: "the same on one coordinator (S = 1), turns alternating, same run",
        baseline: median(t.s1.cpu),
        better: "lower",
        notes: `per turn S=1 ${perRun(t.s1.cpu, 3)} ms, S=${SHARDED} ${perRun(t.s4.cpu, 3)} ms; ${where}`,
      }),
      measure({
        name: "coordinator-cpu-ms-per-checkin-s4-vs-s1",
        description: `the coordinators' CPU time per first check-in at S = ${SHARDED} (CSPRNG coin, SQLite reads and transaction, q = 0.5; the route's keyed hash of each id included): each device on its own shard, one RPC per shard; workerd CPU (all threads) of a ${CPU_LARGE}-check-in call minus a ${CPU_SMALL}-check-in call, ÷ ${CPU_LARGE - CPU_SMALL}`,
        value: median(cpu.s4.cpu),
        unit: "ms",
        baseline_name: "the same on the single coordinator (S = 1), turns alternating, same run",
        baseline: median(cpu.s1.cpu),
        better: "lower",
        notes:
          `${CPU_TRIALS} turns each (medians; per turn S=1 ${perRun(cpu.s1.cpu, 4)} ms, S=${SHARDED} ${perRun(cpu.s4.cpu, 4)} ms). ` +
          `Against a call with no check-in instead (÷ ${CPU_LARGE}; the objects' fixed cost per call counted S times): S=1 ${median(cpu.s1.againstZero).toFixed(4)} ms, S=${SHARDED} ${median(cpu.s4.againstZero).toFixed(4)} ms. ` +
          `Timed inside workerd (wall, waits for the local SQLite commits too), same difference: S=1 ${median(cpu.s1.elapsed).toFixed(4)} ms, S=${SHARDED} ${median(cpu.s4.elapsed).toFixed(4)} ms. ` +
          `The per-object cost that sizes shards in production (docs/SCALE.md); ${where}`,
      }),
    ];
  } finally {
    await edge?.stop();
    rmSync(persistTo, { recursive: true, force: true });
  }
}
