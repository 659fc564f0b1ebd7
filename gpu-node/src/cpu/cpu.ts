/**
 * @module
 * The `cpu` backend: the exact reference of `Backend`, always available. Host memory only; the clip-accumulate hot
 * loops run in a WebAssembly SIMD module (`simd.ts`) with results bit-identical to the TypedArray loops of `math.ts`.
 *
 * Memory: each accumulator owns a WebAssembly memory holding the running sum and `batchSize` update slots
 * (4·length·(1 + batchSize) bytes, at most 2 GiB, so length ≤ 2^28 with batchSize 1). An `add` copies each update of a
 * batch into its slot (one memcpy), computes its squared norm there (data hot in cache), then adds the batch tile by
 * tile so the running sum stays in L1/L2.
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
  type OptimizerOptions,
  type OptimizerParams,
  type OptimizerState,
  type QuantizedInt8,
  type ServerOptimizer,
} from "../backend/index.ts";
import {
  GaussianStream,
  addSquaresToLanes,
  clipFactor,
  combineLanes,
  finishInto,
  initialOptimizerArrays,
  isUnclipped,
  normOk,
  optimizerStep,
  quantizePerChannelInt8,
  reciprocal,
  type OptimizerArrays,
} from "../math/index.ts";
import { instantiateSimd, type SimdKernels } from "./simd.ts";

/** Options of {@link createCpuBackend}. */
export interface CpuBackendOptions {
  /**
   * Updates copied into WebAssembly memory and added per pass (K per dispatch).
   * @default 4
   */
  batchSize?: number;
  /**
   * Elements per cache tile of the accumulate pass (rounded down to a multiple of 4).
   * @default 8192
   */
  tileLength?: number;
}

const MAX_WASM_BYTES = 2 ** 31;
const PAGE = 65536;
const LANES_PTR = 0;
const DATA_PTR = 64;

function checkPositiveInt(name: string, v: number | undefined, fallback: number): number {
  const x = v ?? fallback;
  if (!Number.isInteger(x) || x < 1)
    throw new FedgeError("bad_request", 400, `${name} must be an integer >= 1, got ${String(v)}`);
  return x;
}

class CpuAccumulator implements Accumulator {
  readonly length: number;
  readonly clipNorm: number;
  private readonly batchSize: number;
  private readonly tile: number;
  private readonly stride: number; // floats per slot, multiple of 4
  private kernels: SimdKernels | null;
  private readonly norms: number[] = [];
  private unclipped = 0;
  private weightSum = 0;

  constructor(opts: AccumulatorOptions, batchSize: number, tileLength: number) {
    this.length = opts.length;
    this.clipNorm = opts.clipNorm;
    this.stride = Math.ceil(opts.length / 4) * 4;
    const slotBytes = 4 * this.stride;
    const fit = Math.floor((MAX_WASM_BYTES - DATA_PTR) / slotBytes) - 1;
    if (fit < 1) {
      throw new FedgeError(
        "payload_too_large",
        413,
        `length ${opts.length} is too large for the cpu backend (max ${(MAX_WASM_BYTES / 8) | 0})`,
      );
    }
    this.batchSize = Math.min(batchSize, fit);
    this.tile = Math.max(4, tileLength - (tileLength % 4));
    const bytes = DATA_PTR + slotBytes * (1 + this.batchSize);
    this.kernels = instantiateSimd(Math.ceil(bytes / PAGE));
  }

  private get k(): SimdKernels {
    if (!this.kernels) throw disposed("accumulator");
    return this.kernels;
  }

  /** Float32 view of the running sum (valid until the next memory growth; the memory never grows after creation). */
  private accView(): Float32Array {
    return new Float32Array(this.k.memory.buffer, DATA_PTR, this.length);
  }

  private slotPtr(r: number): number {
    return DATA_PTR + 4 * this.stride * (1 + r);
  }

