/**
 * @module
 * Edge inference (issue 4), all in one run against the real local edge (`wrangler dev`, workerd, loopback):
 *
 * (a) compute per inference inside the Worker (onnxruntime-web wasm, 1 thread) on the float32 MNIST MLP vs
 *     onnxruntime-node (native, 1 thread) on the same file. Inside a request `performance.now()` does not advance, so
 *     the admin bench route runs N inferences in one request, minus the same request with n=0, measured as CPU time
 *     (workerd's threads vs this process, `bench/cpu-time.ts`: on a shared machine wall time measures the other
 *     tenants; the wall ratio is in the notes). Worker and node rounds alternate. Goal: ≤ 1.5×.
 * (b) `/predict` p50/p99 for batch 1 and 32 (JSON rows, and batch 32 as raw float32) against the no-op `/v1/health`
 *     p50 of the same worker. The four requests are sent in turn (health, b1, b32, b32 binary, health, …), so every
 *     series sees the same load. Goal: predict p50 ≤ 1.5× the no-op p50.
 * (c) model size int8/fp32 (goal ≤ 0.3) and MNIST test-split accuracy of the int8 model served by the Worker vs the
 *     fp32 model on onnxruntime-node (goal: drop ≤ 0.5 points).
 * (d) cold start: first `/predict` after a fresh `wrangler dev` is ready (ORT init + session creation + request) vs
 *     the warm batch-1 p50; gzip'd bundle size from `wrangler deploy --dry-run --outdir` vs the paid plan's 10 MB cap.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import * as ortNode from "onnxruntime-node";
import { toBase64Url } from "@fedge/protocol";
import { uploadManifestFromOnnx } from "@fedge/ml";
import { repoRoot, startLocalEdge, type LocalEdge } from "@fedge/local-edge";
import { loadMnist } from "fedge/data";
import { cpuTimed, nodeCpuTimed } from "../cpu-time.ts";
import { measure, type BenchMeasure } from "../types.ts";

/** `FEDGE_BENCH_INFERENCE_PORT` lets an ad-hoc run stay clear of a full `npm run bench` on the same machine. */
const PORT = Number(process.env.FEDGE_BENCH_INFERENCE_PORT ?? 8791);
const ADMIN_TOKEN = `bench-${toBase64Url(crypto.getRandomValues(new Uint8Array(16)))}`;
const REQUESTS = 200;
const COMPUTE_N = 2_000;
const MODELS_DIR = path.join(repoRoot, "models", "mnist-mlp");

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
const median = (xs: number[]) => pct(xs, 0.5);

async function expectStatus(res: Response, status: number): Promise<string> {
  const text = await res.text();
  if (res.status !== status) throw new Error(`HTTP ${res.status} (expected ${status}): ${text.slice(0, 500)}`);
  return text;
}

async function uploadModel(edge: LocalEdge, name: string, file: string): Promise<void> {
  const bytes = new Uint8Array(readFileSync(file));
  const form = new FormData();
  form.append("model", new File([bytes], path.basename(file)));
  form.append("manifest", JSON.stringify(uploadManifestFromOnnx(name, 1, bytes)));
  await expectStatus(
    await fetch(`${edge.url}/v1/admin/models/${name}/versions`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      body: form,
    }),
    201,
  );
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** Sequential latencies (ms) of several request kinds sent in turn, after `warmup` untimed rounds. */
async function interleavedLatencies(
  n: number,
  warmup: number,
  sends: Record<string, () => Promise<Response>>,
): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = Object.fromEntries(Object.keys(sends).map((k) => [k, []]));
  for (let i = 0; i < warmup + n; i++) {
    for (const [name, send] of Object.entries(sends)) {
      const ms = await timed(async () => {
        const res = await send();
        await res.arrayBuffer();
        if (!res.ok) throw new Error(`${name}: HTTP ${res.status}`);
      });
      if (i >= warmup) out[name]!.push(ms);
    }
  }
  return out;
}

