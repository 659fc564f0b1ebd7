/**
 * @module
 * The webgpu accumulator: clip + weighted accumulate on the device, with the same results as the cpu reference (see
 * `backend.ts` for the canonical arithmetic and the stated tolerances).
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
 * @fedge/privacy and uploaded chunk by chunk; the device only adds it. Chosen over a counter-based ChaCha20 in WGSL
 * because (1) it is the same audited sampler, bytes and float32 values as the cpu backend, so the two backends give
 * identical noisy results from the same byte source and there is one sampler to review, not two; (2) WGSL has no
 * float64 or precise log/cos, so an on-device Box–Muller would be a different, less accurate distribution; (3) the cost
 * is one upload of 4 bytes per parameter per round, small next to the K·4 bytes per parameter of updates.
 */
import {
  checkBatch,
  checkFinishOptions,
  disposed,
  nonFinite,
  type Accumulator,
  type AccumulatorOptions,
  type AccumulatorStats,
  type FinishOptions,
} from "../backend.ts";
import { BackendError } from "../errors.ts";
import { GaussianStream, clipFactor, isUnclipped, normOk, reciprocal } from "../math.ts";
import { MAP_READ, Usage } from "./device.ts";
import { MAX_DISPATCH_ELEMENTS, READBACK, STORAGE, type Gpu } from "./gpu.ts";
import { NORM_PARTIALS_PER_SEGMENT, NORM_WORKGROUP, NORM_WORKGROUPS, WORKGROUP } from "./kernels.ts";

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
    if (byBinding < 1)
      throw new BackendError("invalid_argument", `batchSize ${batchSize} is too large for this device`);
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
      const acc = g.pool.take("acc", 4 * stride, STORAGE);
      // batch rows keep zero padding past n: reuse only with the same n (hence the same stride)
      const batch = pair(() => g.pool.take(`batch n=${n}`, 4 * stride * batchSize, STORAGE));
      const partials = pair(() => g.pool.take("partials", 4 * perRow * batchSize, STORAGE));
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
    this.partialsRead = pair(() => g.pool.take("read", 4 * pOff, READBACK));
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
      const staging = g.pool.take("read", 4 * this.chunkLength, READBACK);
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
        g.pool.give("read", 4 * this.chunkLength, READBACK, staging);
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
      g.pool.give("acc", 4 * c.stride, STORAGE, c.acc);
      for (const b of c.batch) g.pool.give(`batch n=${c.n}`, 4 * c.stride * this.batchSize, STORAGE, b);
      for (const b of c.partials) g.pool.give("partials", 4 * c.perRow * this.batchSize, STORAGE, b);
      for (const b of [c.params, c.backup]) b?.destroy();
    }
    const pTotal = this.chunks.reduce((a, c) => a + c.perRow * this.batchSize, 0);
    for (const b of this.partialsRead) g.pool.give("read", 4 * pTotal, READBACK, b);
    for (const b of [...this.factors, ...this.rowsU]) b.destroy();
    this.chunks = null;
  }
}
