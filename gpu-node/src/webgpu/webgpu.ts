/**
 * @module
 * The `webgpu` backend: WGSL kernels (`kernels.ts`) through Dawn (`device.ts`), with the same results as the cpu
 * reference (see `backend.ts` for the canonical arithmetic and the stated tolerances).
 *
 * Streaming: every per-parameter buffer is split into chunks of at most `chunkLength` elements, each in its own
 * buffer no larger than `maxStorageBufferBindingSize`, so a model of any size that fits in device memory works.
 * A batch of K updates is uploaded once per chunk as K rows; the norm kernel writes 4,096 partials per row and chunk,
 * the host reads them back, checks them and computes the clip factors in float64, and the accumulate
 * kernel then adds all K rows of every chunk in one dispatch per chunk. Batches alternate between two batch buffers:
 * batch i + 1 is uploaded and its norm kernel queued before the host waits for the norms of batch i, so uploads, host
 * work and device work overlap (the accumulate of batch i is queued as soon as its factors are known).
 *
 * Noise: drawn on the host from the injected CSPRNG (crypto.getRandomValues by default) with `fillGaussian` of
 * @fedge/schemas and uploaded chunk by chunk; the device only adds it. Chosen over a counter-based ChaCha20 in WGSL
 * because (1) it is the same audited sampler, bytes and float32 values as the cpu backend, so the two backends give
 * identical noisy results from the same byte source and there is one sampler to review, not two; (2) WGSL has no
 * float64 or precise log/cos, so an on-device Box–Muller would be a different, less accurate distribution; (3) the cost
 * is one upload of 4 bytes per parameter per round, small next to the K·4 bytes per parameter of updates.
 */
import { FedgeError } from "@fedge/schemas";
import {
  checkAccumulatorOptions,
  checkBatch,
  checkDelta,
  checkFinishOptions,
  checkOptimizerOptions,
  checkQuantizeInput,
  checkState,
  disposed,
  nonFinite,
  type Accumulator,
  type AccumulatorOptions,
  type AccumulatorStats,
  type Backend,
  type FinishOptions,
  type OptimizerKind,
  type OptimizerOptions,
  type OptimizerParams,
  type OptimizerState,
  type QuantizedInt8,
  type ServerOptimizer,
} from "../backend.ts";
import { GaussianStream, clipFactor, isUnclipped, normOk, quantScale, reciprocal } from "../math.ts";
import { MAP_READ, Usage, describeAdapter, openDevice, type GpuContext } from "./device.ts";
import {
  ABSMAX,
  ACCUMULATE,
  FINISH,
  NORM_PARTIALS,
  NORM_PARTIALS_PER_SEGMENT,
  NORM_WORKGROUP,
  NORM_WORKGROUPS,
  OPTIMIZER,
  QUANTIZE,
  WORKGROUP,
} from "./kernels.ts";

/** Options of {@link openWebGpuBackend}. */
export interface WebGpuBackendOptions {
  /**
   * Updates per dispatch (K rows uploaded and accumulated together).
   * @default 16
   */
  batchSize?: number;
  /**
   * Largest number of elements per chunk (per buffer binding); smaller values force streaming (tests use this).
   * Always capped so that one chunk of a batch fits `maxStorageBufferBindingSize` and one dispatch.
   * @default the largest that fits
   */
  chunkLength?: number;
}

const MAX_DISPATCH_ELEMENTS = 65535 * WORKGROUP;
/** Largest total size of released buffers a backend keeps for reuse. */
const SPARE_MAX_BYTES = 768 * 2 ** 20;
const STORAGE = Usage.STORAGE | Usage.COPY_DST | Usage.COPY_SRC;
const READBACK = MAP_READ | Usage.COPY_DST;

interface Pipelines {
  norm: GPUComputePipeline;
  accumulate: GPUComputePipeline;
  finish: GPUComputePipeline;
  optimizer: GPUComputePipeline;
  absmax: GPUComputePipeline;
  quantize: GPUComputePipeline;
}

/** Shared device helpers of one backend. */
class Gpu {
  readonly ctx: GpuContext;
  readonly device: GPUDevice;
  readonly p: Pipelines;

