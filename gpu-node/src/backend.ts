/**
 * @module
 * The `Backend` contract the aggregator uses for one round, implemented twice with the same results: `cpu`
 * (TypedArray loops + a WebAssembly SIMD hot loop, the exact reference) and `webgpu` (WGSL kernels through Dawn).
 *
 * One round:
 * 1. `createAccumulator({ length, clipNorm })`, then `add(batch)` any number of times: each update u_k is clipped to
 *    L2 norm C and weighted, `acc ← acc + w_k·min(1, C/‖u_k‖)·u_k` (DP-FedAvg, McMahan et al. 2018, arXiv 1710.06963
 *    Alg. 1 "FlatClip"); `stats()` reports the norms and the unclipped count Σ 1[‖u_k‖ ≤ C] that adaptive clipping
 *    needs (Andrew et al. 2021, arXiv 1905.03871 Alg. 1, b_t).
 * 2. `finish({ noiseStd, denominator })`: `(acc + N(0, noiseStd²·I)) / denominator` with the noise from a CSPRNG
 *    (the Gaussian mechanism on the clipped sum; the denominator is the expected number of clients qN, fixed, as in
 *    arXiv 1710.06963 §2 "fixed-denominator estimator").
 * 3. `ServerOptimizer.step(Δ)` applies the averaged update as a pseudo-gradient (Reddi et al. 2020, arXiv 2003.00295
 *    Alg. 2, where Δ is the negative of a gradient, so SGD is `x ← x + η·Δ`); its state stays on the device.
 * 4. `quantizePerChannelInt8(W)` for the int8 export.
 *
 * ## Canonical arithmetic (what "identical results" means)
 * - Squared norm: float64 sum of float32 squares. The cpu backend's order is fixed and independent of its thread
 *   count (see `math.sumSquares`): the vector is cut into blocks of 65,536 elements (`math.NORM_BLOCK`), each block
 *   is summed in 8 interleaved lanes from zero and combined in a fixed tree, and the block sums are added in block
 *   order (threads compute whole blocks; the host adds them). The webgpu backend sums float32 squares with Kahan
 *   compensation into 4,096 partials per update and chunk on the device (16 contiguous segments × 64 invocations × 4
 *   lanes) and the host adds the partials in float64, so its norms agree within a relative 2⁻¹⁹ (stated tolerance).
 * - Clip factor: `f_k = fround(w_k · min(1, C/‖u_k‖))`, computed on the host in float64 by both backends.
 * - Accumulate: `acc_i ← fl32(acc_i + fl32(f_k·u_k,i))` in arrival order; exact in both backends given the same f_k.
 * - Finish: `out_i = fl32(fl32(acc_i + n_i) · fl32(1/denominator))` with the same float32 noise n_i (multiplication
 *   by the rounded reciprocal, because WGSL division is not correctly rounded; it differs from a true division by at
 *   most one ulp). With an injected `random`, n_i = fl32(σ·z_i) from `math.GaussianStream` in its canonical order, so
 *   both backends give identical noisy results from the same bytes; with the default crypto.getRandomValues the cpu
 *   backend draws the same distribution in parallel, each thread for its own blocks (no order to reproduce), and, when
 *   the accumulator was opened with the round's σ (`noiseStd`), while the updates are still being added.
 * - Quantize: exact in both (integer arithmetic on the device).
 * - Optimizers: float64 on cpu, float32 on webgpu; agree within a relative 1e-5 (stated tolerance).
 */
import type { RandomBytes } from "@fedge/privacy";
import { BackendError } from "./errors.ts";

export type BackendKind = "webgpu" | "cpu";

/** Options of {@link Backend.createAccumulator}. */
export interface AccumulatorOptions {
  /** Number of float32 parameters of every update (the trainable layout length, `model-layout.trainableLength`). */
  length: number;
  /** L2 clipping norm C > 0 (`Infinity` disables clipping). */
  clipNorm: number;
  /**
   * The σ that `finish` will add, when it is known at open (DP-FedAvg knows it from the round's plan: σ = z·C). With
   * σ > 0 the cpu backend draws the noise n_i = fl32(σ·z_i) from crypto.getRandomValues on its worker threads while
   * the updates are added, so `finish` only adds it: the round's noise costs almost no time of its own. Results are
   * unchanged: a `finish` with another σ or with an injected `random` draws its noise afresh (the early draws are
   * discarded, never reused), and one that is never called wastes them. Ignored where it does not help (webgpu, one
   * thread, short vectors).
   * @default 0 (no early draws)
   */
  noiseStd?: number;
  /**
   * A hint that `finish` will add noise (σ > 0) from the default source while σ is not known yet: the cpu backend
   * then draws standard normals (float64, 8 bytes per parameter) in the background and scales them in `finish`.
   * Prefer {@link noiseStd} when σ is known (4 bytes per parameter, nothing left to scale). Ignored where it does not
   * help, and when `noiseStd` is given.
   * @default false
   */
  expectNoise?: boolean;
}

