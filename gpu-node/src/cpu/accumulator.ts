/**
 * @module
 * The cpu backend's accumulator (see `cpu.ts` for the design): clip + weighted accumulate in groups of updates, the
 * work of every step shared by the main thread and the worker threads piece by piece (`tasks.ts`), the norms
 * combined on the main thread in the canonical order, and the noise drawn in parallel from crypto.getRandomValues
 * (ahead, while updates are added, when the accumulator was opened with the round's `noiseStd` or `expectNoise`), or
 * on the main thread in the canonical order from an injected source.
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
import { GaussianStream, clipFactor, finishInto, isUnclipped, normOk, reciprocal } from "../math.ts";
import type { SharedHeap } from "./heap.ts";
import { simdModule, type SimdKernels } from "./simd.ts";
import { normBlocks, runJob, type Job, type Phase } from "./tasks.ts";
import { ThreadPool } from "./threads.ts";

const NOISE_PIECE = 65536;

/** What the accumulators of one backend share. */
export interface CpuContext {
  heap: SharedHeap;
  kernels: SimdKernels;
  batchSize: number;
  tile: number;
  threads: number;
  parallelMinLength: number;
  /** Workers (threads − 1), started with the first parallel accumulator. */
  pool: ThreadPool | null;
  /** Byte address of every live buffer from allocateUpdate. */
  staged: WeakMap<Float32Array, number>;
}

/** Noise drawn ahead (see `CpuAccumulator.ahead`). */
interface Ahead {
  buf: number;
  sigma: number | null;
  launch: Launch;
}

/** A job started on the workers (see `CpuAccumulator.launch`). */
interface Launch {
  job: Job;
  ctl: Int32Array;
  total: number;
  /** Settles when every worker answered (never rejects; failures land in `failure`). */
  replies: Promise<void> | null;
  failure: unknown;
}

/** Largest vector whose noise is drawn ahead (4 or 8 bytes per element: at most 256 MiB). */
const MAX_AHEAD_LENGTH = 2 ** 25;

/** `Atomics.waitAsync` (ES2024; typed here because the project's lib is ES2023). */
function waitAsync(
  a: Int32Array,
  index: number,
  value: number,
  timeoutMs: number,
): { async: false; value: string } | { async: true; value: Promise<string> } {
  const atomics = Atomics as unknown as {
    waitAsync(a: Int32Array, index: number, value: number, timeout: number): ReturnType<typeof waitAsync>;
  };
  return atomics.waitAsync(a, index, value, timeoutMs);
}

export class CpuAccumulator implements Accumulator {
  readonly length: number;
  readonly clipNorm: number;
  private readonly ctx: CpuContext;
  private readonly parallel: boolean;
  private readonly blocks: number;
  private readonly rowBytes: number;
  private readonly acc: number;
  private readonly sums: number;
  private readonly lanes: number;
  /** Update slots (0 until an add needs them), `ring × slotGroup` rows of `rowBytes`. */
  private slots = 0;
  private ring = 0;
  private group: number;
  private disposed = false;
  private chain: Promise<unknown> = Promise.resolve();
  /**
   * Noise being drawn in the background: float32 n_i = fl32(σ·z_i) when σ was given at open (`sigma`), float64
   * standard normals z_i with `expectNoise` (`sigma` null); its buffer and job.
   */
  private ahead: Ahead | null = null;
  private readonly norms: number[] = [];
  private unclipped = 0;
  private weightSum = 0;
  /** The running sum before an `add` of several groups (allocated by the first such call). */
  private snapshot: Float32Array | null = null;

  constructor(ctx: CpuContext, opts: AccumulatorOptions) {
    this.ctx = ctx;
    this.length = opts.length;
    this.clipNorm = opts.clipNorm;
    this.parallel = ctx.threads > 1 && opts.length >= ctx.parallelMinLength;
    if (this.parallel) ctx.pool ??= new ThreadPool(ctx.threads - 1, ctx.heap.memory, simdModule());
    this.blocks = normBlocks(opts.length);
    this.rowBytes = Math.ceil((4 * opts.length) / 64) * 64;
    this.group = ctx.batchSize;
    const heap = ctx.heap;
    const regions: number[] = [];
    try {
      for (const bytes of [4 * opts.length, 8 * this.group * this.blocks, 64 * ctx.threads]) {
        regions.push(heap.alloc(bytes));
      }
    } catch (e) {
      for (const p of regions) heap.release(p);
      throw e;
    }
    [this.acc, this.sums, this.lanes] = regions as [number, number, number];
    this.accView().fill(0);
    const sigma = opts.noiseStd ?? 0;
    if ((sigma > 0 || opts.expectNoise) && this.parallel && ctx.pool && opts.length <= MAX_AHEAD_LENGTH) {
      let buf = 0;
      try {
        buf = heap.alloc((sigma > 0 ? 4 : 8) * opts.length);
      } catch {
        // no room: the noise is drawn in finish
      }
      if (buf) {
        const phase: Phase = sigma > 0 ? { op: "noise", noise: buf, sigma } : { op: "normals", z: buf };
        this.ahead = { buf, sigma: sigma > 0 ? sigma : null, launch: this.launch([phase]) };
      }
    }
  }