  constructor(ctx: GpuContext) {
    this.ctx = ctx;
    this.device = ctx.device;
    const make = (code: string): GPUComputePipeline =>
      this.device.createComputePipeline({
        layout: "auto",
        compute: { module: this.device.createShaderModule({ code }), entryPoint: "main" },
      });
    this.p = {
      norm: make(NORM_PARTIALS),
      accumulate: make(ACCUMULATE),
      finish: make(FINISH),
      optimizer: make(OPTIMIZER),
      absmax: make(ABSMAX),
      quantize: make(QUANTIZE),
    };
  }

  buffer(bytes: number, usage: number): GPUBuffer {
    return this.device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 4) * 4), usage });
  }

  /** Released buffers kept for reuse, by key (usage, size and anything their contents must satisfy). */
  private readonly spare = new Map<string, GPUBuffer[]>();
  private spareBytes = 0;

  /**
   * A buffer from the spare pool or a new one (creating and first-touching large buffers costs several ms each
   * round; Dawn zero-fills them lazily). A reused buffer keeps its old contents: `key` must encode every invariant
   * the caller relies on. Return it with {@link give}.
   */
  take(key: string, bytes: number, usage: number): GPUBuffer {
    const list = this.spare.get(`${usage}:${bytes}:${key}`);
    const b = list?.pop();
    if (b) {
      this.spareBytes -= b.size;
      return b;
    }
    return this.buffer(bytes, usage);
  }

  /** Keeps `b` for a later {@link take} with the same key (destroys it when the pool holds 768 MiB). */
  give(key: string, bytes: number, usage: number, b: GPUBuffer): void {
    if (this.spareBytes + b.size > SPARE_MAX_BYTES) {
      b.destroy();
      return;
    }
    const k = `${usage}:${bytes}:${key}`;
    const list = this.spare.get(k) ?? [];
    list.push(b);
    this.spare.set(k, list);
    this.spareBytes += b.size;
  }

  storage(bytes: number): GPUBuffer {
    return this.buffer(bytes, Usage.STORAGE | Usage.COPY_DST | Usage.COPY_SRC);
  }

  uniform(words: ArrayBuffer): GPUBuffer {
    const b = this.buffer(words.byteLength, Usage.UNIFORM | Usage.COPY_DST);
    this.device.queue.writeBuffer(b, 0, words);
    return b;
  }

  bind(pipeline: GPUComputePipeline, buffers: GPUBuffer[]): GPUBindGroup {
    return this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
  }

  /** Encodes one pass of dispatches and submits it. */
  dispatch(
    pipeline: GPUComputePipeline,
    jobs: [GPUBindGroup, number, number?][],
    then?: (enc: GPUCommandEncoder) => void,
  ): void {
    const enc = this.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    for (const [bg, x, y] of jobs) {
      pass.setBindGroup(0, bg);
      pass.dispatchWorkgroups(x, y ?? 1);
    }
    pass.end();
    then?.(enc);
    this.device.queue.submit([enc.finish()]);
  }

  /** Copies `bytes` of `src` through a staging buffer to the host. */
  async read(staging: GPUBuffer, src: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(src, 0, staging, 0, bytes);
    this.device.queue.submit([enc.finish()]);
    await staging.mapAsync(MAP_READ, 0, bytes);
    const out = staging.getMappedRange(0, bytes).slice(0);
    staging.unmap();
    return out;
  }

  /** Runs `fn` inside validation and out-of-memory error scopes; device errors become `FedgeError("internal")`. */
  async scoped<T>(fn: () => Promise<T>): Promise<T> {
    this.device.pushErrorScope("out-of-memory");
    this.device.pushErrorScope("validation");
    let result: T | undefined;
    let failure: unknown;
    let failed = false;
    try {
      result = await fn();
    } catch (e) {
      failure = e;
      failed = true;
    }
    const validation = await this.device.popErrorScope();
    const oom = await this.device.popErrorScope();
    if (failed) throw failure;
    const err = validation ?? oom;
    if (err) throw new FedgeError("internal", 500, `webgpu device error: ${err.message}`);
    return result as T;
  }
}

function chunkParams(n: number, stride: number, segments: number, rows: number): ArrayBuffer {
  return new Uint32Array([n, stride, segments, rows]).buffer;
}

/** Two batch buffers per chunk: the norms of batch i + 1 run while the host waits for those of batch i. */
type Pair<T> = [T, T];