/** Statistics of the updates added so far (all of them, across `add` calls). */
export interface AccumulatorStats {
  /** Number of updates accumulated. */
  count: number;
  /** Number of updates with ‖u‖ ≤ C, i.e. left unclipped (Andrew et al. 2021, arXiv 1905.03871 §2.1, the b_t count). */
  unclippedCount: number;
  /** Sum of the weights w_k. */
  weightSum: number;
  /** ‖u_k‖₂ of every update, in arrival order (float64; see the module header for the tolerance across backends). */
  norms: number[];
}

/** Options of {@link Accumulator.finish}. */
export interface FinishOptions {
  /** Standard deviation σ of the Gaussian noise added to every coordinate of the clipped sum (σ = z·C); 0 for none. */
  noiseStd: number;
  /** The divisor, > 0: the expected number of clients (q·N) for DP-FedAvg, or the weight sum for plain FedAvg. */
  denominator: number;
  /**
   * CSPRNG the noise is drawn from.
   * @default cryptoRandomBytes (crypto.getRandomValues)
   */
  random?: RandomBytes;
}

/** Clip-and-accumulate state of one round; lives on the backend's device. */
export interface Accumulator {
  readonly length: number;
  readonly clipNorm: number;
  /**
   * Clips, weights and adds a batch of updates (K ≥ 1 of any size; the backend splits it into dispatches of its batch
   * size). Atomic: if any update has the wrong length or a non-finite value (or a squared norm that overflows float32),
   * it throws a `BackendError` (`invalid_type` / `invalid_shape` / `non_finite`) and nothing is added.
   * @param weights per-update weights w_k ≥ 0, finite @default 1 for every update
   */
  add(updates: readonly Float32Array[], weights?: readonly number[]): Promise<void>;
  stats(): AccumulatorStats;
  /** Adds the noise, divides, returns the result and releases the accumulator (further calls throw). */
  finish(opts: FinishOptions): Promise<Float32Array>;
  /** Releases the accumulator without a result. Idempotent. */
  dispose(): void;
}

export type OptimizerKind = "sgd" | "adam" | "yogi";

/** Options of {@link Backend.createOptimizer} (Reddi et al. 2020, arXiv 2003.00295 Alg. 2; FedAvgM: Hsu et al. 2019, arXiv 1909.06335). */
export interface OptimizerOptions {
  /** `sgd` (FedAvg / FedAvgM with momentum), `adam` (FedAdam) or `yogi` (FedYogi). */
  kind: OptimizerKind;
  /** Server learning rate η > 0. */
  lr: number;
  /** Initial global weights x₀ (copied); their length is the parameter count. */
  initialWeights: Float32Array;
  /**
   * Momentum μ ∈ [0, 1) for `sgd`: m ← μ·m + Δ; x ← x + η·m (μ = 0 and η = 1 is plain FedAvg).
   * @default 0
   */
  momentum?: number;
  /**
   * β₁ ∈ [0, 1) for adam/yogi: m ← β₁·m + (1 − β₁)·Δ.
   * @default 0.9
   */
  beta1?: number;
  /**
   * β₂ ∈ [0, 1) for adam/yogi: v ← β₂·v + (1 − β₂)·Δ² (adam) or v ← v − (1 − β₂)·Δ²·sign(v − Δ²) (yogi).
   * @default 0.99
   */
  beta2?: number;
  /**
   * τ > 0, the adaptivity: x ← x + η·m / (√v + τ). v starts at τ² (Alg. 2: v₋₁ ≥ τ²). No bias correction (as Alg. 2).
   * @default 1e-3
   */
  epsilon?: number;
}

