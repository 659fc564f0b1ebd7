/**
 * @module
 * The `cpu` backend: the exact reference of `Backend`, always available. Host memory only; the clip-accumulate hot
 * loops run in a WebAssembly SIMD module (`simd.ts`) with results bit-identical to the TypedArray loops of `math.ts`,
 * on the main thread plus `threads − 1` worker threads (node:worker_threads) for vectors of at least
 * `parallelMinLength` elements.
 *
 * Memory: one shared WebAssembly memory per backend (`heap.ts`, at most 4 GiB) holds every accumulator's running sum,
 * its norm scratch, and, for updates that live elsewhere, a ring of update slots they are copied into. Updates
 * obtained from {@link CpuBackend.allocateUpdate} already live there and are used in place (zero copy): a caller
 * that decodes client updates straight into such buffers saves one memcpy per update.
 *
 * Threads (`accumulator.ts`, `tasks.ts`): the work of each step is cut into pieces of one norm block
 * (`math.NORM_BLOCK` = 65,536 parameters) that the main thread and the workers claim from a shared atomic counter, so
 * a thread that the OS does not schedule (a loaded machine) simply takes fewer pieces. An `add` call proceeds in groups
 * of `batchSize` updates; step s adds group s − 1 with the clip factors the main thread computed and computes the
 * block sums of squares of group s; the main thread adds the block sums in block order (so the norms, and hence every
 * result, are independent of the thread count and of timing), checks them and computes the factors. When a group must
 * be copied into slots, the main thread copies it while the workers run the current step, then joins in. Noise from the default source
 * (crypto.getRandomValues) is drawn in parallel too, piece by piece (`fillStandardNormalBatch`), and when the round's
 * σ is given at open (`noiseStd`, as the aggregator does) ahead, in the background while updates are added, so
 * `finish` only adds it; with an injected `random` it is drawn on the main thread in the canonical order
 * (`math.GaussianStream`), so it is reproducible and identical to the webgpu backend's.
 *
 * Worker threads start with the first accumulator of at least `parallelMinLength` parameters, are `unref()`ed while
 * idle (a forgotten `dispose()` never keeps the process alive) and are terminated by `dispose()`; accumulators that
 * outlive the backend carry on on the main thread.
 */
import { availableParallelism } from "node:os";
import {
  MAX_LENGTH,
  checkAccumulatorOptions,
  checkDelta,
  checkOptimizerOptions,
  checkQuantizeInput,
  checkState,
  disposed,
  type Accumulator,
  type AccumulatorOptions,
  type Backend,
  type OptimizerOptions,
  type OptimizerParams,
  type OptimizerState,
  type QuantizedInt8,
  type ServerOptimizer,
} from "../backend.ts";
import { BackendError } from "../errors.ts";
import { initialOptimizerArrays, optimizerStep, quantizePerChannelInt8, type OptimizerArrays } from "../math.ts";
import { CpuAccumulator, type CpuContext } from "./accumulator.ts";
import { SharedHeap } from "./heap.ts";
import { instantiateSimd } from "./simd.ts";

/** Options of {@link createCpuBackend}. */
export interface CpuBackendOptions {
  /**
   * Updates per step of an `add` (the group whose norms are computed together; also the number of update slots per
   * ring position for updates that must be copied).
   * @default 8
   */
  batchSize?: number;
  /**
   * Elements per cache tile of the accumulate pass (rounded down to a multiple of 4).
   * @default 8192
   */
  tileLength?: number;
  /**
   * Threads that share the work of a large accumulator: the main thread plus `threads − 1` workers (started on first
   * use, stopped by `dispose()`; idle workers never keep the process alive). 1 disables worker threads.
   * @default min(os.availableParallelism(), 8)
   */
  threads?: number;
  /**
   * Smallest vector length (elements) whose accumulators use the worker threads; shorter ones run on the main thread
   * only (a step's message round trip costs more than the work).
   * @default 262144 (2^18, 1 MiB per update)
   */
  parallelMinLength?: number;
}

/** The cpu backend: a `Backend` plus zero-copy update buffers. */
export interface CpuBackend extends Backend {
  readonly kind: "cpu";
  /** Threads used for large accumulators (main thread included). */
  readonly threads: number;
  /**
   * A zeroed Float32Array of `length` in the backend's shared memory. Write an update into it (e.g. decode a client
   * update straight into it) and pass it to `add()` of any accumulator of this backend: it is then read in place, not
   * copied. It can be refilled and added again after `add()` resolves. Free it with {@link releaseUpdate}; it is also
   * freed with the backend. Throws `BackendError("too_large")` when the 4 GiB memory is full.
   */
  allocateUpdate(length: number): Float32Array;
  /** Frees a buffer from {@link allocateUpdate} (never while an `add()` using it is pending). */
  releaseUpdate(update: Float32Array): void;
}