interface AccChunk {
  off: number;
  n: number;
  /** Row stride in the batch buffer: n rounded up to a multiple of 4 (the padding stays zero). */
  stride: number;
  segments: number;
  /** Partials per row: 4·64·segments. */
  perRow: number;
  /** Offset of this chunk's partials in a readback buffer, in floats. */
  pOff: number;
  acc: GPUBuffer;
  batch: Pair<GPUBuffer>;
  partials: Pair<GPUBuffer>;
  params: GPUBuffer;
  normBG: Pair<GPUBindGroup>;
  accBG: Pair<GPUBindGroup>;
  backup?: GPUBuffer;
}

/** The webgpu accumulator. Exported for the benchmark (kernel-only timing through `uploadBatch`/`runBatch`). */
export class WebGpuAccumulator implements Accumulator {
  readonly length: number;
  readonly clipNorm: number;
  readonly batchSize: number;
  readonly chunkLength: number;
  private readonly g: Gpu;
  private chunks: AccChunk[] | null;
  private readonly factors: Pair<GPUBuffer>;
  private readonly rowsU: Pair<GPUBuffer>;
  private readonly partialsRead: Pair<GPUBuffer>;
  private readonly norms: number[] = [];
  private unclipped = 0;
  private weightSum = 0;

  constructor(g: Gpu, opts: AccumulatorOptions, batchSize: number, chunkLength: number | undefined) {
    this.g = g;
    this.length = opts.length;
    this.clipNorm = opts.clipNorm;
    const maxBinding = g.ctx.limits.maxStorageBufferBindingSize;
    const byBinding = Math.floor(maxBinding / 4 / batchSize) - 4; // room for the stride padding
    if (byBinding < 1) throw new FedgeError("bad_request", 400, `batchSize ${batchSize} is too large for this device`);
    this.batchSize = batchSize;
    this.chunkLength = Math.max(1, Math.min(chunkLength ?? Infinity, byBinding, MAX_DISPATCH_ELEMENTS, opts.length));
    const pair = <T>(make: () => T): Pair<T> => [make(), make()];
    this.factors = pair(() => g.storage(4 * batchSize));
    this.rowsU = pair(() => g.buffer(16, Usage.UNIFORM | Usage.COPY_DST));
    const chunks: AccChunk[] = [];
    let pOff = 0;
    for (let off = 0; off < opts.length; off += this.chunkLength) {
      const n = Math.min(this.chunkLength, opts.length - off);
      const stride = Math.ceil(n / 4) * 4;
      const segments = Math.min(NORM_WORKGROUPS, Math.ceil(stride / 4 / NORM_WORKGROUP));
      const perRow = segments * NORM_PARTIALS_PER_SEGMENT;
      const acc = g.take("acc", 4 * stride, STORAGE);
      // batch rows keep zero padding past n: reuse only with the same n (hence the same stride)
      const batch = pair(() => g.take(`batch n=${n}`, 4 * stride * batchSize, STORAGE));
      const partials = pair(() => g.take("partials", 4 * perRow * batchSize, STORAGE));
      const params = g.uniform(chunkParams(n, stride, segments, 0));
      chunks.push({
        off,
        n,
        stride,
        segments,
        perRow,
        pOff,
        acc,
        batch,
        partials,
        params,
        normBG: [0, 1].map((i) => g.bind(g.p.norm, [batch[i]!, partials[i]!, params])) as Pair<GPUBindGroup>,
        accBG: [0, 1].map((i) =>
          g.bind(g.p.accumulate, [batch[i]!, acc, this.factors[i]!, params, this.rowsU[i]!]),
        ) as Pair<GPUBindGroup>,
      });
      pOff += perRow * batchSize;
    }
    this.chunks = chunks;
    this.partialsRead = pair(() => g.take("read", 4 * pOff, READBACK));
    // a reused running sum starts from zero
    const enc = g.device.createCommandEncoder();
    for (const c of chunks) enc.clearBuffer(c.acc);
    g.device.queue.submit([enc.finish()]);
  }

  private live(): AccChunk[] {
    if (!this.chunks) throw disposed("accumulator");
    return this.chunks;
  }

