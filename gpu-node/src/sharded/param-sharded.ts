/**
 * @module
 * A `Backend` over K backends, each holding one contiguous slice of the parameter vector: what the aggregator does when
 * a model outgrows one GPU (docs/SCALE.md). Every round step splits by parameter range and needs only one small
 * exchange:
 *
 * 1. norm partials: each slice computes the squared norms of its part of every update, per norm block
 *    (`math.blockSumSquares`, 8 bytes per 65,536 parameters per update);
 * 2. one combine: the host adds the partials of an update in parameter order into ‖u‖², then the clip factor
 *    f = fround(w·min(1, C/‖u‖)) (DP-FedAvg FlatClip, McMahan et al. 2018, arXiv 1710.06963 Alg. 1), and hands f back
 *    to every slice, which accumulates acc ← acc + fround(f·u) over its range (an inner accumulator with C = ∞ and
 *    weight f: its own clip factor is then fround(f) = f);
 * 3. per-slice noise: each slice adds its part of the Gaussian noise vector N(0, σ²I) to its sum and divides. A
 *    Gaussian vector's coordinates are independent, so slices drawing their ranges separately release exactly the
 *    Gaussian mechanism of the single-node path (same σ = z·C, same sensitivity C: the clip used the whole norm).
 *
 * Identical results: when every slice boundary is a multiple of `NORM_BLOCK` (the slice plan chooses such boundaries
 * whenever the vector has at least K blocks), the partials are exactly the canonical block sums of `math.sumSquares`
 * and the combine adds them in the canonical order, so norms, clip factors, sums and (with an injected `random`, whose
 * noise is drawn as one `GaussianStream` over the whole vector and cut into the slices' ranges) the noisy results are
 * bit-identical to a single backend's. With a model smaller than K blocks the boundaries are multiples of 8 and a block
 * sum is split in two partials, so a norm can differ in its last bits: equal within float tolerance.
 *
 * Optimizer steps are per coordinate, so K inner optimizers over the slices give the single optimizer's weights.
 * The int8 export (`quantizePerChannelInt8`) is small and per output column: the first backend does it.
 * In this process the K backends run one after the other; on K GPUs each would be its own machine or device.
 */
import { blockSumSquares, clipFactor, GaussianStream, isUnclipped, NORM_BLOCK, NORM_LANES, normOk } from "../math.ts";
import {
  checkAccumulatorOptions,
  checkBatch,
  checkDelta,
  checkFinishOptions,
  checkOptimizerOptions,
  disposed,
  nonFinite,
  type Accumulator,
  type AccumulatorOptions,
  type AccumulatorStats,
  type Backend,
  type FinishOptions,
  type OptimizerOptions,
  type OptimizerState,
  type QuantizedInt8,
  type ServerOptimizer,
} from "../backend.ts";
import { BackendError } from "../errors.ts";

/** Options of {@link createParamShardedBackend}. */
export interface ParamShardedBackendOptions {
  /** One backend per parameter slice, in parameter order (at least 1). The sharded backend owns and disposes them. */
  shards: Backend[];
}

/** A half-open parameter range `[start, end)` of one slice. */
export interface ParamSlice {
  start: number;
  end: number;
}

/**
 * K contiguous, non-empty slices of `length` parameters: whole norm blocks split as evenly as possible when there are
 * at least K blocks (bit-identical results), else boundaries at multiples of 8 (the norm lanes).
 * @throws {BackendError} `invalid_argument` when `length` < K or K < 1.
 */
