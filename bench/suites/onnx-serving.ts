/**
 * @module
 * Serving models teams have (issue 22), for the project's built MNIST CNN (NCHW float32) and text transformer (int64
 * ids + mask, two outputs), against the real local edge (`wrangler dev`, workerd, loopback), all in one run:
 *
 * (a) compute per inference inside the Worker (onnxruntime-web wasm, 1 thread, the `/v2` tensor path) on the fp32
 *     file vs onnxruntime-node as a user gets it (native, default options) on the same file and the same fixed
 *     input: the admin bench route runs N inferences in one request, minus the same request with n=0. Measured as
 *     CPU time — workerd's threads (`/proc/<pid>/task/<tid>/schedstat`, ns) against the node process's
 *     `process.cpuUsage()` — because wall time on a shared two-core machine mostly measures the other tenants
 *     (the wall-clock ratio is in the notes). Goal ≤ 1.5×. Attribution, in the same alternating rounds (medians of
 *     `ROUNDS`, see bench/ort-attribution.ts): native with 1 intra-op thread, and with 1 thread and no layout
 *     optimizations (no NCHWc); the same wasm build run by Node's V8 (what workerd adds); and the int8 file in the
 *     Worker against the int8 file natively (like with like: `/v2` infer serves the int8 version).
 * (b) `POST /v2/models/{name}/infer` with binary tensor data (batch 1, int8 model) p50 against the no-op
 *     `/v1/health` p50 of the same worker, requests interleaved. Goal ≤ 1.5×.
 * (c) int8/fp32 file size (goal ≤ 0.3), and accuracy on the model's held-out split: the int8 model served by the
 *     Worker (v2 binary) vs the fp32 model on onnxruntime-node. Goal: drop ≤ 0.5 points.
 * (d) per-op time of wasm against native, in this process: a MatMul of the transformer's q/k/v shape and the CNN's
 *     convolution stage.
 *
 * `FEDGE_BENCH_ONNX_ONLY=compute` runs (a) and (d) only, for short partial runs.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as ortNode from "onnxruntime-node";
import {
  benchInputs,
  decodeV2Outputs,
  INFERENCE_HEADER_LENGTH,
  joinInferBody,
  splitInferBody,
  tensorToBytes,
  toBase64Url,
  V2_DATATYPES,
  type Tensor,
} from "@fedge/protocol";
import { inspectServable, uploadManifestFromOnnx } from "@fedge/ml";
import { repoRoot, startLocalEdge, type LocalEdge } from "@fedge/local-edge";
import { loadMnist, loadSyntheticText } from "fedge/data";
import { cpuTimed, nodeCpuTimed } from "../cpu-time.ts";
import {
  cpuMicrosPerRun,
  cutAfter,
  localRuntimes,
  matmulChainOnnx,
  NODE_1_THREAD,
  type LocalRuntime,
} from "../ort-attribution.ts";
import { measure, type BenchMeasure } from "../types.ts";

const PORT = Number(process.env.FEDGE_BENCH_ONNX_PORT ?? 8793);
const ADMIN_TOKEN = `bench-${toBase64Url(crypto.getRandomValues(new Uint8Array(16)))}`;
const REQUESTS = 200;
const COMPUTE_N = 1_000;
/** Alternating rounds of the compute measures (medians): the machine is shared, rounds are cheap. */
const ROUNDS = 9;
/** `FEDGE_BENCH_ONNX_ONLY=compute`: run only (a) and (d), for short partial runs while tuning the compute path. */
const COMPUTE_ONLY = process.env.FEDGE_BENCH_ONNX_ONLY === "compute";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