  async add(updates: readonly Float32Array[], weights?: readonly number[]): Promise<void> {
    const chunks = this.live();
    const w = checkBatch(this.length, updates, weights);
    if (updates.length === 0) return;
    await this.g.scoped(async () => {
      const multi = updates.length > this.batchSize;
      if (multi) this.copyAcc(chunks, "backup");
      const saved = { n: this.norms.length, unclipped: this.unclipped, weightSum: this.weightSum };
      // pipelined: batch i + 1 is uploaded and its norm kernel queued (into the other batch buffer) before the host
      // waits for the norms of batch i, so uploads, host sums and device work overlap
      const submit = (start: number, slot: number) => {
        const rows = updates.slice(start, start + this.batchSize);
        this.uploadBatch(rows, slot);
        const norms = this.batchNorms(rows.length, slot);
        norms.catch(() => undefined); // awaited below; never an unhandled rejection
        return { start, slot, norms };
      };
      let next: ReturnType<typeof submit> | null = submit(0, 0);
      try {
        while (next) {
          const cur: ReturnType<typeof submit> = next;
          const after = cur.start + this.batchSize;
          next = after < updates.length ? submit(after, 1 - cur.slot) : null;
          const sums = await cur.norms;
          sums.forEach((s, r) => {
            if (!normOk(s)) throw nonFinite(cur.start + r);
          });
          const ws = w.slice(cur.start, cur.start + this.batchSize);
          this.runAccumulate(
            sums.map((s, r) => clipFactor(s, this.clipNorm, ws[r]!)),
            cur.slot,
          );
          sums.forEach((s, r) => {
            this.norms.push(Math.sqrt(s));
            if (isUnclipped(s, this.clipNorm)) this.unclipped++;
            this.weightSum += ws[r]!;
          });
        }
      } catch (e) {
        if (next) await next.norms.catch(() => undefined); // leave no readback mapped or pending
        if (multi) this.copyAcc(chunks, "restore");
        this.norms.length = saved.n;
        this.unclipped = saved.unclipped;
        this.weightSum = saved.weightSum;
        throw e;
      }
    });
  }

  private copyAcc(chunks: AccChunk[], dir: "backup" | "restore"): void {
    const enc = this.g.device.createCommandEncoder();
    for (const c of chunks) {
      c.backup ??= this.g.storage(4 * c.n);
      if (dir === "backup") enc.copyBufferToBuffer(c.acc, 0, c.backup, 0, 4 * c.n);
      else enc.copyBufferToBuffer(c.backup, 0, c.acc, 0, 4 * c.n);
    }
    this.g.device.queue.submit([enc.finish()]);
  }

  /** Uploads up to `batchSize` updates as rows of every chunk's batch buffer `slot` (benchmark hook). */
  uploadBatch(rows: readonly Float32Array[], slot = 0): void {
    const q = this.g.device.queue;
    const chunks = this.live();
    rows.forEach((u, r) => {
      for (const c of chunks) q.writeBuffer(c.batch[slot]!, 4 * r * c.stride, u, c.off, c.n);
    });
  }