export function planParamSlices(length: number, shards: number): ParamSlice[] {
  if (!Number.isInteger(shards) || shards < 1)
    throw new BackendError("invalid_argument", `shards must be an integer >= 1, got ${shards}`);
  if (!Number.isInteger(length) || length < shards) {
    throw new BackendError("invalid_argument", `cannot cut ${length} parameters into ${shards} non-empty slices`);
  }
  const blocks = Math.ceil(length / NORM_BLOCK);
  const unit = blocks >= shards ? NORM_BLOCK : NORM_LANES;
  const units = Math.ceil(length / unit);
  const out: ParamSlice[] = [];
  let start = 0;
  for (let k = 0; k < shards; k++) {
    // Give each slice ⌊units/K⌋ or ⌈units/K⌉ units; a slice never starts past the end.
    const end = k === shards - 1 ? length : Math.min(length, Math.round(((k + 1) * units) / shards) * unit);
    if (end <= start) {
      // Fewer than K units of 8: fall back to single parameters for the rest.
      return Array.from({ length: shards }, (_, i) => ({
        start: Math.floor((i * length) / shards),
        end: Math.floor(((i + 1) * length) / shards),
      }));
    }
    out.push({ start, end });
    start = end;
  }
  return out;
}

class ShardedAccumulator implements Accumulator {
  readonly length: number;
  readonly clipNorm: number;
  private readonly slices: ParamSlice[];
  private readonly inner: Accumulator[];
  private readonly norms: number[] = [];
  private unclipped = 0;
  private weightSum = 0;
  private done = false;

  constructor(opts: AccumulatorOptions, slices: ParamSlice[], inner: Accumulator[]) {
    this.length = opts.length;
    this.clipNorm = opts.clipNorm;
    this.slices = slices;
    this.inner = inner;
  }

  /** Squared norm of `u` from its per-slice, per-block partials, added in parameter order. */
  private sumSquares(u: Float32Array): number {
    let total = 0;
    for (const { start, end } of this.slices) {
      for (let b = start; b < end; b += NORM_BLOCK) {
        total += blockSumSquares(u.subarray(b, Math.min(end, b + NORM_BLOCK)));
      }
    }
    return total;
  }

  async add(updates: readonly Float32Array[], weights?: readonly number[]): Promise<void> {
    if (this.done) throw disposed("accumulator");
    const w = checkBatch(this.length, updates, weights);
    if (updates.length === 0) return;
    // Norm partials and the combine for the whole batch first: a bad update changes nothing (atomic, like add).
    const sums = updates.map((u) => this.sumSquares(u));
    sums.forEach((s, k) => {
      if (!normOk(s)) throw nonFinite(k);
    });
    const factors = sums.map((s, k) => clipFactor(s, this.clipNorm, w[k]!));
    for (let i = 0; i < this.slices.length; i++) {
      const { start, end } = this.slices[i]!;
      await this.inner[i]!.add(
        updates.map((u) => u.subarray(start, end)),
        factors,
      );
    }
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
    if (this.done) throw disposed("accumulator");
    checkFinishOptions(opts);
    this.done = true;
    try {
      const out = new Float32Array(this.length);
      // One noise stream over the whole vector, each slice taking its range in order: the single backend's draws.
      const noise = opts.noiseStd > 0 ? new GaussianStream(this.length, opts.noiseStd, opts.random) : null;
      for (let i = 0; i < this.slices.length; i++) {
        const { start, end } = this.slices[i]!;
        const acc = this.inner[i]!;
        if (noise) {
          const part = new Float32Array(end - start);
          noise.fill(part);
          await acc.add([part], [1]); // acc ← fl32(acc + fl32(1·n)) = fl32(acc + n)
        }
        out.set(await acc.finish({ noiseStd: 0, denominator: opts.denominator }), start);
      }
      return out;
    } finally {
      this.dispose();
    }
  }

  dispose(): void {
    this.done = true;
    for (const a of this.inner) a.dispose();
  }
}

class ShardedOptimizer implements ServerOptimizer {
  readonly kind: ServerOptimizer["kind"];
  readonly length: number;
  private readonly slices: ParamSlice[];
  private readonly inner: ServerOptimizer[];

  constructor(kind: ServerOptimizer["kind"], length: number, slices: ParamSlice[], inner: ServerOptimizer[]) {
    this.kind = kind;
    this.length = length;
    this.slices = slices;
    this.inner = inner;
  }