async function ok(res: Response): Promise<Response> {
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
  return res;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

interface Served {
  name: string;
  dir: string;
  fp32: Uint8Array;
  int8: Uint8Array;
  /** Held-out inputs in batches (as tensors by name) and labels; `classes` logits per example. */
  batches: { feeds: Map<string, Tensor>; labels: Uint8Array }[];
  classes: number;
}

function seedModels(): Served[] {
  const read = (m: string, f: string) => new Uint8Array(readFileSync(path.join(repoRoot, "models", m, f)));
  const { test: digits } = loadMnist();
  const cnnBatches = [];
  for (let s = 0; s < digits.n; s += 128) {
    const m = Math.min(128, digits.n - s);
    cnnBatches.push({
      feeds: new Map<string, Tensor>([
        ["image", { dtype: "float32", shape: [m, 1, 28, 28], data: digits.x.slice(s * 784, (s + m) * 784) }],
      ]),
      labels: digits.y.slice(s, s + m),
    });
  }
  const { test: text } = loadSyntheticText();
  const textBatches = [];
  for (let s = 0; s < text.n; s += 250) {
    const m = Math.min(250, text.n - s);
    const cut = (a: BigInt64Array) => a.slice(s * text.len, (s + m) * text.len);
    textBatches.push({
      feeds: new Map<string, Tensor>([
        ["input_ids", { dtype: "int64", shape: [m, text.len], data: cut(text.ids) }],
        ["attention_mask", { dtype: "int64", shape: [m, text.len], data: cut(text.mask) }],
      ]),
      labels: text.y.slice(s, s + m),
    });
  }
  return [
    {
      name: "mnist-cnn",
      dir: "models/mnist-cnn",
      fp32: read("mnist-cnn", "fp32.onnx"),
      int8: read("mnist-cnn", "int8.onnx"),
      batches: cnnBatches,
      classes: 10,
    },
    {
      name: "text-transformer",
      dir: "models/text-transformer",
      fp32: read("text-transformer", "fp32.onnx"),
      int8: read("text-transformer", "int8.onnx"),
      batches: textBatches,
      classes: 2,
    },
  ];
}

async function upload(edge: LocalEdge, name: string, version: number, bytes: Uint8Array): Promise<void> {
  const form = new FormData();
  form.append("model", new File([bytes as Uint8Array<ArrayBuffer>], "model.onnx"));
  form.append("manifest", JSON.stringify(uploadManifestFromOnnx(name, version, bytes)));
  await ok(
    await fetch(`${edge.url}/v1/admin/models/${name}/versions`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      body: form,
    }),
  );
}

/** A binary v2 request body for `feeds` (binary outputs). */
function binaryBody(feeds: Map<string, Tensor>): { body: Uint8Array; headerLength: number } {
  const chunks = [...feeds.values()].map((t) => tensorToBytes(t.data));
  const header = {
    inputs: [...feeds].map(([name, t], i) => ({
      name,
      shape: t.shape,
      datatype: V2_DATATYPES[t.dtype],
      parameters: { binary_data_size: chunks[i]!.byteLength },
    })),
    parameters: { binary_data_output: true },
  };
  return joinInferBody(header, chunks);
}

