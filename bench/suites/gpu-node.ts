/**
 * @module
 * gpu-node benchmark (issue 8): GB/s of update bytes through clip + weighted accumulate + noise for K updates of N
 * float32 (default K = 64, N = 2^20, i.e. 256 MiB), per backend, against `TypedArray.set` memcpy of the same bytes
 * (into a distinct destination, so both sides touch main memory) measured in the same run.
 *
 * Measures: cpu end-to-end; webgpu end-to-end (upload + kernels + noise upload + readback); webgpu kernel-only (norm
 * and accumulate kernels over a resident batch, K/batch dispatch pairs, plus the noise-add kernel is not included).
 * The noise is σ = 1 from crypto.getRandomValues (Box–Muller in @fedge/schemas), drawn once per round, included in
 * both end-to-end numbers; a separate measure reports the cpu path without noise.
 *
 * Env overrides (for a real GPU via the device tool): FEDGE_BENCH_K, FEDGE_BENCH_N, FEDGE_BENCH_REPS,
 * FEDGE_BENCH_BATCH (webgpu updates per dispatch). The adapter description is printed to stderr and kept in the notes.
 */
import { createCpuBackend } from "@fedge/gpu-node";
import { openWebGpuBackend, type WebGpuAccumulator } from "@fedge/gpu-node/webgpu";
import { measure, type BenchMeasure } from "../types.ts";

function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
  return n;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** Deterministic, cheap update contents (no randomness needed for throughput): |u| ≈ 0.5, some updates clipped. */
function makeUpdates(k: number, n: number): Float32Array[] {
  return Array.from({ length: k }, (_, j) => {
    const u = new Float32Array(n);
    let x = (j + 1) * 2654435761;
    for (let i = 0; i < n; i++) {
      x = (Math.imul(x, 1664525) + 1013904223) | 0;
      u[i] = (x / 4294967296) * (j % 4 === 0 ? 0.01 : 0.001);
    }
    return u;
  });
}

export default async function run(): Promise<BenchMeasure[]> {
  const K = envInt("FEDGE_BENCH_K", 64);
  const N = envInt("FEDGE_BENCH_N", 1 << 20);
  const reps = envInt("FEDGE_BENCH_REPS", 5);
  const batch = envInt("FEDGE_BENCH_BATCH", 16);
  const bytes = K * N * 4;
  const gb = (ms: number): number => bytes / ms / 1e6;
  const updates = makeUpdates(K, N);
  const clipNorm = 0.5; // norms are ≈ 0.0058·√N·scale: the 0.01-scale updates get clipped at N = 2^20
  const dst = new Float32Array(K * N);

  const memcpy = (): number => {
    const t = performance.now();
    for (let k = 0; k < K; k++) dst.set(updates[k]!, k * N);
    return performance.now() - t;
  };

  const cpu = createCpuBackend();
  const cpuRound = async (noiseStd: number): Promise<number> => {
    const t = performance.now();
    const acc = await cpu.createAccumulator({ length: N, clipNorm });
    await acc.add(updates);
    await acc.finish({ noiseStd, denominator: K });
    return performance.now() - t;
  };

  const gpu = await openWebGpuBackend({ batchSize: batch });
  const adapter = gpu ? gpu.description : "no WebGPU adapter";
  console.error(`[gpu-node bench] K=${K} N=${N} reps=${reps} batch=${batch}; ${adapter}`);
  const gpuRound = async (): Promise<number> => {
    const t = performance.now();
    const acc = await gpu!.createAccumulator({ length: N, clipNorm });
    await acc.add(updates);
    await acc.finish({ noiseStd: 1, denominator: K });
    return performance.now() - t;
  };
  const kernels: { acc: WebGpuAccumulator | null } = { acc: null };
  const gpuKernels = async (): Promise<number> => {
    const acc = (kernels.acc ??= await gpu!.createAccumulator({ length: N, clipNorm }));
    const rows = Math.min(batch, K);
    acc.uploadBatch(updates.slice(0, rows));
    await acc.sync();
    const factors = new Array<number>(rows).fill(0.5);
    const t = performance.now();
    for (let done = 0; done < K; done += rows) {
      await acc.batchNorms(rows);
      acc.runAccumulate(factors);
    }
    await acc.sync();
    return performance.now() - t;
  };

  const t = {
    memcpy: [] as number[],
    cpu: [] as number[],
    cpuNoNoise: [] as number[],
    gpu: [] as number[],
    kernels: [] as number[],
  };
  // warm-up, then interleave so every measure sees the same machine state
  memcpy();
  await cpuRound(1);
  if (gpu) {
    await gpuRound();
    await gpuKernels();
  }
  for (let r = 0; r < reps; r++) {
    t.memcpy.push(memcpy());
    t.cpu.push(await cpuRound(1));
    t.cpuNoNoise.push(await cpuRound(0));
    if (gpu) {
      t.gpu.push(await gpuRound());
      t.kernels.push(await gpuKernels());
    }
  }
  const base = gb(median(t.memcpy));
  const note = `median of ${reps} reps; K=${K}, N=${N} (${(bytes / 2 ** 20).toFixed(0)} MiB of updates); ${adapter}`;
  const out: BenchMeasure[] = [
    measure({
      name: "cpu-clip-accumulate-noise",
      description:
        "cpu backend (WebAssembly SIMD): clip + weighted accumulate of K updates + Gaussian noise (σ=1, crypto) + divide",
      value: gb(median(t.cpu)),
      unit: "GB/s",
      baseline_name: "TypedArray.set memcpy of the same bytes",
      baseline: base,
      better: "higher",
      goalRatio: 0.5,
      notes: note,
    }),
    measure({
      name: "cpu-clip-accumulate",
      description: "cpu backend: clip + weighted accumulate + divide, no noise (isolates the per-update path)",
      value: gb(median(t.cpuNoNoise)),
      unit: "GB/s",
      baseline_name: "TypedArray.set memcpy of the same bytes",
      baseline: base,
      better: "higher",
      notes: note,
    }),
  ];
  if (gpu) {
    const cpuGb = gb(median(t.cpu));
    out.push(
      measure({
        name: "webgpu-end-to-end",
        description:
          "webgpu backend: upload + norm/accumulate kernels + norm readback + noise upload + noise kernel + result readback",
        value: gb(median(t.gpu)),
        unit: "GB/s",
        baseline_name: "cpu backend, same round, same run",
        baseline: cpuGb,
        better: "higher",
        goalRatio: 1,
        notes: note,
      }),
      measure({
        name: "webgpu-end-to-end-vs-memcpy",
        description: "webgpu backend end-to-end, against memcpy",
        value: gb(median(t.gpu)),
        unit: "GB/s",
        baseline_name: "TypedArray.set memcpy of the same bytes",
        baseline: base,
        better: "higher",
        notes: note,
      }),
      measure({
        name: "webgpu-kernels",
        description: `webgpu kernels only: norm-partials kernel + partials readback + accumulate kernel over a resident batch of ${Math.min(batch, K)}, repeated to cover K updates`,
        value: gb(median(t.kernels)),
        unit: "GB/s",
        baseline_name: "TypedArray.set memcpy of the same bytes",
        baseline: base,
        better: "higher",
        notes: note,
      }),
    );
    kernels.acc?.dispose();
    await gpu.dispose();
  }
  return out;
}