  async step(delta: Float32Array): Promise<Float32Array> {
    checkDelta(this.length, delta);
    const out = new Float32Array(this.length);
    for (let i = 0; i < this.slices.length; i++) {
      const { start, end } = this.slices[i]!;
      out.set(await this.inner[i]!.step(delta.subarray(start, end)), start);
    }
    return out;
  }

  async state(): Promise<OptimizerState> {
    const parts = await Promise.all(this.inner.map((o) => o.state()));
    const cat = (pick: (s: OptimizerState) => Float32Array) => {
      const total = parts.reduce((n, s) => n + pick(s).length, 0);
      const out = new Float32Array(total);
      let at = 0;
      for (const s of parts) {
        out.set(pick(s), at);
        at += pick(s).length;
      }
      return out;
    };
    return {
      kind: this.kind,
      step: parts[0]!.step,
      weights: cat((s) => s.weights),
      m: cat((s) => s.m),
      v: cat((s) => s.v),
    };
  }

  async load(state: OptimizerState): Promise<void> {
    if (!state || state.kind !== this.kind || !(state.weights instanceof Float32Array)) {
      throw new BackendError("invalid_argument", `state is not a ${this.kind} optimizer state`);
    }
    if (state.weights.length !== this.length) {
      throw new BackendError("invalid_shape", `state.weights must be a Float32Array of ${this.length} values`);
    }
    const part = (a: Float32Array, { start, end }: ParamSlice) =>
      a.length === 0 ? new Float32Array(0) : a.subarray(start, end);
    for (let i = 0; i < this.slices.length; i++) {
      const s = this.slices[i]!;
      await this.inner[i]!.load({
        kind: state.kind,
        step: state.step,
        weights: part(state.weights, s),
        m: part(state.m, s),
        v: part(state.v, s),
      });
    }
  }

  dispose(): void {
    for (const o of this.inner) o.dispose();
  }
}

/** The parameter-sharded backend (see the module header). */
export function createParamShardedBackend(options: ParamShardedBackendOptions): Backend {
  const shards = options?.shards;
  if (!Array.isArray(shards) || shards.length < 1)
    throw new BackendError("invalid_argument", "shards must be a non-empty array of backends");
  const k = shards.length;
  return {
    kind: shards[0]!.kind,
    description: `${k} parameter slices (${shards.map((s) => s.description).join(" | ")})`,
    async createAccumulator(opts: AccumulatorOptions): Promise<Accumulator> {
      checkAccumulatorOptions(opts);
      const slices = planParamSlices(opts.length, k);
      const inner: Accumulator[] = [];
      try {
        for (let i = 0; i < k; i++) {
          const { start, end } = slices[i]!;
          inner.push(await shards[i]!.createAccumulator({ length: end - start, clipNorm: Infinity }));
        }
      } catch (e) {
        for (const a of inner) a.dispose();
        throw e;
      }
      return new ShardedAccumulator(opts, slices, inner);
    },
    async createOptimizer(opts: OptimizerOptions): Promise<ServerOptimizer> {
      checkOptimizerOptions(opts);
      const w = opts.initialWeights;
      const slices = planParamSlices(w.length, k);
      const inner: ServerOptimizer[] = [];
      try {
        for (let i = 0; i < k; i++) {
          const { start, end } = slices[i]!;
          inner.push(await shards[i]!.createOptimizer({ ...opts, initialWeights: w.subarray(start, end) }));
        }
      } catch (e) {
        for (const o of inner) o.dispose();
        throw e;
      }
      return new ShardedOptimizer(opts.kind, w.length, slices, inner);
    },
    quantizePerChannelInt8(weight: Float32Array, inFeatures: number, outFeatures: number): Promise<QuantizedInt8> {
      return shards[0]!.quantizePerChannelInt8(weight, inFeatures, outFeatures);
    },
    async dispose(): Promise<void> {
      await Promise.all(shards.map((s) => s.dispose()));
    },
  };
}