  /**
   * Completes the noise drawn in the background for a finish with σ = `sigma` (the main thread draws what is left) and
   * hands over its buffer. Null when there is none, it was drawn for another σ, or its job failed (e.g. the backend
   * was disposed): finish then draws the noise itself.
   */
  private async takeAhead(sigma: number): Promise<{ buf: number; sigma: number | null } | null> {
    const a = this.ahead;
    if (!a || (a.sigma !== null && a.sigma !== sigma)) return null;
    this.ahead = null;
    try {
      await this.join(a.launch);
    } catch {
      this.ctx.heap.release(a.buf); // join waited for every worker before throwing
      return null;
    }
    return { buf: a.buf, sigma: a.sigma };
  }

  /** Cancels the background normals (no piece is claimed any more) and frees them once their job is over. */
  private dropAhead(): void {
    const a = this.ahead;
    if (!a) return;
    this.ahead = null;
    Atomics.store(a.launch.ctl, 0, a.launch.total);
    const heap = this.ctx.heap;
    const settle = a.launch.replies ?? Promise.resolve();
    void settle.then(() => {
      heap.release(a.buf);
      heap.release(a.launch.job.counter);
    });
  }

  private accView(): Float32Array {
    return this.ctx.heap.f32(this.acc, this.length);
  }

  private live(): void {
    if (this.disposed) throw disposed("accumulator");
  }

  /** Runs `fn` after every earlier add/finish of this accumulator (they await worker threads). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(() => {
      this.live();
      return fn();
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Starts a job (phases independent of each other) on the workers, if this accumulator uses them; the main thread
   * joins in with {@link join}. `tasks.ts` explains the piece-by-piece sharing.
   */
  private launch(phases: Phase[]): Launch {
    const heap = this.ctx.heap;
    // a pool whose worker died is no longer used: the main thread does all the work from then on
    const pool = this.parallel && this.ctx.pool && !this.ctx.pool.broken ? this.ctx.pool : null;
    const counter = heap.alloc(64);
    const ctl = heap.i32(counter, 2);
    ctl.fill(0);
    const job = { counter, length: this.length, phases, lanes: this.lanes };
    const l: Launch = { job, ctl, total: phases.length * this.blocks, replies: null, failure: null };
    if (pool) {
      l.replies = pool
        .run(Array.from({ length: pool.size }, (_, w) => ({ ...job, lanes: this.lanes + 64 * (w + 1) })))
        .catch((e: unknown) => {
          l.failure ??= e;
        });
    }
    return l;
  }

  /**
   * The main thread runs `during` (e.g. copying the next group), then claims pieces of the launched job until none
   * is left, then waits until every piece is done. If a thread failed, it waits for every worker to answer (so
   * nothing is still writing) and throws. The job's counter is freed once no worker can still read it.
   */
  private async join(l: Launch, during?: () => void): Promise<void> {
    const heap = this.ctx.heap;
    const release = (): void => heap.release(l.job.counter);
    let failure: unknown = null;
    try {
      during?.();
      runJob(this.ctx.kernels, l.job);
    } catch (e) {
      failure = e;
    }
    if (failure === null) {
      for (;;) {
        const seen = Atomics.load(l.ctl, 1);
        if (seen >= l.total || l.failure !== null) break;
        const w = waitAsync(l.ctl, 1, seen, 50);
        if (w.async) await w.value;
      }
    }
    failure ??= l.failure;
    if (failure !== null || !l.replies) {
      await l.replies;
      release();
      if (failure !== null) throw failure;
      return;
    }
    void l.replies.then(release);
  }

  /** One step: launch and join. */
  private step(phases: Phase[], during?: () => void): Promise<void> {
    return this.join(this.launch(phases), during);
  }

  /** Allocates the update slots for groups that must be copied (on first need); returns the slot group size. */
  private ensureSlots(): number {
    if (this.slots) return this.group;
    const ring = this.parallel ? 3 : 1;
    const room = Math.floor((2 ** 32 - this.ctx.heap.usedBytes - 2 ** 20) / (ring * this.rowBytes));
    const group = Math.max(1, Math.min(this.group, room));
    this.slots = this.ctx.heap.alloc(ring * group * this.rowBytes);
    this.ring = ring;
    this.group = group;
    return group;
  }

  async add(updates: readonly Float32Array[], weights?: readonly number[]): Promise<void> {
    this.live();
    const w = checkBatch(this.length, updates, weights);
    if (updates.length === 0) return;
    await this.exclusive(() => this.addRows(updates, w));
  }

