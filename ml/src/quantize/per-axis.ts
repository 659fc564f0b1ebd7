/**
 * @module
 * Per-axis int8 quantization of an N-D float32 tensor, and uint8 parameters of a calibrated activation range.
 *
 * Weights, per channel c along `axis` (Krishnamoorthi 2018, arXiv:1806.08342, §2.2 "per-channel"):
 *
 * - symmetric (the rules of `quantize.ts`, Jacob et al. 2018, arXiv:1712.05877 §2.1 with Z = 0):
 *   s_c = max(fp32(max|w| / 127), 2^-149) (1 for an all-zero channel), q = clamp(round(w / s_c), -127, 127);
 *   `DequantizeLinear(q, s)` = q · s_c.
 * - asymmetric (§2.1 with a zero point): lo = min(0, min w), hi = max(0, max w), s_c = fp32((hi − lo) / 255),
 *   z_c = clamp(round(−128 − lo / s_c), −128, 127), q = clamp(round(w / s_c) + z_c, −128, 127);
 *   `DequantizeLinear(q, s, z)` = (q − z_c) · s_c. Including 0 in [lo, hi] keeps 0 exact (padding, ReLU zeros).
 *
 * Rounding is half away from zero (`roundHalfAwayFromZero`), as in `quantize.ts`. Error bound: |w − deq(q)| ≤ s_c/2.
 *
 * Activations (static, uint8, what ONNX `QuantizeLinear` with a uint8 zero point computes):
 * lo = min(0, min), hi = max(0, max), s = fp32((hi − lo) / 255), z = clamp(round(−lo / s), 0, 255).
 */
import { roundHalfAwayFromZero } from "./quantize.ts";

/** Smallest positive float32 (the subnormal 2^-149). */
const F32_MIN_SUBNORMAL = 1.401298464324817e-45;

export interface QuantizedPerAxis {
  /** int8 values, same layout as the input. */
  values: Int8Array;
  /** One float32 scale per channel. */
  scales: Float32Array;
  /** One int8 zero point per channel (asymmetric only). */
  zeroPoints?: Int8Array;
}

/** Inclusive `[min, max]` of an activation seen during calibration. */
export type ActivationRange = readonly [number, number];

function channelIndex(dims: readonly number[], axis: number): { channels: number; inner: number; outer: number } {
  if (!Number.isInteger(axis) || axis < 0 || axis >= dims.length) {
    throw new RangeError(`axis ${axis} is outside a tensor of rank ${dims.length}`);
  }
  const channels = dims[axis]!;
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  return { channels, inner, outer };
}

/** Quantize `values` (row-major `dims`) per channel along `axis`. Throws `RangeError` on non-finite values. */
export function quantizePerAxis(
  values: Float32Array,
  dims: readonly number[],
  axis: number,
  mode: "symmetric" | "asymmetric",
): QuantizedPerAxis {
  const { channels, inner, outer } = channelIndex(dims, axis);
  if (values.length !== channels * inner * outer) {
    throw new RangeError(`${values.length} values do not fill dims [${dims.join(", ")}]`);
  }
  const lo = new Float64Array(channels);
  const hi = new Float64Array(channels);
  const channelOf = (i: number) => Math.floor(i / inner) % channels;
  for (let i = 0; i < values.length; i++) {
    const w = values[i]!;
    if (!Number.isFinite(w)) throw new RangeError(`value ${i} is not finite (${w})`);
    const c = channelOf(i);
    if (w < lo[c]!) lo[c] = w;
    if (w > hi[c]!) hi[c] = w;
  }
  const scales = new Float32Array(channels);
  const out = new Int8Array(values.length);
  if (mode === "symmetric") {
    for (let c = 0; c < channels; c++) {
      const m = Math.max(-lo[c]!, hi[c]!);
      scales[c] = m === 0 ? 1 : Math.max(Math.fround(m / 127), F32_MIN_SUBNORMAL);
      if (!Number.isFinite(Math.fround(127 * scales[c]!))) {
        throw new RangeError(`channel ${c}: |value| ${m} is too large to quantize`);
      }
    }
    for (let i = 0; i < values.length; i++) {
      const q = roundHalfAwayFromZero(values[i]! / scales[channelOf(i)]!);
      out[i] = q > 127 ? 127 : q < -127 ? -127 : q;
    }
    return { values: out, scales };
  }
  const zeroPoints = new Int8Array(channels);
  for (let c = 0; c < channels; c++) {
    const span = hi[c]! - lo[c]!;
    scales[c] = span === 0 ? 1 : Math.max(Math.fround(span / 255), F32_MIN_SUBNORMAL);
    if (!Number.isFinite(Math.fround(255 * scales[c]!))) {
      throw new RangeError(`channel ${c}: range ${span} is too large to quantize`);
    }
    const z = roundHalfAwayFromZero(-128 - lo[c]! / scales[c]!);
    zeroPoints[c] = z > 127 ? 127 : z < -128 ? -128 : z;
  }
  for (let i = 0; i < values.length; i++) {
    const c = channelOf(i);
    const q = roundHalfAwayFromZero(values[i]! / scales[c]!) + zeroPoints[c]!;
    out[i] = q > 127 ? 127 : q < -128 ? -128 : q;
  }
  return { values: out, scales, zeroPoints };
}

/** `fp32((q − z) · s)` per channel: what `DequantizeLinear` computes. */
export function dequantizePerAxis(q: QuantizedPerAxis, dims: readonly number[], axis: number): Float32Array {
  const { channels, inner } = channelIndex(dims, axis);
  const out = new Float32Array(q.values.length);
  for (let i = 0; i < out.length; i++) {
    const c = Math.floor(i / inner) % channels;
    out[i] = (q.values[i]! - (q.zeroPoints?.[c] ?? 0)) * q.scales[c]!;
  }
  return out;
}

/** uint8 scale and zero point of a calibrated activation range. */
export function activationQParams(range: ActivationRange): { scale: number; zeroPoint: number } {
  const [min, max] = range;
  if (!Number.isFinite(min) || !Number.isFinite(max) || min > max) {
    throw new RangeError(`activation range [${min}, ${max}] must be finite with min <= max`);
  }
  const lo = Math.min(0, min);
  const hi = Math.max(0, max);
  const scale = hi === lo ? 1 : Math.max(Math.fround((hi - lo) / 255), F32_MIN_SUBNORMAL);
  const z = roundHalfAwayFromZero(-lo / scale);
  return { scale, zeroPoint: z < 0 ? 0 : z > 255 ? 255 : z };
}

/** Widen `range` to cover every finite value of `data` (a calibration step). */
export function extendRange(range: ActivationRange | undefined, data: ArrayLike<number>): ActivationRange {
  let lo = range?.[0] ?? Number.POSITIVE_INFINITY;
  let hi = range?.[1] ?? Number.NEGATIVE_INFINITY;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}
