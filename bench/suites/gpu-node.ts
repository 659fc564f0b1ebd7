/**
 * @module
 * gpu-node benchmark (issue 8): GB/s of update bytes through clip + weighted accumulate + noise for K updates of N
 * float32 (default K = 64, N = 2^20, i.e. 256 MiB), per backend, against `TypedArray.set` memcpy of the same bytes
 * (into a distinct destination, so both sides touch main memory) measured in the same run, interleaved rep by rep.
 *
 * Measures (every one is a whole round: createAccumulator + add(K updates) + finish):
 * - `cpu-clip-accumulate-noise` (goal ≥ 0.8× memcpy): the cpu backend with its default threads, updates already in
 *   its shared memory (`allocateUpdate`, the zero-copy path a server uses when it decodes updates straight into them),
 *   noise σ = 1 from crypto.getRandomValues given only to `finish` (every thread draws the noise for its blocks after
 *   the sum): the round of a caller that passes no hint at open.
 * - `cpu-clip-accumulate-noise-sigma-at-open`: the same round opened with σ (`noiseStd`), as the aggregator opens a DP
 *   round: the workers draw the noise while the updates are added.
 * - `cpu-clip-accumulate-noise-copy`: the goal's round with plain Float32Array updates (copied into the backend's
 *   memory).
 * - `cpu-clip-accumulate`: zero-copy, no noise (isolates the per-update path).
 * - `cpu-1-thread-clip-accumulate-noise`: zero-copy, `threads: 1` (what the worker threads add).
 * - `webgpu-end-to-end`: upload + norm/accumulate kernels + norm readbacks + noise upload + noise kernel + result
 *   readback, against the cpu path and against memcpy. No goal: on a software adapter (lavapipe) the kernels share the
 *   CPU cores with the cpu path, which is why `createBackend`'s `auto` picks the cpu backend there.
 * - `webgpu-kernels`: kernels only, over a resident batch (norm kernel + partials readback + accumulate kernel, K/batch
 *   times), GB/s against memcpy, and against a device-to-device buffer copy of the same bytes measured on the same
 *   adapter in the same run (`webgpu-kernels-vs-device-copy`: the memory bandwidth the kernels can reach, HBM on a data
 *   centre GPU). Goal ≥ 0.6× that copy on a hardware adapter only (none on a software one, whose "device memory" is
 *   host memory). On a real GPU use a larger FEDGE_BENCH_N (e.g. 2^24) so each dispatch outweighs its readback.
 *
 * Env overrides (for a real GPU via the device tool): FEDGE_BENCH_K, FEDGE_BENCH_N, FEDGE_BENCH_REPS,
 * FEDGE_BENCH_BATCH (webgpu updates per dispatch). The adapter description is printed to stderr and kept in the notes.
 */
