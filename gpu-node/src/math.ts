/**
 * @module
 * Pure reference math of gpu-node (no I/O, no clock, randomness injected): the canonical arithmetic both backends
 * implement (see `backend.ts`). Plain TypedArray loops, written for clarity; the cpu backend runs the hot loops in
 * WebAssembly SIMD with bit-identical results, and tests check it against these functions.
 *
 * Formulas and sources:
 * - Clipping: u ← u·min(1, C/‖u‖₂) (McMahan et al. 2018, arXiv 1710.06963 Alg. 1, FlatClip).
 * - Adaptive-clipping statistic: b = 1[‖u‖ ≤ C] (Andrew et al. 2021, arXiv 1905.03871 Alg. 1).
 * - Server optimizers: Reddi et al. 2020, arXiv 2003.00295 Alg. 2 (FedAdam, FedYogi, no bias correction,
 *   v₋₁ = τ²); FedAvgM: Hsu, Qi & Brown 2019, arXiv 1909.06335 §3 (m ← μ·m + Δ, x ← x + η·m).
 * - int8: symmetric per-channel quantization (Krishnamoorthi 2018, arXiv 1806.08342 §2.1/§2.2).
 */
import { fillGaussian, type RandomBytes } from "@fedge/privacy";
import type { OptimizerParams } from "./backend.ts";

/** Largest finite float32. A squared norm above it is treated as non-finite (the device accumulates in float32). */
export const F32_MAX = 3.4028234663852886e38;

/** Number of interleaved float64 lanes of {@link sumSquares}: element i goes to lane i mod 8. */
export const NORM_LANES = 8;

/** Adds x[i]² (float64) to `lanes[i mod 8]` for every i, in index order. */
export function addSquaresToLanes(x: Float32Array, lanes: Float64Array, from = 0): void {
  for (let i = from; i < x.length; i++) {
    const v = x[i]!;
    lanes[i & 7] = lanes[i & 7]! + v * v;
  }
}

/** Combines the 8 lanes in a fixed tree: ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)). */
export function combineLanes(l: Float64Array): number {
  return l[0]! + l[1]! + (l[2]! + l[3]!) + (l[4]! + l[5]! + (l[6]! + l[7]!));
}

/**
 * Elements per norm block: the vector is cut into blocks of 65,536 elements (the last may be shorter), each block's
 * squared norm is computed on its own (8 lanes from zero, {@link combineLanes}) and the block sums are added in float64
 * in block order. The order depends only on the length, never on how many threads share the blocks.
 */
export const NORM_BLOCK = 65536;

/** Squared norm of one block `x` (at most {@link NORM_BLOCK} elements): 8 lanes from zero, combined. */
export function blockSumSquares(x: Float32Array): number {
  const lanes = new Float64Array(NORM_LANES);
  addSquaresToLanes(x, lanes);
  return combineLanes(lanes);
}

/**
 * ‖x‖₂² in float64 with the canonical order (the square of a float32 is exact in float64): per block of
 * {@link NORM_BLOCK} elements 8 interleaved lanes, combined; then the block sums left to right.
 */
export function sumSquares(x: Float32Array): number {
  let total = 0;
  for (let b = 0; b < x.length; b += NORM_BLOCK) {
    total += blockSumSquares(x.subarray(b, Math.min(x.length, b + NORM_BLOCK)));
  }
  return total;
}

/** Whether an update with this squared norm is left unclipped (‖u‖ ≤ C). */
export function isUnclipped(sumSq: number, clipNorm: number): boolean {
  return Math.sqrt(sumSq) <= clipNorm;
}

/** f = fround(w · min(1, C/‖u‖)), computed in float64 and rounded once. A zero update gets f = fround(w). */
export function clipFactor(sumSq: number, clipNorm: number, weight: number): number {
  const norm = Math.sqrt(sumSq);
  return Math.fround(norm > clipNorm ? weight * (clipNorm / norm) : weight);
}

/** Whether a squared norm is acceptable (finite and representable in float32). */
export function normOk(sumSq: number): boolean {
  return sumSq <= F32_MAX; // false for NaN too
}

/** acc_i ← fl32(acc_i + fl32(f·u_i)) over [from, to). `f` must be a float32 value. */
export function axpy(acc: Float32Array, u: Float32Array, f: number, from = 0, to = acc.length): void {
  for (let i = from; i < to; i++) acc[i] = acc[i]! + Math.fround(f * u[i]!);
}

/** out_i = fl32(fl32(acc_i + noise_i) · r) (or fl32(acc_i · r) without noise), r = fround(1/denominator). */
export function finishInto(
  out: Float32Array,
  acc: Float32Array,
  noise: Float32Array | null,
  recip: number,
  from = 0,
): void {
  if (noise) for (let i = 0; i < noise.length; i++) out[from + i] = Math.fround(acc[from + i]! + noise[i]!) * recip;
  else for (let i = from; i < out.length; i++) out[i] = acc[i]! * recip;
}

/** The float32 reciprocal both backends multiply by. */
export function reciprocal(denominator: number): number {
  return Math.fround(1 / denominator);
}