  private async addRows(updates: readonly Float32Array[], w: number[]): Promise<void> {
    const staged = this.ctx.staged;
    if (updates.some((u) => !staged.has(u))) this.ensureSlots();
    const G = this.group;
    const groups: Float32Array[][] = [];
    for (let i = 0; i < updates.length; i += G) groups.push(updates.slice(i, i + G));
    const ptrs: number[][] = [];
    const factors: number[][] = [];
    const sums: number[] = [];
    const heap = this.ctx.heap;
    const stage = (g: number): void => {
      ptrs[g] = groups[g]!.map((u, r) => {
        const p = staged.get(u);
        if (p !== undefined) return p;
        const slot = this.slots + ((g % this.ring) * G + r) * this.rowBytes;
        heap.f32(slot, this.length).set(u);
        return slot;
      });
    };
    const needsCopy = (g: number): boolean => g < groups.length && groups[g]!.some((u) => !staged.has(u));
    const normPhase = (g: number): Phase => ({ op: "norm", rows: ptrs[g]!, sums: this.sums });
    const axpyPhase = (g: number): Phase => ({
      op: "axpy",
      acc: this.acc,
      rows: ptrs[g]!,
      factors: factors[g]!,
      tile: this.ctx.tile,
    });
    const combine = (g: number): void => {
      const rows = groups[g]!.length;
      const block = heap.f64(this.sums, rows * this.blocks);
      factors[g] = [];
      for (let r = 0; r < rows; r++) {
        let s = 0;
        for (let b = 0; b < this.blocks; b++) s += block[r * this.blocks + b]!;
        const k = g * G + r;
        if (!normOk(s)) throw nonFinite(k);
        sums.push(s);
        factors[g]!.push(clipFactor(s, this.clipNorm, w[k]!));
      }
    };
    // a call of several groups adds the first ones before the norms of the last are known: keep the sum to restore
    let snapshot: Float32Array | null = null;
    if (groups.length > 1) {
      snapshot = this.snapshot ??= new Float32Array(this.length); // reused: no fresh 4·length bytes per call
      snapshot.set(this.accView());
    }
    try {
      stage(0);
      if (!this.parallel) {
        // one thread: norm then add each group while it is hot in cache, then copy the next
        for (let g = 0; g < groups.length; g++) {
          await this.step([normPhase(g)]);
          combine(g);
          await this.step([axpyPhase(g)]);
          if (g + 1 < groups.length) stage(g + 1);
        }
      } else {
        // pipelined: step s adds group s − 1 and computes the norms of group s
        for (let s = 0; s <= groups.length; s++) {
          if (this.disposed) throw disposed("accumulator");
          const copyNext = needsCopy(s + 1);
          await this.step(
            [...(s > 0 ? [axpyPhase(s - 1)] : []), ...(s < groups.length ? [normPhase(s)] : [])],
            copyNext ? () => stage(s + 1) : undefined,
          );
          if (!copyNext && s + 1 < groups.length) stage(s + 1);
          if (s < groups.length) combine(s);
        }
      }
    } catch (e) {
      if (snapshot && !this.disposed) this.accView().set(snapshot);
      throw e;
    }
    // all norms valid and added: record the statistics
    sums.forEach((s, k) => {
      this.norms.push(Math.sqrt(s));
      if (isUnclipped(s, this.clipNorm)) this.unclipped++;
      this.weightSum += w[k]!;
    });
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
    this.live();
    checkFinishOptions(opts);
    return this.exclusive(async () => {
      const r = reciprocal(opts.denominator);
      let out: Float32Array;
      // the noise drawn in the background for this σ, if any (this thread helps draw what is left)
      const early = opts.noiseStd > 0 && !opts.random ? await this.takeAhead(opts.noiseStd) : null;
      if (opts.noiseStd > 0 && opts.random) {
        // an injected source: draw on this thread in the canonical order (reproducible)
        out = new Float32Array(this.length);
        const acc = this.accView();
        const stream = new GaussianStream(this.length, opts.noiseStd, opts.random);
        const piece = new Float32Array(Math.min(this.length, NOISE_PIECE));
        for (let from = 0; from < this.length; from += piece.length) {
          const noise = piece.subarray(0, Math.min(piece.length, this.length - from));
          stream.fill(noise);
          finishInto(out, acc, noise, r, from);
        }
      } else if (early) {
        const { buf, sigma } = early;
        try {
          await this.step([
            sigma === null
              ? { op: "finishNormals", acc: this.acc, z: buf, sigma: opts.noiseStd, recip: r }
              : { op: "finishNoise", acc: this.acc, noise: buf, recip: r },
          ]);
        } finally {
          this.ctx.heap.release(buf);
        }
        out = this.accView().slice();
      } else {
        await this.step([{ op: "finish", acc: this.acc, sigma: opts.noiseStd, recip: r }]);
        out = this.accView().slice();
      }
      this.dispose();
      return out;
    });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    // free once any pending step is over (worker threads may still be writing)
    this.dropAhead();
    this.snapshot = null;
    void this.chain.then(() => {
      for (const p of [this.acc, this.sums, this.lanes, this.slots]) this.ctx.heap.release(p);
    });
  }
}