/** CPU and wall ms per inference of the Worker in one round: (T(n) − T(0)) / n, medians of 3 each. */
async function workerCompute(edge: LocalEdge, model: string): Promise<{ cpu: number; wall: number }> {
  const bench = (n: number) => async () => {
    const res = await fetch(`${edge.url}/v1/admin/bench/models/${model}/infer?n=${n}`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    await expectStatus(res, 200);
  };
  await bench(50)();
  const zero: { cpu: number; wall: number }[] = [];
  const full: { cpu: number; wall: number }[] = [];
  for (let i = 0; i < 3; i++) zero.push(await cpuTimed(edge.pid!, bench(0)));
  for (let i = 0; i < 3; i++) full.push(await cpuTimed(edge.pid!, bench(COMPUTE_N)));
  const per = (k: "cpu" | "wall") =>
    Math.max(0, median(full.map((x) => x[k])) - median(zero.map((x) => x[k]))) / COMPUTE_N;
  return { cpu: per("cpu"), wall: per("wall") };
}

/** ms per single-example inference of onnxruntime-node, 1 thread, same fixed input. */
/** onnxruntime-node options matching the Worker's (see SESSION_OPTIONS in workers/src/inference/ort.ts). */
const NODE_OPTIONS = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  graphOptimizationLevel: "all",
  extra: { session: { disable_quant_qdq: "1" } },
} as const;

async function nodeSession(file: string) {
  const session = await ortNode.InferenceSession.create(file, NODE_OPTIONS);
  const input = new ortNode.Tensor("float32", new Float32Array(784).fill(0.5), [1, 784]);
  const feeds = { [session.inputNames[0]!]: input };
  for (let i = 0; i < 200; i++) await session.run(feeds);
  return { session, feeds };
}

/** CPU and wall ms per inference of onnxruntime-node in one round of `COMPUTE_N` runs. */
async function nodeCompute(node: Awaited<ReturnType<typeof nodeSession>>): Promise<{ cpu: number; wall: number }> {
  const t = await nodeCpuTimed(async () => {
    for (let i = 0; i < COMPUTE_N; i++) await node.session.run(node.feeds);
  });
  return { cpu: t.cpu / COMPUTE_N, wall: t.wall / COMPUTE_N };
}

async function nodeAccuracy(file: string, x: Float32Array, y: Uint8Array, n: number): Promise<number> {
  const session = await ortNode.InferenceSession.create(file, NODE_OPTIONS);
  const out = await session.run({ [session.inputNames[0]!]: new ortNode.Tensor("float32", x, [n, 784]) });
  const logits = out[session.outputNames[0]!]!.data as Float32Array;
  await session.release();
  return argmaxAccuracy(logits, y, n);
}

function argmaxAccuracy(logits: ArrayLike<number>, y: Uint8Array, n: number): number {
  let correct = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < 10; j++) if (logits[i * 10 + j]! > logits[i * 10 + best]!) best = j;
    if (best === y[i]) correct++;
  }
  return (100 * correct) / n;
}

async function workerAccuracy(
  edge: LocalEdge,
  apiKey: string,
  x: Float32Array,
  y: Uint8Array,
  n: number,
): Promise<number> {
  const logits = new Float32Array(n * 10);
  for (let start = 0; start < n; start += 128) {
    const end = Math.min(n, start + 128);
    const body = x.slice(start * 784, end * 784);
    const res = await fetch(`${edge.url}/v1/models/mnist-mlp/predict`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/octet-stream" },
      body: new Uint8Array(body.buffer),
    });
    const { outputs } = JSON.parse(await expectStatus(res, 200)) as { outputs: number[][] };
    outputs.forEach((row, i) => logits.set(row, (start + i) * 10));
  }
  return argmaxAccuracy(logits, y, n);
}