function infer(edge: LocalEdge, key: string, path: string, feeds: Map<string, Tensor>) {
  const { body, headerLength } = binaryBody(feeds);
  return () =>
    fetch(`${edge.url}${path}`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${key}`,
        "content-type": "application/octet-stream",
        [INFERENCE_HEADER_LENGTH]: String(headerLength),
      },
      body: body as Uint8Array<ArrayBuffer>,
    });
}

function ortFeeds(feeds: Map<string, Tensor>): Record<string, ortNode.Tensor> {
  return Object.fromEntries(
    [...feeds].map(([n, t]) => [n, new ortNode.Tensor(t.dtype, t.data as Float32Array, t.shape)]),
  );
}

function argmaxCorrect(logits: ArrayLike<number>, labels: Uint8Array, k: number): number {
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (logits[i * k + j]! > logits[i * k + best]!) best = j;
    if (best === labels[i]) correct++;
  }
  return correct;
}

export default async function run(): Promise<BenchMeasure[]> {
  const models = seedModels();
  const persistTo = mkdtempSync(path.join(os.tmpdir(), "fedge-onnx-bench-"));
  const measures: BenchMeasure[] = [];
  let edge: LocalEdge | undefined;
  try {
    edge = await startLocalEdge({ port: PORT, persistTo, vars: { FEDGE_ADMIN_TOKEN: ADMIN_TOKEN } });
    for (const m of models) {
      await upload(edge, m.name, 1, m.fp32);
      await upload(edge, m.name, 2, m.int8);
    }
    const { key } = (await (
      await ok(
        await fetch(`${edge.url}/v1/admin/keys`, {
          method: "POST",
          headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
          body: JSON.stringify({ name: "onnx bench", rate_limit_per_minute: 1_000_000 }),
        }),
      )
    ).json()) as { key: string };

    for (const m of models) {
      const graph = inspectServable(m.fp32);
      const signature = graph.inputs.map((t) => ({ ...t, range: graph.inputRanges[t.name] }));
      const fixed = benchInputs(signature);

      // (a) compute per inference: the Worker (v2 tensor path) on the fp32 and the int8 file, and the local
      // runtimes that attribute its time, in alternating rounds.
      const workerPerInference = async (version: number) => {
        const bench = (n: number) => () =>
          fetch(`${edge!.url}/v1/admin/bench/models/${m.name}/infer?n=${n}&version=${version}&path=tensors`, {
            method: "POST",
            headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
          }).then(ok);
        const zeros: { cpu: number; wall: number }[] = [];
        for (let i = 0; i < 3; i++) zeros.push(await cpuTimed(edge!.pid!, bench(0)));
        const fulls: { cpu: number; wall: number }[] = [];
        for (let i = 0; i < 2; i++) fulls.push(await cpuTimed(edge!.pid!, bench(COMPUTE_N)));
        const per = (k: "cpu" | "wall") =>
          Math.max(0, median(fulls.map((x) => x[k])) - median(zeros.map((x) => x[k]))) / COMPUTE_N;
        return { cpu: per("cpu"), wall: per("wall") };
      };
      for (const version of [1, 2]) {
        // Warm-up: V8 tiers the wasm up to TurboFan while the first few hundred inferences run.
        await ok(
          await fetch(`${edge.url}/v1/admin/bench/models/${m.name}/infer?n=300&version=${version}&path=tensors`, {
            method: "POST",
            headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
          }),
        );
      }
      const rt = localRuntimes(() => fixed);
      // The default session goes last in each round: its intra-op threads spin for a while after a run, and
      // process CPU time would charge that to whichever session ran next; the Worker's requests come next instead.
      const locals = [
        { key: "node1", r: rt.node1, bytes: m.fp32 },
        { key: "node1Extended", r: rt.node1Extended, bytes: m.fp32 },
        { key: "wasmInNode", r: rt.wasmInNode, bytes: m.fp32 },
        { key: "node1Int8", r: rt.node1, bytes: m.int8 },
        { key: "nodeDefault", r: rt.nodeDefault, bytes: m.fp32 },
      ] as const;
      const sessions: ((typeof locals)[number] & {
        s: Awaited<ReturnType<LocalRuntime["create"]>>;
        cpu: number[];
        wall: number[];
      })[] = [];
      for (const l of locals) {
        const s = await l.r.create(l.bytes);
        for (let i = 0; i < 300; i++) await s.run();
        sessions.push({ ...l, s, cpu: [] as number[], wall: [] as number[] });
      }
      const worker = { fp32: [] as { cpu: number; wall: number }[], int8: [] as { cpu: number; wall: number }[] };
      for (let r = 0; r < ROUNDS; r++) {
        worker.fp32.push(await workerPerInference(1));
        worker.int8.push(await workerPerInference(2));
        for (const l of sessions) {
          const t = await nodeCpuTimed(async () => {
            for (let i = 0; i < COMPUTE_N; i++) await l.s.run();
          });
          l.cpu.push(t.cpu / COMPUTE_N);
          l.wall.push(t.wall / COMPUTE_N);
        }
      }
      for (const l of sessions) await l.s.release();
      const local = Object.fromEntries(sessions.map((l) => [l.key, l])) as Record<
        (typeof locals)[number]["key"],
        (typeof sessions)[number]
      >;
      const wFp32 = worker.fp32.map((x) => x.cpu);
      const wInt8 = worker.int8.map((x) => x.cpu);
      const ratios = (xs: number[], ys: number[]) => xs.map((x, i) => (x / ys[i]!).toFixed(2)).join(" ");
      const wall = (xs: number[], ys: number[]) =>
        `wall clock ${median(xs).toFixed(4)} ms vs ${median(ys).toFixed(4)} ms (${(median(xs) / median(ys)).toFixed(2)}x)`;
      const shapes = [...fixed].map(([n, t]) => `${n} ${JSON.stringify(t.shape)}`).join(", ");
      const method =
        `(CPU(n=${COMPUTE_N}) − CPU(n=0)) / n of workerd's threads against the Node process's CPU time; ` +
        `${ROUNDS} rounds alternating, medians`;
      const vsWorker = (
        name: string,
        description: string,
        values: number[],
        base: (typeof sessions)[number],
        extra: string,
        goal?: number,
      ) =>
        measure({
          name: `${m.name}-${name}`,
          description,
          value: median(values),
          unit: "ms",
          baseline_name: `${base.r.description}, ${base.bytes === m.int8 ? "int8" : "fp32"} file, same input (process CPU time)`,
          baseline: median(base.cpu),
          better: "lower",
          ...(goal === undefined ? {} : { goalRatio: goal }),
          notes: `${method}; per-round ratios ${ratios(values, base.cpu)}; ${extra}`,
        });
      const workerFp32 = `CPU time per inference of the fp32 ${m.name} (${shapes}): onnxruntime-web (wasm, 1 thread) inside the Worker, /v2 tensor path`;
      measures.push(
        vsWorker(
          "compute-per-inference-fp32",
          workerFp32,
          wFp32,
          local.nodeDefault,
          `${wall(
            worker.fp32.map((x) => x.wall),
            local.nodeDefault.wall,
          )}; the default session's CPU time includes ` +
            `its intra-op pool (${os.availableParallelism()} threads here) spinning between ops`,
          1.5,
        ),
        vsWorker(
          "compute-vs-node-1-thread",
          `${workerFp32} — attribution: against native with one intra-op thread`,
          wFp32,
          local.node1,
          wall(
            worker.fp32.map((x) => x.wall),
            local.node1.wall,
          ),
        ),
        vsWorker(
          "compute-vs-node-1-thread-extended",
          `${workerFp32} — attribution: against native with one thread and no layout optimizations (no NCHWc)`,
          wFp32,
          local.node1Extended,
          `native all vs extended: ${(median(local.node1.cpu) / median(local.node1Extended.cpu)).toFixed(2)}x`,
        ),
        vsWorker(
          "compute-workerd-vs-wasm-in-node",
          `${workerFp32} — attribution: against the same wasm build and options run by Node's V8 (what workerd adds)`,
          wFp32,
          local.wasmInNode,
          `wasm in Node vs native 1 thread: ${(median(local.wasmInNode.cpu) / median(local.node1.cpu)).toFixed(2)}x ` +
            `(what wasm costs)`,
        ),
        vsWorker(
          "compute-per-inference-int8",
          `CPU time per inference of the int8 (QDQ) ${m.name} inside the Worker (the file /v2 infer serves), like with like`,
          wInt8,
          local.node1Int8,
          `Worker int8 vs Worker fp32: ${(median(wInt8) / median(wFp32)).toFixed(2)}x (the edge folds each ` +
            `DequantizeLinear of a constant weight at session creation, so the int8 file runs float32 kernels)`,
        ),
      );

      if (COMPUTE_ONLY) continue;

      // (b) v2 binary infer p50 (int8 model, batch 1) against the no-op route, interleaved.
      const one = new Map([...m.batches[0]!.feeds].map(([n, t]) => [n, sliceFirst(t)]));
      const send = infer(edge, key, `/v2/models/${m.name}/versions/2/infer`, one);
      const health = () => fetch(`${edge!.url}/v1/health`);
      const lat: { health: number[]; infer: number[] } = { health: [], infer: [] };
      for (let i = 0; i < REQUESTS + 20; i++) {
        // Alternate which goes first, so neither always follows the other's work.
        const first = i % 2 === 0;
        const v0 = first ? 0 : await timed(async () => (await ok(await send())).arrayBuffer());
        const h = await timed(async () => (await ok(await health())).arrayBuffer());
        const v = first ? await timed(async () => (await ok(await send())).arrayBuffer()) : v0;
        if (i >= 20) {
          lat.health.push(h);
          lat.infer.push(v);
        }
      }
      measures.push(
        measure({
          name: `${m.name}-v2-binary-infer-p50`,
          description: `POST /v2/models/${m.name}/infer (int8, binary tensor data in and out, batch 1) p50 through wrangler dev on loopback`,
          value: median(lat.infer),
          unit: "ms",
          baseline_name: "GET /v1/health p50 (no-op route, same worker)",
          baseline: median(lat.health),
          better: "lower",
          goalRatio: 1.5,
          notes: `${REQUESTS} sequential requests interleaved with the no-op; p99 ${pct(lat.infer, 0.99).toFixed(2)} ms, no-op p99 ${pct(lat.health, 0.99).toFixed(2)} ms`,
        }),
      );

      // (c) size and accuracy.
      const fp32Size = statSync(path.join(repoRoot, m.dir, "fp32.onnx")).size;
      const int8Size = statSync(path.join(repoRoot, m.dir, "int8.onnx")).size;
      measures.push(
        measure({
          name: `${m.name}-size-int8-vs-fp32`,
          description: `Size of ${m.dir}/int8.onnx (fedge quantize, weight-only per-channel symmetric)`,
          value: int8Size,
          unit: "bytes",
          baseline_name: `${m.dir}/fp32.onnx`,
          baseline: fp32Size,
          better: "lower",
          goalRatio: 0.3,
        }),
      );
      const ref = await ortNode.InferenceSession.create(m.fp32, NODE_1_THREAD);
      let fp32Correct = 0;
      let int8Correct = 0;
      let total = 0;
      for (const b of m.batches) {
        const out = await ref.run(ortFeeds(b.feeds));
        fp32Correct += argmaxCorrect(out[ref.outputNames[0]!]!.data as Float32Array, b.labels, m.classes);
        const res = await ok(await infer(edge, key, `/v2/models/${m.name}/versions/2/infer`, b.feeds)());
        const { json, tail } = splitInferBody(
          new Uint8Array(await res.arrayBuffer()),
          Number(res.headers.get(INFERENCE_HEADER_LENGTH)),
        );
        const logits = Object.values(decodeV2Outputs(json, tail))[0]!.data as Float32Array;
        int8Correct += argmaxCorrect(logits, b.labels, m.classes);
        total += b.labels.length;
      }
      await ref.release();
      const fp32Acc = (100 * fp32Correct) / total;
      const int8Acc = (100 * int8Correct) / total;
      measures.push({
        ...measure({
          name: `${m.name}-accuracy-int8-vs-fp32`,
          description: `Held-out accuracy (${total} examples) of the int8 ${m.name} served by the Worker (v2 binary)`,
          value: int8Acc,
          unit: "%",
          baseline_name: "fp32 model on onnxruntime-node",
          baseline: fp32Acc,
          better: "higher",
        }),
        goal: "drop ≤ 0.5 points",
        goal_met: fp32Acc - int8Acc <= 0.5,
        notes: `drop ${(fp32Acc - int8Acc).toFixed(2)} points`,
      });
    }
    measures.push(...(await perOpMeasures(models[0]!.fp32)));
  } finally {
    await edge?.stop();
    rmSync(persistTo, { recursive: true, force: true });
  }
  return measures;
}