  async add(updates: readonly Float32Array[], weights?: readonly number[]): Promise<void> {
    const k = this.k;
    const w = checkBatch(this.length, updates, weights);
    if (updates.length === 0) return;
    const snapshot = updates.length > this.batchSize ? this.accView().slice() : null;
    const saved = { n: this.norms.length, unclipped: this.unclipped, weightSum: this.weightSum };
    try {
      for (let start = 0; start < updates.length; start += this.batchSize) {
        this.addBatch(k, updates.slice(start, start + this.batchSize), w.slice(start, start + this.batchSize), start);
      }
    } catch (e) {
      if (snapshot) this.accView().set(snapshot);
      this.norms.length = saved.n;
      this.unclipped = saved.unclipped;
      this.weightSum = saved.weightSum;
      throw e;
    }
  }

  private addBatch(k: SimdKernels, rows: Float32Array[], weights: number[], first: number): void {
    const n = this.length;
    const n8 = n >>> 3;
    const heap = new Float32Array(k.memory.buffer);
    const lanes = new Float64Array(k.memory.buffer, LANES_PTR, 8);
    const sums: number[] = [];
    rows.forEach((u, r) => {
      const p = this.slotPtr(r);
      heap.set(u, p >>> 2);
      lanes.fill(0);
      k.sumsq8(p, n8, LANES_PTR);
      addSquaresToLanes(u, lanes, n8 * 8);
      const s = combineLanes(lanes);
      if (!normOk(s)) throw nonFinite(first + r);
      sums.push(s);
    });
    // all norms valid: now change state
    const factors = sums.map((s, r) => clipFactor(s, this.clipNorm, weights[r]!));
    const n4 = n - (n % 4);
    for (let t = 0; t < n4; t += this.tile) {
      const len = Math.min(this.tile, n4 - t);
      for (let r = 0; r < rows.length; r++) k.axpy(DATA_PTR + 4 * t, this.slotPtr(r) + 4 * t, len >>> 2, factors[r]!);
    }
    if (n4 < n) {
      const acc = new Float32Array(k.memory.buffer, DATA_PTR, n);
      for (let r = 0; r < rows.length; r++) {
        const u = rows[r]!;
        const f = factors[r]!;
        for (let i = n4; i < n; i++) acc[i] = acc[i]! + Math.fround(f * u[i]!);
      }
    }
    sums.forEach((s, r) => {
      this.norms.push(Math.sqrt(s));
      if (isUnclipped(s, this.clipNorm)) this.unclipped++;
      this.weightSum += weights[r]!;
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
    void this.k;
    checkFinishOptions(opts);
    const acc = this.accView();
    const out = new Float32Array(this.length);
    const r = reciprocal(opts.denominator);
    if (opts.noiseStd === 0) {
      finishInto(out, acc, null, r);
    } else {
      const stream = new GaussianStream(this.length, opts.noiseStd, opts.random);
      const piece = new Float32Array(Math.min(this.length, 65536));
      for (let from = 0; from < this.length; from += piece.length) {
        const noise = piece.subarray(0, Math.min(piece.length, this.length - from));
        stream.fill(noise);
        finishInto(out, acc, noise, r, from);
      }
    }
    this.dispose();
    return out;
  }

  dispose(): void {
    this.kernels = null;
  }
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

/** Creates the cpu backend (synchronous work only; never fails for lack of hardware). */
export function createCpuBackend(options: CpuBackendOptions = {}): Backend {
  const batchSize = checkPositiveInt("batchSize", options.batchSize, 4);
  const tileLength = checkPositiveInt("tileLength", options.tileLength, 8192);
  let live = true;
  const alive = (): void => {
    if (!live) throw disposed("backend");
  };
  return {
    kind: "cpu",
    description: "cpu (WebAssembly SIMD + TypedArray loops)",
    async createAccumulator(opts: AccumulatorOptions): Promise<Accumulator> {
      alive();
      checkAccumulatorOptions(opts);
      return new CpuAccumulator(opts, batchSize, tileLength);
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
    async dispose(): Promise<void> {
      live = false;
    },
  };
}
