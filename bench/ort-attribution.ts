/**
 * @module
 * Where the Worker's compute time per inference goes (issue 22, bench/suites/onnx-serving.ts): the runtimes the
 * Worker is compared with, all in this Node process, and the single-op models that give per-op times.
 *
 * - onnxruntime-node as a user gets it (`InferenceSession.create(bytes)`, default options: intra-op threads = cores,
 *   graph optimizations `all`), and with 1 intra-op thread at `all` and at `extended` (no layout transforms, so no
 *   NCHWc convolution, which MLAS only has for x86/Arm native code).
 * - onnxruntime-web's wasm build run by Node's V8: the same `ort-wasm-simd-threaded.wasm` (SIMD128, no relaxed SIMD,
 *   1 thread) and session options as the Worker. Worker vs this isolates what workerd adds; this vs native isolates
 *   what wasm costs.
 */
import * as ortNode from "onnxruntime-node";
import * as ortWeb from "onnxruntime-web/wasm";
import { decodeOnnx, encodeOnnx, float32Tensor, floatValueInfo, node, type ModelProto } from "@fedge/ml";
import type { Tensor } from "@fedge/protocol";
import { nodeCpuTimed } from "./cpu-time.ts";

ortWeb.env.wasm.numThreads = 1;
ortWeb.env.wasm.proxy = false;
ortWeb.env.logLevel = "error";

/** The edge's session options (workers/src/inference/ort.ts `SESSION_OPTIONS`, less the execution provider). */
export const EDGE_OPTIONS = {
  graphOptimizationLevel: "all",
  extra: { session: { disable_quant_qdq: "1" } },
} as const;

/** onnxruntime-node with one intra-op thread and the edge's options (the attribution baseline). */
export const NODE_1_THREAD = { intraOpNumThreads: 1, interOpNumThreads: 1, ...EDGE_OPTIONS } as const;

export interface LocalRuntime {
  label: string;
  /** What it is, in words, for measure descriptions. */
  description: string;
  create(bytes: Uint8Array): Promise<{ run(): Promise<unknown>; release(): Promise<void> }>;
}

function ortFeeds(ort: typeof ortNode | typeof ortWeb, feeds: ReadonlyMap<string, Tensor>) {
  return Object.fromEntries(
    [...feeds].map(([n, t]) => [n, new ort.Tensor(t.dtype, t.data as Float32Array, t.shape)]),
  ) as Record<string, ortNode.Tensor>;
}

function runtime(
  label: string,
  description: string,
  ort: typeof ortNode | typeof ortWeb,
  options: object,
  feedsFor: (bytes: Uint8Array) => ReadonlyMap<string, Tensor>,
): LocalRuntime {
  return {
    label,
    description,
    async create(bytes) {
      const session = await (ort as typeof ortNode).InferenceSession.create(bytes, options);
      const feeds = ortFeeds(ort, feedsFor(bytes));
      return { run: () => session.run(feeds), release: () => session.release() };
    },
  };
}

/** The local runtimes the Worker is compared with, fed `feedsFor(bytes)` (fixed inputs, created once). */
export function localRuntimes(feedsFor: (bytes: Uint8Array) => ReadonlyMap<string, Tensor>) {
  return {
    nodeDefault: runtime(
      "node-default",
      "onnxruntime-node 1.30 native, default options (as a user gets it: intra-op threads = cores, optimizations all)",
      ortNode,
      {},
      feedsFor,
    ),
    node1: runtime(
      "node-1-thread",
      "onnxruntime-node 1.30 native, 1 intra-op thread, the edge's options",
      ortNode,
      NODE_1_THREAD,
      feedsFor,
    ),
    node1Extended: runtime(
      "node-1-thread-extended",
      "onnxruntime-node 1.30 native, 1 intra-op thread, optimizations extended (no NCHWc layout)",
      ortNode,
      { ...NODE_1_THREAD, graphOptimizationLevel: "extended" },
      feedsFor,
    ),
    wasmInNode: runtime(
      "wasm-in-node",
      "onnxruntime-web 1.30 wasm (ort-wasm-simd-threaded.wasm, SIMD128, 1 thread) on Node's V8, the edge's options",
      ortWeb,
      { executionProviders: ["wasm"], ...EDGE_OPTIONS },
      feedsFor,
    ),
  };
}

/** CPU µs per run of `run`, `n` runs (process CPU time). */
export async function cpuMicrosPerRun(run: () => Promise<unknown>, n: number): Promise<number> {
  const { cpu } = await nodeCpuTimed(async () => {
    for (let i = 0; i < n; i++) await run();
  });
  return (cpu * 1000) / n;
}

/**
 * `k` MatMuls `[1, rows, d] × [d, d]` chained on one weight (the text transformer's q/k/v shape for rows = 16,
 * d = 96): the per-MatMul time is the difference of two chain lengths over the difference of k, free of the fixed
 * per-run costs. Weights are a scaled orthogonal-ish pattern so values stay bounded along the chain.
 */
export function matmulChainOnnx(k: number, rows: number, d: number): Uint8Array {
  const w = new Float32Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) w[i * d + j] = Math.cos((i + 1) * (j + 1)) / Math.sqrt(d);
  const nodes = Array.from({ length: k }, (_, i) => node("MatMul", [i === 0 ? "x" : `y${i}`, "w"], [`y${i + 1}`]));
  const model: ModelProto = {
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    producerName: "fedge-bench",
    graph: {
      name: "matmul-chain",
      node: nodes,
      initializer: [float32Tensor("w", [d, d], w)],
      input: [floatValueInfo("x", [1, rows, d])],
      output: [floatValueInfo(`y${k}`, [1, rows, d])],
    },
  };
  return encodeOnnx(model);
}

/** The model cut after the node that produces `output` (its value info: float32 of `dims`). */
export function cutAfter(bytes: Uint8Array, output: string, dims: readonly number[]): Uint8Array {
  const m = decodeOnnx(bytes);
  const g = m.graph!;
  const last = g.node!.findIndex((n) => n.output?.includes(output));
  if (last < 0) throw new RangeError(`no node produces ${output}`);
  const nodes = g.node!.slice(0, last + 1);
  const used = new Set(nodes.flatMap((n) => n.input ?? []));
  return encodeOnnx({
    ...m,
    graph: {
      ...g,
      node: nodes,
      input: g.input!.filter((i) => used.has(i.name!)),
      initializer: (g.initializer ?? []).filter((i) => used.has(i.name!)),
      output: [floatValueInfo(output, dims)],
    },
  });
}