  /** Runs the norm kernel over the resident batch `slot`; returns the squared norms (host float64 sum of partials). */
  async batchNorms(rows: number, slot = 0): Promise<number[]> {
    const chunks = this.live();
    const read = this.partialsRead[slot]!;
    this.g.dispatch(
      this.g.p.norm,
      chunks.map((c) => [c.normBG[slot]!, c.segments, rows]),
      (enc) => {
        for (const c of chunks) enc.copyBufferToBuffer(c.partials[slot]!, 0, read, 4 * c.pOff, 4 * rows * c.perRow);
      },
    );
    await read.mapAsync(MAP_READ);
    const p = new Float32Array(read.getMappedRange());
    const sums: number[] = [];
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (const c of chunks) {
        const base = c.pOff + r * c.perRow;
        for (let j = 0; j < c.perRow; j++) s += p[base + j]!;
      }
      sums.push(s);
    }
    read.unmap();
    return sums;
  }

  /** Adds the resident batch `slot` with these float32 factors (one per row; benchmark hook). */
  runAccumulate(factors: number[], slot = 0): void {
    const chunks = this.live();
    const q = this.g.device.queue;
    q.writeBuffer(this.factors[slot]!, 0, new Float32Array(factors));
    q.writeBuffer(this.rowsU[slot]!, 0, new Uint32Array([factors.length, 0, 0, 0]));
    this.g.dispatch(
      this.g.p.accumulate,
      chunks.map((c) => [c.accBG[slot]!, Math.ceil(c.stride / 4 / WORKGROUP)]),
    );
  }

  /** Resolves when the device has finished all submitted work (benchmark hook). */
  async sync(): Promise<void> {
    await this.g.device.queue.onSubmittedWorkDone();
  }

  stats(): AccumulatorStats {
    return {
      count: this.norms.length,
      unclippedCount: this.unclipped,
      weightSum: this.weightSum,
      norms: [...this.norms],
    };
  }

  async finish(opts: FinishOptions): Promise<Float32Array> {
    const chunks = this.live();
    checkFinishOptions(opts);
    const g = this.g;
    const out = await g.scoped(async () => {
      const out = new Float32Array(this.length);
      const recip = reciprocal(opts.denominator);
      const stream = opts.noiseStd > 0 ? new GaussianStream(this.length, opts.noiseStd, opts.random) : null;
      const noise = new Float32Array(stream ? this.chunkLength : 0);
      const uniform = g.buffer(16, Usage.UNIFORM | Usage.COPY_DST);
      const staging = g.take("read", 4 * this.chunkLength, READBACK);
      const words = new Uint32Array(4);
      const asFloat = new Float32Array(words.buffer);
      try {
        for (const c of chunks) {
          if (stream) {
            const piece = noise.subarray(0, c.n);
            stream.fill(piece);
            g.device.queue.writeBuffer(c.batch[0], 0, piece);
          }
          words[0] = c.n;
          words[1] = stream ? 1 : 0;
          asFloat[2] = recip;
          g.device.queue.writeBuffer(uniform, 0, words);
          g.dispatch(g.p.finish, [[g.bind(g.p.finish, [c.acc, c.batch[0], uniform]), Math.ceil(c.n / WORKGROUP)]]);
          out.set(new Float32Array(await g.read(staging, c.acc, 4 * c.n)), c.off);
        }
      } finally {
        uniform.destroy();
        g.give("read", 4 * this.chunkLength, READBACK, staging);
      }
      return out;
    });
    this.dispose();
    return out;
  }

  dispose(): void {
    if (!this.chunks) return;
    const g = this.g;
    for (const c of this.chunks) {
      g.give("acc", 4 * c.stride, STORAGE, c.acc);
      for (const b of c.batch) g.give(`batch n=${c.n}`, 4 * c.stride * this.batchSize, STORAGE, b);
      for (const b of c.partials) g.give("partials", 4 * c.perRow * this.batchSize, STORAGE, b);
      for (const b of [c.params, c.backup]) b?.destroy();
    }
    const pTotal = this.chunks.reduce((a, c) => a + c.perRow * this.batchSize, 0);
    for (const b of this.partialsRead) g.give("read", 4 * pTotal, READBACK, b);
    for (const b of [...this.factors, ...this.rowsU]) b.destroy();
    this.chunks = null;
  }
}

const KIND_CODE: Record<OptimizerKind, number> = { sgd: 0, adam: 2, yogi: 3 };

interface OptChunk {
  off: number;
  n: number;
  x: GPUBuffer;
  m: GPUBuffer;
  v: GPUBuffer;
  d: GPUBuffer;
  params: GPUBuffer;
  bg: GPUBindGroup;
}

class WebGpuOptimizer implements ServerOptimizer {
  readonly kind: OptimizerKind;
  readonly length: number;
  private readonly g: Gpu;
  private readonly usesM: boolean;
  private readonly usesV: boolean;
  private readonly chunkLength: number;
  private chunks: OptChunk[] | null;
  private steps = 0;

  constructor(g: Gpu, p: OptimizerParams, initial: Float32Array, chunkLength: number | undefined) {
    this.g = g;
    this.kind = p.kind;
    this.length = initial.length;
    this.usesM = p.kind !== "sgd" || p.momentum > 0;
    this.usesV = p.kind !== "sgd";
    const byBinding = Math.floor(g.ctx.limits.maxStorageBufferBindingSize / 4);
    this.chunkLength = Math.max(1, Math.min(chunkLength ?? Infinity, byBinding, MAX_DISPATCH_ELEMENTS, initial.length));
    const code = p.kind === "sgd" && p.momentum > 0 ? 1 : KIND_CODE[p.kind];
    const uni = new ArrayBuffer(32);
    const u32 = new Uint32Array(uni);
    const f32 = new Float32Array(uni);
    const chunks: OptChunk[] = [];
    for (let off = 0; off < initial.length; off += this.chunkLength) {
      const n = Math.min(this.chunkLength, initial.length - off);
      u32[0] = n;
      u32[1] = code;
      f32.set([p.lr, p.momentum, p.beta1, p.beta2, p.epsilon], 2);
      const x = g.storage(4 * n);
      const m = g.storage(this.usesM ? 4 * n : 4);
      const v = g.storage(this.usesV ? 4 * n : 4);
      const d = g.storage(4 * n);
      const params = g.uniform(uni);
      chunks.push({ off, n, x, m, v, d, params, bg: g.bind(g.p.optimizer, [x, m, v, d, params]) });
    }
    this.chunks = chunks;
    const q = g.device.queue;
    const tau2 = new Float32Array(this.usesV ? this.chunkLength : 0).fill(p.epsilon * p.epsilon);
    for (const c of chunks) {
      q.writeBuffer(c.x, 0, initial, c.off, c.n);
      if (this.usesV) q.writeBuffer(c.v, 0, tau2, 0, c.n);
    }
  }

