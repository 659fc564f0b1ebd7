/**
 * @module
 * Per-channel symmetric int8 weight quantization: the one definition shared by the ONNX exporter, the edge and the
 * gpu-node kernel (keep them identical).
 *
 * For a row-major weight `W[inFeatures][outFeatures]` (ONNX `MatMul` B layout, output channel `j` = column `j`):
 *
 *     s_j = max(fp32(max_i |W[i][j]| / 127), 2^-149)    (s_j = 1 when column j is all zero)
 *     q[i][j] = clamp(roundHalfAwayFromZero(W[i][j] / s_j), -127, 127)
 *     deq(q)[i][j] = fp32(q[i][j] · s_j)
 *
 * `fp32(·)` rounds to the nearest float32 (`Math.fround`). The quotient W/s_j is taken in float64: for float32 operands
 * (24-bit significands) float64 (53 ≥ 2·24 + 1 bits) cannot move a quotient onto or across a half-integer, so the
 * rounding decision is the one of the exact real quotient. A scale that would underflow to 0 is floored at the smallest
 * float32 subnormal 2^-149. -128 is never produced (symmetric range). These are exactly the rules of gpu-node's
 * reference (`gpu-node/src/math/math.ts` `quantScale`/`quantizeValue`); the e2e test checks both agree.
 * A column whose 127·s_j overflows float32 (|W| within 2^-24 of the float32 maximum) is refused with a RangeError.
 * Error bound: |W − deq(q)| ≤ s_j/2 (plus float32 rounding of the product).
 * This is the symmetric, zero-point-free scheme of Jacob et al. 2018 (arXiv:1712.05877, §2.1 with Z = 0) applied per
 * output channel (Krishnamoorthi 2018, arXiv:1806.08342, §2.2 "per-channel"), and what ONNX `DequantizeLinear` with
 * `axis = 1` and no zero point computes: `y = x · scale[j]`.
 */

/** Smallest positive float32 (the subnormal 2^-149). */
const F32_MIN_SUBNORMAL = 1.401298464324817e-45;

/** int8 values (same layout as the weight) and one float32 scale per output channel. */
export interface QuantizedInt8 {
  values: Int8Array;
  scales: Float32Array;
}

/** Round to the nearest integer, ties away from zero (`2.5 → 3`, `-2.5 → -3`), unlike `Math.round`. */
export function roundHalfAwayFromZero(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

function checkShape(length: number, inFeatures: number, outFeatures: number): void {
  if (!Number.isSafeInteger(inFeatures) || inFeatures <= 0)
    throw new RangeError(`inFeatures must be a positive integer, got ${inFeatures}`);
  if (!Number.isSafeInteger(outFeatures) || outFeatures <= 0) {
    throw new RangeError(`outFeatures must be a positive integer, got ${outFeatures}`);
  }
  if (length !== inFeatures * outFeatures) {
    throw new RangeError(`weight has ${length} values, expected ${inFeatures}×${outFeatures}`);
  }
}

/** Quantize `weight` (row-major `[inFeatures][outFeatures]`) per output channel. Throws on non-finite weights. */
export function quantizePerChannelInt8(weight: Float32Array, inFeatures: number, outFeatures: number): QuantizedInt8 {
  checkShape(weight.length, inFeatures, outFeatures);
  const maxAbs = new Float64Array(outFeatures);
  for (let i = 0; i < inFeatures; i++) {
    const row = i * outFeatures;
    for (let j = 0; j < outFeatures; j++) {
      const w = weight[row + j]!;
      if (!Number.isFinite(w)) throw new RangeError(`weight[${i}][${j}] is not finite (${w})`);
      const a = Math.abs(w);
      if (a > maxAbs[j]!) maxAbs[j] = a;
    }
  }
  const scales = new Float32Array(outFeatures);
  for (let j = 0; j < outFeatures; j++) {
    // An all-zero column gets scale 1 (every q is 0 either way); a scale that underflows is floored at 2^-149.
    scales[j] = maxAbs[j] === 0 ? 1 : Math.max(Math.fround(maxAbs[j]! / 127), F32_MIN_SUBNORMAL);
    // Near the float32 maximum, fp32(max/127) can round up so that 127·s overflows: refuse rather than dequantize to ∞.
    if (!Number.isFinite(Math.fround(127 * scales[j]!))) {
      throw new RangeError(`column ${j}: |weight| ${maxAbs[j]} is too large to quantize (127·scale overflows float32)`);
    }
  }
  const values = new Int8Array(weight.length);
  for (let i = 0; i < inFeatures; i++) {
    const row = i * outFeatures;
    for (let j = 0; j < outFeatures; j++) {
      const q = roundHalfAwayFromZero(weight[row + j]! / scales[j]!);
      values[row + j] = q > 127 ? 127 : q < -127 ? -127 : q;
    }
  }
  return { values, scales };
}

/** `fp32(q[i][j] · s_j)`, row-major `[inFeatures][outFeatures]`. */
export function dequantizePerChannelInt8(
  quantized: QuantizedInt8,
  inFeatures: number,
  outFeatures: number,
): Float32Array {
  const { values, scales } = quantized;
  checkShape(values.length, inFeatures, outFeatures);
  if (scales.length !== outFeatures) throw new RangeError(`${scales.length} scales, expected ${outFeatures}`);
  for (let j = 0; j < outFeatures; j++) {
    const s = scales[j]!;
    if (!(s > 0) || !Number.isFinite(s)) throw new RangeError(`scale[${j}] must be positive and finite, got ${s}`);
  }
  const out = new Float32Array(values.length);
  for (let i = 0; i < inFeatures; i++) {
    const row = i * outFeatures;
    for (let j = 0; j < outFeatures; j++) out[row + j] = values[row + j]! * scales[j]!;
  }
  return out;
}