function checkPositiveInt(name: string, v: number | undefined, fallback: number): number {
  const x = v ?? fallback;
  if (!Number.isInteger(x) || x < 1)
    throw new BackendError("invalid_argument", `${name} must be an integer >= 1, got ${String(v)}`);
  return x;
}

class CpuOptimizer implements ServerOptimizer {
  readonly kind;
  readonly length: number;
  private readonly p: OptimizerParams;
  private s: OptimizerArrays | null;
  private steps = 0;

  constructor(p: OptimizerParams, initialWeights: Float32Array) {
    this.p = p;
    this.kind = p.kind;
    this.length = initialWeights.length;
    this.s = initialOptimizerArrays(p, initialWeights);
  }

  private get arrays(): OptimizerArrays {
    if (!this.s) throw disposed("optimizer");
    return this.s;
  }

  async step(delta: Float32Array): Promise<Float32Array> {
    const s = this.arrays;
    checkDelta(this.length, delta);
    optimizerStep(this.p, s, delta);
    this.steps++;
    return s.weights.slice();
  }

  async state(): Promise<OptimizerState> {
    const s = this.arrays;
    return { kind: this.kind, step: this.steps, weights: s.weights.slice(), m: s.m.slice(), v: s.v.slice() };
  }

  async load(state: OptimizerState): Promise<void> {
    const s = this.arrays;
    checkState(this.kind, this.length, state, { m: s.m.length > 0, v: s.v.length > 0 });
    s.weights.set(state.weights);
    if (s.m.length) s.m.set(state.m);
    if (s.v.length) s.v.set(state.v);
    this.steps = state.step;
  }

  dispose(): void {
    this.s = null;
  }
}

/** Creates the cpu backend (synchronous; never fails for lack of hardware; worker threads start on first use). */
export function createCpuBackend(options: CpuBackendOptions = {}): CpuBackend {
  const batchSize = checkPositiveInt("batchSize", options.batchSize, 8);
  const tileLength = checkPositiveInt("tileLength", options.tileLength, 8192);
  const threads = checkPositiveInt("threads", options.threads, Math.min(availableParallelism(), 8));
  const parallelMinLength = checkPositiveInt("parallelMinLength", options.parallelMinLength, 2 ** 18);
  const heap = new SharedHeap();
  const ctx: CpuContext = {
    heap,
    kernels: instantiateSimd(heap.memory),
    batchSize,
    tile: Math.max(4, tileLength - (tileLength % 4)),
    threads,
    parallelMinLength,
    pool: null,
    staged: new WeakMap(),
  };
  let live = true;
  const alive = (): void => {
    if (!live) throw disposed("backend");
  };
  return {
    kind: "cpu",
    description: `cpu (WebAssembly SIMD, ${threads} thread${threads > 1 ? "s" : ""})`,
    threads,
    async createAccumulator(opts: AccumulatorOptions): Promise<Accumulator> {
      alive();
      checkAccumulatorOptions(opts);
      return new CpuAccumulator(ctx, opts);
    },
    async createOptimizer(opts: OptimizerOptions): Promise<ServerOptimizer> {
      alive();
      return new CpuOptimizer(checkOptimizerOptions(opts), opts.initialWeights);
    },
    async quantizePerChannelInt8(
      weight: Float32Array,
      inFeatures: number,
      outFeatures: number,
    ): Promise<QuantizedInt8> {
      alive();
      checkQuantizeInput(weight, inFeatures, outFeatures);
      return quantizePerChannelInt8(weight, inFeatures, outFeatures);
    },
    allocateUpdate(length: number): Float32Array {
      alive();
      if (!Number.isInteger(length) || length < 1 || length > MAX_LENGTH) {
        throw new BackendError(
          "invalid_argument",
          `length must be an integer in [1, ${MAX_LENGTH}], got ${String(length)}`,
        );
      }
      const ptr = heap.alloc(4 * length);
      const view = heap.f32(ptr, length);
      view.fill(0);
      ctx.staged.set(view, ptr);
      return view;
    },
    releaseUpdate(update: Float32Array): void {
      const ptr = ctx.staged.get(update);
      if (ptr === undefined) {
        throw new BackendError(
          "invalid_argument",
          "update was not allocated by this backend's allocateUpdate (or was already released)",
        );
      }
      ctx.staged.delete(update);
      heap.release(ptr);
    },
    async dispose(): Promise<void> {
      if (!live) return;
      live = false;
      const pool = ctx.pool;
      ctx.pool = null;
      await pool?.terminate();
    },
  };
}