/** Serializable optimizer state (for checkpoints). `m`/`v` are empty when the kind does not use them. */
export interface OptimizerState {
  kind: OptimizerKind;
  /** Number of steps taken. */
  step: number;
  weights: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

/** A server optimizer whose weights and moments stay on the device between rounds. */
export interface ServerOptimizer {
  readonly kind: OptimizerKind;
  readonly length: number;
  /** Applies one step with the averaged update Δ (a pseudo-gradient pointing downhill) and returns the new weights. */
  step(delta: Float32Array): Promise<Float32Array>;
  /** Copies the state back to the host. */
  state(): Promise<OptimizerState>;
  /** Replaces the state (kind and length must match; validated, then copied). */
  load(state: OptimizerState): Promise<void>;
  dispose(): void;
}

/** Per-output-channel symmetric int8 weights. */
export interface QuantizedInt8 {
  /** Row-major `[inFeatures][outFeatures]`, like the float weight. */
  values: Int8Array;
  /** One scale per output channel j (column j); W ≈ values·scale. */
  scales: Float32Array;
}

/** What the aggregator uses; see the module header. */
export interface Backend {
  readonly kind: BackendKind;
  /** Human-readable description (adapter name for webgpu). */
  readonly description: string;
  createAccumulator(opts: AccumulatorOptions): Promise<Accumulator>;
  createOptimizer(opts: OptimizerOptions): Promise<ServerOptimizer>;
  /**
   * Symmetric per-output-channel int8: scale_j = max_i |W[i][j]| / 127 (rounded to float32; 1 if column j is all
   * zeros, so it dequantizes to zeros; at least 2⁻¹⁴⁹ so it is never 0), q = clamp(round_half_away_from_zero(W/scale_j),
   * −127, 127) with the exact quotient. `weight` is row-major `[inFeatures][outFeatures]` (@fedge/ml model layout).
   */
  quantizePerChannelInt8(weight: Float32Array, inFeatures: number, outFeatures: number): Promise<QuantizedInt8>;
  dispose(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------------
// Validation shared by both implementations (so both throw the same errors on the same bad input).

function bad(message: string): BackendError {
  return new BackendError("invalid_argument", message);
}

/** Largest length any backend accepts (2^31 − 1 elements would not fit typed-array indexing in one buffer). */
export const MAX_LENGTH = 2 ** 30;

export function checkAccumulatorOptions(opts: AccumulatorOptions): void {
  if (!opts || typeof opts !== "object") throw bad("accumulator options must be an object");
  const { length, clipNorm } = opts;
  if (!Number.isInteger(length) || length < 1 || length > MAX_LENGTH) {
    throw bad(`length must be an integer in [1, ${MAX_LENGTH}], got ${String(length)}`);
  }
  if (typeof clipNorm !== "number" || Number.isNaN(clipNorm) || clipNorm <= 0) {
    throw bad(`clipNorm must be a number > 0, got ${String(clipNorm)}`);
  }
  if (
    opts.noiseStd !== undefined &&
    (typeof opts.noiseStd !== "number" || !Number.isFinite(opts.noiseStd) || opts.noiseStd < 0)
  ) {
    throw bad(`noiseStd must be a finite number >= 0, got ${String(opts.noiseStd)}`);
  }
  if (opts.expectNoise !== undefined && typeof opts.expectNoise !== "boolean") {
    throw bad(`expectNoise must be a boolean, got ${String(opts.expectNoise)}`);
  }
}

/** Checks shapes and weights of an `add` call; returns the weights (default 1). Values are checked by the norm pass. */
export function checkBatch(length: number, updates: readonly Float32Array[], weights?: readonly number[]): number[] {
  if (!Array.isArray(updates)) throw bad("updates must be an array of Float32Array");
  updates.forEach((u, k) => {
    if (!(u instanceof Float32Array)) throw new BackendError("invalid_type", `update ${k} is not a Float32Array`);
    if (u.length !== length) {
      throw new BackendError("invalid_shape", `update ${k} has ${u.length} values, expected ${length}`);
    }
  });
  if (weights === undefined) return updates.map(() => 1);
  if (!Array.isArray(weights) || weights.length !== updates.length) {
    throw bad(`weights must be an array of ${updates.length} numbers`);
  }
  weights.forEach((w, k) => {
    if (typeof w !== "number" || !Number.isFinite(w) || w < 0) {
      throw bad(`weight ${k} must be a finite number >= 0, got ${String(w)}`);
    }
  });
  return [...weights];
}

export function nonFinite(k: number): BackendError {
  return new BackendError("non_finite", `update ${k} has a non-finite value (or its squared norm overflows float32)`);
}

export function checkFinishOptions(opts: FinishOptions): void {
  if (!opts || typeof opts !== "object") throw bad("finish options must be an object");
  if (typeof opts.noiseStd !== "number" || !Number.isFinite(opts.noiseStd) || opts.noiseStd < 0) {
    throw bad(`noiseStd must be a finite number >= 0, got ${String(opts.noiseStd)}`);
  }
  if (typeof opts.denominator !== "number" || !Number.isFinite(opts.denominator) || opts.denominator <= 0) {
    throw bad(`denominator must be a finite number > 0, got ${String(opts.denominator)}`);
  }
  if (opts.random !== undefined && typeof opts.random !== "function") throw bad("random must be a function");
}

/** Resolved optimizer hyper-parameters. */
export interface OptimizerParams {
  kind: OptimizerKind;
  lr: number;
  momentum: number;
  beta1: number;
  beta2: number;
  epsilon: number;
}

export function checkOptimizerOptions(opts: OptimizerOptions): OptimizerParams {
  if (!opts || typeof opts !== "object") throw bad("optimizer options must be an object");
  if (opts.kind !== "sgd" && opts.kind !== "adam" && opts.kind !== "yogi") {
    throw bad(`kind must be "sgd", "adam" or "yogi", got ${String(opts.kind)}`);
  }
  const p: OptimizerParams = {
    kind: opts.kind,
    lr: opts.lr,
    momentum: opts.momentum ?? 0,
    beta1: opts.beta1 ?? 0.9,
    beta2: opts.beta2 ?? 0.99,
    epsilon: opts.epsilon ?? 1e-3,
  };
  if (typeof p.lr !== "number" || !Number.isFinite(p.lr) || p.lr <= 0)
    throw bad(`lr must be a finite number > 0, got ${String(p.lr)}`);
  for (const name of ["momentum", "beta1", "beta2"] as const) {
    const v = p[name];
    if (typeof v !== "number" || !(v >= 0 && v < 1)) throw bad(`${name} must be in [0, 1), got ${String(v)}`);
  }
  if (typeof p.epsilon !== "number" || !Number.isFinite(p.epsilon) || p.epsilon <= 0) {
    throw bad(`epsilon must be a finite number > 0, got ${String(p.epsilon)}`);
  }
  const w = opts.initialWeights;
  if (!(w instanceof Float32Array) || w.length < 1 || w.length > MAX_LENGTH) {
    throw bad("initialWeights must be a non-empty Float32Array");
  }
  checkFinite(w, "initialWeights");
  return p;
}

export function checkDelta(length: number, delta: Float32Array): void {
  if (!(delta instanceof Float32Array)) throw new BackendError("invalid_type", "delta must be a Float32Array");
  if (delta.length !== length)
    throw new BackendError("invalid_shape", `delta has ${delta.length} values, expected ${length}`);
  checkFinite(delta, "delta");
}

/** Checks a state to load; `uses` says which moments this optimizer keeps (unused ones must be empty). */
export function checkState(
  kind: OptimizerKind,
  length: number,
  s: OptimizerState,
  uses: { m: boolean; v: boolean },
): void {
  if (!s || typeof s !== "object") throw bad("state must be an object");
  if (s.kind !== kind) throw bad(`state is for "${String(s.kind)}", this optimizer is "${kind}"`);
  if (!Number.isInteger(s.step) || s.step < 0) throw bad(`state.step must be an integer >= 0, got ${String(s.step)}`);
  for (const name of ["weights", "m", "v"] as const) {
    const a = s[name];
    const want = name === "weights" || uses[name] ? length : 0;
    if (!(a instanceof Float32Array) || a.length !== want) {
      throw new BackendError("invalid_shape", `state.${name} must be a Float32Array of ${want} values`);
    }
    checkFinite(a, `state.${name}`);
  }
}

export function checkQuantizeInput(weight: Float32Array, inFeatures: number, outFeatures: number): void {
  if (!(weight instanceof Float32Array)) throw bad("weight must be a Float32Array");
  if (!Number.isInteger(inFeatures) || inFeatures < 1 || !Number.isInteger(outFeatures) || outFeatures < 1) {
    throw bad(`inFeatures and outFeatures must be integers >= 1, got ${String(inFeatures)}×${String(outFeatures)}`);
  }
  if (weight.length !== inFeatures * outFeatures) {
    throw new BackendError(
      "invalid_shape",
      `weight has ${weight.length} values, expected ${inFeatures}×${outFeatures}`,
    );
  }
  checkFinite(weight, "weight");
}

export function checkFinite(a: Float32Array, name: string): void {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    if (x - x !== 0) throw new BackendError("non_finite", `${name}[${i}] is not finite`);
  }
}

export function disposed(what: string): BackendError {
  return new BackendError("disposed", `${what} was already finished or disposed`);
}