function gzipBundleBytes(): { gzip: number; raw: number } {
  const outdir = mkdtempSync(path.join(os.tmpdir(), "fedge-bundle-"));
  try {
    execFileSync(
      process.execPath,
      [
        path.join(repoRoot, "node_modules/wrangler/bin/wrangler.js"),
        "deploy",
        "--dry-run",
        "--outdir",
        outdir,
        "--config",
        path.join(repoRoot, "wrangler.toml"),
      ],
      { cwd: repoRoot, env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false" }, stdio: "pipe" },
    );
    let gzip = 0;
    let raw = 0;
    const walk = (dir: string) => {
      for (const f of readdirSync(dir)) {
        const p = path.join(dir, f);
        if (statSync(p).isDirectory()) walk(p);
        else if (!f.endsWith(".map") && f !== "README.md") {
          const bytes = readFileSync(p);
          raw += bytes.length;
          gzip += gzipSync(bytes, { level: 9 }).length;
        }
      }
    };
    walk(outdir);
    return { gzip, raw };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

export default async function run(): Promise<BenchMeasure[]> {
  const int8File = path.join(MODELS_DIR, "int8.onnx");
  const fp32File = path.join(MODELS_DIR, "fp32.onnx");
  const persistTo = mkdtempSync(path.join(os.tmpdir(), "fedge-inference-bench-"));
  const measures: BenchMeasure[] = [];
  let edge: LocalEdge | undefined;
  try {
    edge = await startLocalEdge({ port: PORT, persistTo, vars: { FEDGE_ADMIN_TOKEN: ADMIN_TOKEN } });
    await uploadModel(edge, "mnist-mlp", int8File);
    await uploadModel(edge, "mnist-mlp-fp32", fp32File);
    const { key } = JSON.parse(
      await expectStatus(
        await fetch(`${edge.url}/v1/admin/keys`, {
          method: "POST",
          headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
          body: JSON.stringify({ name: "inference bench", rate_limit_per_minute: 1_000_000 }),
        }),
        201,
      ),
    ) as { key: string };
    // (d) cold start: restart so that the isolate is fresh, then time the first predict.
    await edge.stop();
    const restartT0 = performance.now();
    edge = await startLocalEdge({ port: PORT, persistTo, vars: { FEDGE_ADMIN_TOKEN: ADMIN_TOKEN } });
    const readyMs = performance.now() - restartT0;
    const { test } = loadMnist();
    const row = Array.from(test.x.subarray(0, 784));
    const predictJson = (batch: number) => {
      const body = JSON.stringify({ inputs: Array.from({ length: batch }, () => row) });
      return () =>
        fetch(`${edge!.url}/v1/models/mnist-mlp/predict`, {
          method: "POST",
          headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
          body,
        });
    };
    const coldMs = await timed(async () => expectStatus(await predictJson(1)(), 200));

    // (b) latency through wrangler dev, the four kinds of request in turn.
    const binary32 = new Uint8Array(test.x.slice(0, 32 * 784).buffer);
    const lat = await interleavedLatencies(REQUESTS, 20, {
      health: () => fetch(`${edge!.url}/v1/health`),
      b1: predictJson(1),
      b32: predictJson(32),
      b32bin: () =>
        fetch(`${edge!.url}/v1/models/mnist-mlp/predict`, {
          method: "POST",
          headers: { authorization: `Bearer ${key}`, "content-type": "application/octet-stream" },
          body: binary32,
        }),
    });
    const { health, b1, b32, b32bin } = lat as Record<"health" | "b1" | "b32" | "b32bin", number[]>;
    const healthP50 = median(health);
    for (const [batch, lat] of [
      [1, b1],
      [32, b32],
    ] as const) {
      measures.push(
        measure({
          name: `predict-p50-batch${batch}`,
          description: `POST /v1/models/mnist-mlp/predict (int8, JSON rows, batch ${batch}) p50 through wrangler dev on loopback`,
          value: median(lat),
          unit: "ms",
          baseline_name: "GET /v1/health p50 (no-op route, same worker)",
          baseline: healthP50,
          better: "lower",
          goalRatio: 1.5,
          notes: `${REQUESTS} sequential requests, interleaved with the no-op; p99 ${pct(lat, 0.99).toFixed(2)} ms; no-op p99 ${pct(health, 0.99).toFixed(2)} ms`,
        }),
      );
    }

    measures.push(
      measure({
        name: "predict-p50-batch32-json-vs-binary",
        description:
          'POST /v1/models/mnist-mlp/predict batch 32 as JSON {"inputs": number[][]} (read in one pass from the bytes, routes/predict/json-rows.ts) p50',
        value: median(b32),
        unit: "ms",
        baseline_name:
          "the same batch as application/octet-stream float32 p50 (no number parsing), same run, interleaved",
        baseline: median(b32bin),
        better: "lower",
        notes: `${REQUESTS} sequential requests of each kind in turn; the difference is reading ${(JSON.stringify({ inputs: Array.from({ length: 32 }, () => row) }).length / 1000).toFixed(0)} kB of JSON numbers instead of 100 kB of float32`,
      }),
      measure({
        name: "predict-p50-batch32-binary",
        description:
          "POST /v1/models/mnist-mlp/predict (int8, application/octet-stream float32, batch 32) p50 through wrangler dev",
        value: median(b32bin),
        unit: "ms",
        baseline_name: "GET /v1/health p50 (no-op route, same worker)",
        baseline: healthP50,
        better: "lower",
        goalRatio: 1.5,
        notes: `${REQUESTS} sequential requests, interleaved with the no-op; p99 ${pct(b32bin, 0.99).toFixed(2)} ms; 100 kB body instead of ~480 kB JSON`,
      }),
    );

    // (a) compute per inference: worker and node rounds alternate; medians of 5 rounds each.
    const node = await nodeSession(fp32File);
    const workerRuns: { cpu: number; wall: number }[] = [];
    const nodeRuns: { cpu: number; wall: number }[] = [];
    for (let r = 0; r < 5; r++) {
      workerRuns.push(await workerCompute(edge, "mnist-mlp-fp32"));
      nodeRuns.push(await nodeCompute(node));
    }
    await node.session.release();
    const workerRounds = workerRuns.map((x) => x.cpu);
    const nodeRounds = nodeRuns.map((x) => x.cpu);
    const workerMs = median(workerRounds);
    const nodeMs = median(nodeRounds);
    const wallRatio = median(workerRuns.map((x) => x.wall)) / median(nodeRuns.map((x) => x.wall));
    const workerInt8Ms = (await workerCompute(edge, "mnist-mlp")).cpu;
    measures.push(
      measure({
        name: "compute-per-inference-fp32",
        description:
          "CPU time per single-example inference of the fp32 784→64→10 MLP: onnxruntime-web (wasm, 1 thread) inside the Worker",
        value: workerMs,
        unit: "ms",
        baseline_name: "onnxruntime-node 1.30 native, 1 thread, same fp32 file (process CPU time)",
        baseline: nodeMs,
        better: "lower",
        goalRatio: 1.5,
        notes: `(CPU(n=${COMPUTE_N}) − CPU(n=0)) / n of workerd's threads; 5 rounds alternating with node, medians; per-round ratios ${workerRounds.map((w, i) => (w / nodeRounds[i]!).toFixed(2)).join(" ")}; wall-clock ratio ${wallRatio.toFixed(2)}; int8 model in the Worker: ${workerInt8Ms.toFixed(4)} ms`,
      }),
    );

    // (c) size and accuracy.
    const int8Size = statSync(int8File).size;
    const fp32Size = statSync(fp32File).size;
    measures.push(
      measure({
        name: "model-size-int8-vs-fp32",
        description: "Size of models/mnist-mlp/int8.onnx",
        value: int8Size,
        unit: "bytes",
        baseline_name: "models/mnist-mlp/fp32.onnx",
        baseline: fp32Size,
        better: "lower",
        goalRatio: 0.3,
      }),
    );
    const fp32Acc = await nodeAccuracy(fp32File, test.x, test.y, test.n);
    const int8Acc = await workerAccuracy(edge, key, test.x, test.y, test.n);
    const drop = fp32Acc - int8Acc;
    measures.push({
      ...measure({
        name: "accuracy-int8-vs-fp32",
        description: `MNIST test-split accuracy (${test.n} digits) of the int8 model served by the Worker`,
        value: int8Acc,
        unit: "%",
        baseline_name: "fp32 model on onnxruntime-node",
        baseline: fp32Acc,
        better: "higher",
      }),
      goal: "drop ≤ 0.5 points",
      goal_met: drop <= 0.5,
      notes: `drop ${drop.toFixed(2)} points`,
    });

    // (d) cold start and bundle.
    measures.push(
      measure({
        name: "cold-start-first-predict",
        description:
          "First /predict (batch 1) after a fresh wrangler dev is ready: ORT wasm init, R2 read, session, inference",
        value: coldMs,
        unit: "ms",
        baseline_name: "warm /predict batch-1 p50",
        baseline: median(b1),
        better: "lower",
        notes: `wrangler dev ready in ${readyMs.toFixed(0)} ms`,
      }),
    );
  } finally {
    await edge?.stop();
    rmSync(persistTo, { recursive: true, force: true });
  }
  const bundle = gzipBundleBytes();
  measures.push(
    measure({
      name: "bundle-gzip",
      description: "gzip'd worker bundle from `wrangler deploy --dry-run --outdir` (onnxruntime-web wasm included)",
      value: bundle.gzip,
      unit: "bytes",
      baseline_name: "Workers paid-plan limit (10 MB compressed); the free plan allows 3 MB",
      baseline: 10 * 1024 * 1024,
      better: "lower",
      goalRatio: 1,
      notes: `uncompressed ${(bundle.raw / 1e6).toFixed(2)} MB; ${(bundle.gzip / 1e6).toFixed(2)} MB gzip is ${bundle.gzip > 3 * 1024 * 1024 ? "over" : "under"} the free plan's 3 MB`,
    }),
  );
  return measures;
}