  private live(): OptChunk[] {
    if (!this.chunks) throw disposed("optimizer");
    return this.chunks;
  }

  private async readAll(pick: (c: OptChunk) => GPUBuffer): Promise<Float32Array> {
    const out = new Float32Array(this.length);
    const staging = this.g.buffer(4 * this.chunkLength, MAP_READ | Usage.COPY_DST);
    try {
      for (const c of this.live()) out.set(new Float32Array(await this.g.read(staging, pick(c), 4 * c.n)), c.off);
    } finally {
      staging.destroy();
    }
    return out;
  }

  async step(delta: Float32Array): Promise<Float32Array> {
    const chunks = this.live();
    checkDelta(this.length, delta);
    return this.g.scoped(async () => {
      for (const c of chunks) this.g.device.queue.writeBuffer(c.d, 0, delta, c.off, c.n);
      this.g.dispatch(
        this.g.p.optimizer,
        chunks.map((c) => [c.bg, Math.ceil(c.n / WORKGROUP)]),
      );
      this.steps++;
      return this.readAll((c) => c.x);
    });
  }

  async state(): Promise<OptimizerState> {
    this.live();
    return this.g.scoped(async () => ({
      kind: this.kind,
      step: this.steps,
      weights: await this.readAll((c) => c.x),
      m: this.usesM ? await this.readAll((c) => c.m) : new Float32Array(0),
      v: this.usesV ? await this.readAll((c) => c.v) : new Float32Array(0),
    }));
  }

  async load(state: OptimizerState): Promise<void> {
    const chunks = this.live();
    checkState(this.kind, this.length, state, { m: this.usesM, v: this.usesV });
    await this.g.scoped(async () => {
      const q = this.g.device.queue;
      for (const c of chunks) {
        q.writeBuffer(c.x, 0, state.weights, c.off, c.n);
        if (this.usesM) q.writeBuffer(c.m, 0, state.m, c.off, c.n);
        if (this.usesV) q.writeBuffer(c.v, 0, state.v, c.off, c.n);
      }
      await q.onSubmittedWorkDone();
    });
    this.steps = state.step;
  }

  dispose(): void {
    if (!this.chunks) return;
    for (const c of this.chunks) for (const b of [c.x, c.m, c.v, c.d, c.params]) b.destroy();
    this.chunks = null;
  }
}