import { createCpuBackend, type CpuBackend } from "@fedge/gpu-node";
import {
  openWebGpuBackend,
  requestAdapter,
  softwareAdapterReason,
  type WebGpuAccumulator,
} from "@fedge/gpu-node/webgpu";
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
  const reps = envInt("FEDGE_BENCH_REPS", 7);
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
  const cpu1 = createCpuBackend({ threads: 1 });
  const stage = (b: CpuBackend): Float32Array[] =>
    updates.map((u) => {
      const s = b.allocateUpdate(N);
      s.set(u);
      return s;
    });
  const staged = stage(cpu);
  const staged1 = stage(cpu1);
  const cpuRound = async (
    b: CpuBackend,
    rows: Float32Array[],
    noiseStd: number,
    sigmaAtOpen = false,
  ): Promise<number> => {
    const t = performance.now();
    const acc = await b.createAccumulator({ length: N, clipNorm, ...(sigmaAtOpen ? { noiseStd } : {}) });
    await acc.add(rows);
    await acc.finish({ noiseStd, denominator: K });
    return performance.now() - t;
  };

  const gpu = await openWebGpuBackend({ batchSize: batch });
  const adapter = gpu ? gpu.description : "no WebGPU adapter";
  const software = gpu ? softwareAdapterReason(gpu.adapterInfo) : null;
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

  // The device's own copy bandwidth, on a second device of the same adapter: copyBufferToBuffer of the bytes one
  // kernels rep reads (K rows of N float32), in copies of at most 256 MiB.
  const copyDevice = gpu ? await (await requestAdapter())?.requestDevice() : undefined;
  const copyBytes = Math.min(bytes, 256 * 2 ** 20);
  const copies = Math.ceil(bytes / copyBytes);
  const copyBufs = copyDevice
    ? [0, 1].map(() => copyDevice.createBuffer({ size: copyBytes, usage: 0x4 | 0x8 })) // COPY_SRC | COPY_DST
    : [];
  const deviceCopy = async (): Promise<number> => {
    const t = performance.now();
    const enc = copyDevice!.createCommandEncoder();
    for (let c = 0; c < copies; c++) enc.copyBufferToBuffer(copyBufs[c % 2]!, 0, copyBufs[1 - (c % 2)]!, 0, copyBytes);
    copyDevice!.queue.submit([enc.finish()]);
    await copyDevice!.queue.onSubmittedWorkDone();
    return performance.now() - t;
  };

  const t = {
    memcpy: [] as number[],
    cpu: [] as number[],
    cpuSigmaAtOpen: [] as number[],
    cpuCopy: [] as number[],
    cpuNoNoise: [] as number[],
    cpu1: [] as number[],
    gpu: [] as number[],
    kernels: [] as number[],
    deviceCopy: [] as number[],
  };
  // warm-up (starts the worker threads, compiles the kernels), then interleave so every measure sees the same machine
  memcpy();
  await cpuRound(cpu, staged, 1);
  await cpuRound(cpu, staged, 1, true);
  await cpuRound(cpu, updates, 1);
  await cpuRound(cpu1, staged1, 1);
  if (gpu) {
    await gpuRound();
    await gpuKernels();
    if (copyDevice) await deviceCopy();
  }
  for (let r = 0; r < reps; r++) {
    t.memcpy.push(memcpy());
    t.cpu.push(await cpuRound(cpu, staged, 1));
    t.cpuSigmaAtOpen.push(await cpuRound(cpu, staged, 1, true));
    t.cpuCopy.push(await cpuRound(cpu, updates, 1));
    t.cpuNoNoise.push(await cpuRound(cpu, staged, 0));
    t.cpu1.push(await cpuRound(cpu1, staged1, 1));
    if (gpu) {
      t.gpu.push(await gpuRound());
      t.kernels.push(await gpuKernels());
      if (copyDevice) t.deviceCopy.push(await deviceCopy());
    }
  }
  await cpu.dispose();
  await cpu1.dispose();
  const base = gb(median(t.memcpy));
  const note0 = `median of ${reps} reps; K=${K}, N=${N} (${(bytes / 2 ** 20).toFixed(0)} MiB of updates); ${adapter}`;
  const ms = (xs: number[]): string => `${median(xs).toFixed(1)} ms (min ${Math.min(...xs).toFixed(1)})`;
  const memcpyNote = `memcpy ${ms(t.memcpy)}`;
  const noteOf = (xs: number[]): string => `${note0}; this ${ms(xs)}, ${memcpyNote}`;
  const vsMemcpy = (name: string, description: string, xs: number[], goalRatio?: number): BenchMeasure =>
    measure({
      name,
      description,
      value: gb(median(xs)),
      unit: "GB/s",
      baseline_name: "TypedArray.set memcpy of the same bytes",
      baseline: base,
      better: "higher",
      ...(goalRatio !== undefined ? { goalRatio } : {}),
      notes: noteOf(xs),
    });
  const out: BenchMeasure[] = [
    vsMemcpy(
      "cpu-clip-accumulate-noise",
      `cpu backend (WebAssembly SIMD, ${cpu.threads} threads), updates in its shared memory (allocateUpdate, zero copy): clip + weighted accumulate of K updates + Gaussian noise (σ=1, crypto, drawn by every thread for its range) + divide`,
      t.cpu,
      0.8,
    ),
    vsMemcpy(
      "cpu-clip-accumulate-noise-sigma-at-open",
      "the same round opened with σ (`noiseStd`, as the aggregator opens a DP round): the workers draw the noise while the updates are added",
      t.cpuSigmaAtOpen,
    ),
    vsMemcpy(
      "cpu-clip-accumulate-noise-copy",
      `the goal's round with plain Float32Array updates (the main thread copies each group into the backend's memory while the workers compute)`,
      t.cpuCopy,
    ),
    vsMemcpy(
      "cpu-clip-accumulate",
      "cpu backend, zero copy: clip + weighted accumulate + divide, no noise (isolates the per-update path)",
      t.cpuNoNoise,
    ),
    vsMemcpy(
      "cpu-1-thread-clip-accumulate-noise",
      "cpu backend with threads: 1, zero copy, with noise (what the worker threads add on this machine)",
      t.cpu1,
    ),
  ];
  if (gpu) {
    const cpuGb = gb(median(t.cpu)); // the cpu path with the goal (zero copy, default threads)
    out.push(
      measure({
        name: "webgpu-end-to-end",
        description:
          "webgpu backend: upload + norm/accumulate kernels + norm readback + noise upload + noise kernel + result readback",
        value: gb(median(t.gpu)),
        unit: "GB/s",
        baseline_name: "cpu backend (cpu-clip-accumulate-noise: zero copy, default threads), same round, same run",
        baseline: cpuGb,
        better: "higher",
        notes: `${noteOf(t.gpu)}; cpu ${ms(t.cpu)}${software ? `; a software adapter (${software}) runs the kernels on the same CPU cores, after two copies of every update (writeBuffer), so createBackend's auto uses the cpu backend there` : ""}`,
      }),
      measure({
        name: "webgpu-end-to-end-vs-memcpy",
        description: "webgpu backend end-to-end, against memcpy",
        value: gb(median(t.gpu)),
        unit: "GB/s",
        baseline_name: "TypedArray.set memcpy of the same bytes",
        baseline: base,
        better: "higher",
        notes: noteOf(t.gpu),
      }),
      measure({
        name: "webgpu-kernels",
        description: `webgpu kernels only: norm-partials kernel + partials readback + accumulate kernel over a resident batch of ${Math.min(batch, K)}, repeated to cover K updates`,
        value: gb(median(t.kernels)),
        unit: "GB/s",
        baseline_name: "TypedArray.set memcpy of the same bytes",
        baseline: base,
        better: "higher",
        notes: noteOf(t.kernels),
      }),
    );
    if (copyDevice) {
      out.push(
        measure({
          name: "webgpu-kernels-vs-device-copy",
          description: `webgpu kernels only (as webgpu-kernels), against the adapter's own memory bandwidth${software ? "" : " (HBM on a data centre GPU)"}`,
          value: gb(median(t.kernels)),
          unit: "GB/s",
          baseline_name: `device-to-device copyBufferToBuffer of the same bytes on the same adapter (${copies} × ${(copyBytes / 2 ** 20).toFixed(0)} MiB), same run`,
          baseline: gb(median(t.deviceCopy)),
          better: "higher",
          // a goal for a real GPU only: a software adapter's "device memory" is host memory shared with the CPU work
          ...(software ? {} : { goalRatio: 0.6 }),
          notes: `${noteOf(t.kernels)}; device copy ${ms(t.deviceCopy)}${software ? `; software adapter (${software}): no goal` : ""}`,
        }),
      );
      for (const b of copyBufs) b.destroy();
      copyDevice.destroy();
    }
    kernels.acc?.dispose();
    await gpu.dispose();
  }
  return out;
}