/**
 * Float32 Gaussian noise for a vector of `length`, served in order in pieces of any size. Values come from
 * `fillGaussian` of @fedge/privacy in blocks of a size that depends only on `length`, so both backends draw exactly
 * the same noise from the same byte source whatever their chunking: the block sizes (multiples of 8,192 values, except
 * when the whole vector fits in one block) and so the bytes each block consumes depend only on `length` and the stream.
 */
export class GaussianStream {
  private readonly block: Float32Array;
  private readonly std: number;
  private readonly random: RandomBytes | undefined;
  private pos: number;

  constructor(length: number, std: number, random?: RandomBytes) {
    this.block = new Float32Array(Math.min(65536, length + (length & 1)));
    this.std = std;
    this.random = random;
    this.pos = this.block.length;
  }

  /** Fills `out` with the next `out.length` noise values. */
  fill(out: Float32Array): void {
    let off = 0;
    while (off < out.length) {
      if (this.pos === this.block.length) {
        if (this.random) fillGaussian(this.block, this.std, this.random);
        else fillGaussian(this.block, this.std);
        this.pos = 0;
      }
      const n = Math.min(out.length - off, this.block.length - this.pos);
      out.set(this.block.subarray(this.pos, this.pos + n), off);
      this.pos += n;
      off += n;
    }
  }
}

/** Host optimizer state (float32 storage). */
export interface OptimizerArrays {
  weights: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

/**
 * One server step, float64 arithmetic per element, float32 storage (arXiv 2003.00295 Alg. 2 lines 11–15;
 * arXiv 1909.06335 for momentum SGD). Δ is the averaged client update (a negative gradient).
 */
export function optimizerStep(p: OptimizerParams, s: OptimizerArrays, delta: Float32Array): void {
  const { weights: x, m, v } = s;
  const n = x.length;
  if (p.kind === "sgd") {
    if (p.momentum === 0) {
      for (let i = 0; i < n; i++) x[i] = x[i]! + p.lr * delta[i]!;
      return;
    }
    for (let i = 0; i < n; i++) {
      const mi = p.momentum * m[i]! + delta[i]!;
      m[i] = mi;
      x[i] = x[i]! + p.lr * Math.fround(mi);
    }
    return;
  }
  const yogi = p.kind === "yogi";
  for (let i = 0; i < n; i++) {
    const d = delta[i]!;
    const mi = Math.fround(p.beta1 * m[i]! + (1 - p.beta1) * d);
    const d2 = d * d;
    const vPrev = v[i]!;
    const vi = Math.fround(
      yogi ? vPrev - (1 - p.beta2) * d2 * Math.sign(vPrev - d2) : p.beta2 * vPrev + (1 - p.beta2) * d2,
    );
    m[i] = mi;
    v[i] = vi;
    x[i] = x[i]! + (p.lr * mi) / (Math.sqrt(vi) + p.epsilon);
  }
}

/** Fresh optimizer state: m = 0, v = τ² (Alg. 2 initialisation v₋₁ ≥ τ²); m/v empty when unused. */
export function initialOptimizerArrays(p: OptimizerParams, initialWeights: Float32Array): OptimizerArrays {
  const n = initialWeights.length;
  const usesM = p.kind !== "sgd" || p.momentum > 0;
  const usesV = p.kind !== "sgd";
  const v = new Float32Array(usesV ? n : 0);
  v.fill(p.epsilon * p.epsilon);
  return { weights: initialWeights.slice(), m: new Float32Array(usesM ? n : 0), v };
}

/** Smallest positive float32 (subnormal 2⁻¹⁴⁹). */
const F32_MIN_SUBNORMAL = 1.401298464324817e-45;

/** scale_j from max_i |W[i][j]|: fround(absmax/127); 1 for an all-zero column; never below 2⁻¹⁴⁹. */
export function quantScale(absmax: number): number {
  if (absmax === 0) return 1;
  return Math.max(Math.fround(absmax / 127), F32_MIN_SUBNORMAL);
}

/** clamp(round_half_away_from_zero(w/s), −127, 127); w/s in float64 decides exactly (see test for the argument). */
export function quantizeValue(w: number, s: number): number {
  const y = w / s;
  const r = y < 0 ? -Math.floor(-y + 0.5) : Math.floor(y + 0.5);
  return r > 127 ? 127 : r < -127 ? -127 : r;
}

/** Column absmax of row-major `[rows][cols]` W. */
export function columnAbsMax(weight: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(cols);
  for (let i = 0; i < rows; i++) {
    const base = i * cols;
    for (let j = 0; j < cols; j++) {
      const a = Math.abs(weight[base + j]!);
      if (a > out[j]!) out[j] = a;
    }
  }
  return out;
}

/** The reference per-output-channel int8 quantization of row-major `[inFeatures][outFeatures]` W. */
export function quantizePerChannelInt8(
  weight: Float32Array,
  inFeatures: number,
  outFeatures: number,
): { values: Int8Array; scales: Float32Array } {
  const absmax = columnAbsMax(weight, inFeatures, outFeatures);
  const scales = new Float32Array(outFeatures);
  for (let j = 0; j < outFeatures; j++) scales[j] = quantScale(absmax[j]!);
  const values = new Int8Array(weight.length);
  for (let i = 0; i < inFeatures; i++) {
    const base = i * outFeatures;
    for (let j = 0; j < outFeatures; j++) values[base + j] = quantizeValue(weight[base + j]!, scales[j]!);
  }
  return { values, scales };
}