async function quantizeOnDevice(
  g: Gpu,
  weight: Float32Array,
  rows: number,
  cols: number,
  chunkLength: number | undefined,
): Promise<QuantizedInt8> {
  const byBinding = Math.floor(g.ctx.limits.maxStorageBufferBindingSize / 4);
  const maxElems = Math.min(chunkLength ?? Infinity, byBinding, MAX_DISPATCH_ELEMENTS * 4);
  // rows per chunk: a multiple of 4 (so every chunk but the last packs whole u32 words), at least 4
  const rowsPerChunk = Math.max(4, Math.floor(maxElems / cols / 4) * 4);
  if (rowsPerChunk * cols > byBinding) {
    throw new FedgeError(
      "payload_too_large",
      413,
      `outFeatures ${cols} is too large for one storage binding of this device`,
    );
  }
  const chunkElems = Math.min(rowsPerChunk, rows) * cols;
  const bits = new Uint32Array(weight.buffer, weight.byteOffset, weight.length);
  const wBuf = g.storage(4 * chunkElems);
  const amax = g.storage(4 * cols);
  const scalesBuf = g.storage(4 * cols);
  const outBuf = g.storage(4 * Math.ceil(chunkElems / 4));
  const uniform = g.buffer(16, Usage.UNIFORM | Usage.COPY_DST);
  const staging = g.buffer(Math.max(4 * cols, 4 * Math.ceil(chunkElems / 4)), MAP_READ | Usage.COPY_DST);
  const q = g.device.queue;
  try {
    const absBG = g.bind(g.p.absmax, [wBuf, amax, uniform]);
    for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) {
      const rc = Math.min(rowsPerChunk, rows - r0);
      q.writeBuffer(wBuf, 0, bits, r0 * cols, rc * cols);
      q.writeBuffer(uniform, 0, new Uint32Array([rc, cols, rc * cols, 0]));
      g.dispatch(g.p.absmax, [[absBG, Math.ceil(cols / 64)]]);
    }
    const absmax = new Float32Array(await g.read(staging, amax, 4 * cols));
    const scales = new Float32Array(cols);
    for (let j = 0; j < cols; j++) scales[j] = quantScale(absmax[j]!);
    q.writeBuffer(scalesBuf, 0, scales);
    const values = new Int8Array(weight.length);
    const qBG = g.bind(g.p.quantize, [wBuf, scalesBuf, outBuf, uniform]);
    for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) {
      const rc = Math.min(rowsPerChunk, rows - r0);
      const n = rc * cols;
      q.writeBuffer(wBuf, 0, bits, r0 * cols, n);
      q.writeBuffer(uniform, 0, new Uint32Array([rc, cols, n, 0]));
      const words = Math.ceil(n / 4);
      g.dispatch(g.p.quantize, [[qBG, Math.ceil(words / WORKGROUP)]]);
      const packed = new Int8Array(await g.read(staging, outBuf, 4 * words));
      values.set(packed.subarray(0, n), r0 * cols);
    }
    return { values, scales };
  } finally {
    for (const b of [wBuf, amax, scalesBuf, outBuf, uniform, staging]) b.destroy();
  }
}

/** A webgpu `Backend` plus its adapter description. */
export interface WebGpuBackend extends Backend {
  readonly kind: "webgpu";
  /** Adapter info as reported by Dawn. */
  readonly adapterInfo: GPUAdapterInfo;
  /** Creates the accumulator with its concrete type (benchmark hooks). */
  createAccumulator(opts: AccumulatorOptions): Promise<WebGpuAccumulator>;
}

/** Opens the webgpu backend; resolves to null when no adapter exists (never throws for a missing GPU). */
export async function openWebGpuBackend(options: WebGpuBackendOptions = {}): Promise<WebGpuBackend | null> {
  const batchSize = options.batchSize ?? 16;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 65535) {
    throw new FedgeError(
      "bad_request",
      400,
      `batchSize must be an integer in [1, 65535], got ${String(options.batchSize)}`,
    );
  }
  const chunkLength = options.chunkLength;
  if (chunkLength !== undefined && (!Number.isInteger(chunkLength) || chunkLength < 1)) {
    throw new FedgeError("bad_request", 400, `chunkLength must be an integer >= 1, got ${String(chunkLength)}`);
  }
  const ctx = await openDevice();
  if (!ctx) return null;
  const g = new Gpu(ctx);
  let live = true;
  const alive = (): void => {
    if (!live) throw disposed("backend");
  };
  return {
    kind: "webgpu",
    description: `webgpu (${describeAdapter(ctx.adapterInfo)})`,
    adapterInfo: ctx.adapterInfo,
    async createAccumulator(opts: AccumulatorOptions): Promise<WebGpuAccumulator> {
      alive();
      checkAccumulatorOptions(opts);
      return g.scoped(async () => new WebGpuAccumulator(g, opts, batchSize, chunkLength));
    },
    async createOptimizer(opts: OptimizerOptions): Promise<ServerOptimizer> {
      alive();
      const p = checkOptimizerOptions(opts);
      return g.scoped(async () => new WebGpuOptimizer(g, p, opts.initialWeights, chunkLength));
    },
    async quantizePerChannelInt8(
      weight: Float32Array,
      inFeatures: number,
      outFeatures: number,
    ): Promise<QuantizedInt8> {
      alive();
      checkQuantizeInput(weight, inFeatures, outFeatures);
      return g.scoped(() => quantizeOnDevice(g, weight, inFeatures, outFeatures, chunkLength));
    },
    async dispose(): Promise<void> {
      if (!live) return;
      live = false;
      await ctx.device.queue.onSubmittedWorkDone();
      ctx.device.destroy();
    },
  };
}