/** The first example of a batch tensor (shape [1, ...]). */
function sliceFirst(t: Tensor): Tensor {
  const per = t.shape.slice(1).reduce((a, b) => a * b, 1);
  return { ...t, shape: [1, ...t.shape.slice(1)], data: t.data.slice(0, per) } as Tensor;
}

/**
 * (d) Per-op time, wasm against native, in this process (no HTTP, no workerd): a MatMul of the text transformer's
 * q/k/v shape, and the CNN's convolution stage (Conv 16×5×5 + Relu + MaxPool, the CNN cut after its pool).
 */
async function perOpMeasures(cnnFp32: Uint8Array): Promise<BenchMeasure[]> {
  const feedsFor = (bytes: Uint8Array) => {
    const g = inspectServable(bytes);
    return benchInputs(g.inputs.map((t) => ({ ...t, range: g.inputRanges[t.name] })));
  };
  const rt = localRuntimes(feedsFor);
  const timeAll = async (bytes: Uint8Array, runtimes: LocalRuntime[]) => {
    const sessions = [];
    for (const r of runtimes) {
      const s = await r.create(bytes);
      for (let i = 0; i < 300; i++) await s.run();
      sessions.push({ r, s, cpu: [] as number[] });
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const x of sessions) x.cpu.push((await cpuMicrosPerRun(x.s.run, COMPUTE_N)) / 1000);
    }
    for (const x of sessions) await x.s.release();
    return sessions.map((x) => median(x.cpu));
  };
  const [K0, K1, ROWS, D] = [1, 9, 16, 96];
  const [web0, node0] = await timeAll(matmulChainOnnx(K0, ROWS, D), [rt.wasmInNode, rt.node1]);
  const [web1, node1] = await timeAll(matmulChainOnnx(K1, ROWS, D), [rt.wasmInNode, rt.node1]);
  const webMatMul = (web1! - web0!) / (K1 - K0);
  const nodeMatMul = (node1! - node0!) / (K1 - K0);
  const flops = 2 * ROWS * D * D;
  const stage = cutAfter(cnnFp32, "pool", [1, 16, 7, 7]);
  const [webConv, nodeConv, nodeConvExt] = await timeAll(stage, [rt.wasmInNode, rt.node1, rt.node1Extended]);
  return [
    measure({
      name: `matmul-${ROWS}x${D}x${D}-wasm-vs-native`,
      description: `CPU time of one MatMul [1,${ROWS},${D}]×[${D},${D}] (the transformer's q/k/v): ${rt.wasmInNode.description}`,
      value: webMatMul,
      unit: "ms",
      baseline_name: rt.node1.description,
      baseline: nodeMatMul,
      better: "lower",
      notes:
        `(chain of ${K1} − chain of ${K0}) / ${K1 - K0}, ${ROUNDS} rounds, medians; ` +
        `${(flops / webMatMul / 1e6).toFixed(1)} vs ${(flops / nodeMatMul / 1e6).toFixed(1)} GFLOP/s; ` +
        `per run with one MatMul: ${web0!.toFixed(4)} vs ${node0!.toFixed(4)} ms`,
    }),
    measure({
      name: "mnist-cnn-conv-stage-wasm-vs-native",
      description: `CPU time per run of the CNN's convolution stage (Conv 16×5×5 pad 2 + Relu + MaxPool 4, [1,1,28,28]): ${rt.wasmInNode.description}`,
      value: webConv!,
      unit: "ms",
      baseline_name: rt.node1.description,
      baseline: nodeConv!,
      better: "lower",
      notes:
        `the CNN cut after its MaxPool, ${ROUNDS} rounds, medians; native without NCHWc (optimizations extended) ` +
        `${nodeConvExt!.toFixed(4)} ms: wasm/native-extended ${(webConv! / nodeConvExt!).toFixed(2)}x`,
    }),
  ];
}
