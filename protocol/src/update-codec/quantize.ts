/**
 * @module
 * Symmetric per-tensor int8 quantization of an update, and its inverse.
 *
 * q_i = R(v_i / s) with s ≈ max_i |v_i| / 127 (zero point 0, the symmetric linear quantizer of Jacob et al. 2018,
 * arXiv 1712.05877 §2.1), clamped to −127..127, where R is one of
 * - round half away from zero (deterministic; |v_i − q_i·s| ≤ s/2), or
 * - stochastic rounding with a CSPRNG: q_i = ⌊x⌋ + 1[u < x − ⌊x⌋], u uniform in [0, 1) (32 bits), so E[q_i·s] = v_i:
 *   unbiased, which keeps the average of many devices' updates unbiased (QSGD, Alistarh et al. 2017, arXiv 1610.02132
 *   §3.1; Suresh et al. 2017, arXiv 1611.00429 §2.2). |v_i − q_i·s| < s.
 *
 * Two properties the edge and the aggregator rely on (the update codec's int8 payload):
 * 1. Exact dequantization: s keeps at most 17 significant bits (its low float32 mantissa bits are zero), so every
 *    q_i·s (|q_i| ≤ 127, 7 bits) is exact in float32: the aggregator's `updateToFloat32` holds exactly the values whose
 *    norm the edge checked, with no float32 rounding in between (normal scales; among subnormal ones the values are
 *    below 2⁻¹²⁶ and no norm bound is at stake). Cost: s is at most 2⁻¹⁶ relatively coarser than absmax/127.
 * 2. A norm bound that holds after dequantization: with `maxNorm`, the scale is lowered (only lowered, never raised)
 *    until `s·√(Σ q_i²) ≤ maxNorm` in float64, the very expression the edge's norm check computes (Σ q_i² is an exact
 *    integer in float64). So an update clipped to C on the device and quantized with maxNorm = C passes the edge's
 *    check with no tolerance, and the aggregator's re-clip factor fround(min(1, C/‖u‖)) is exactly 1 (its float64 norm of
 *    the exact values differs from s·√Σq² by far less than the float32 rounding of that factor).
 *    Rescaling by λ = maxNorm/(s‖q‖) < 1 multiplies the update by a constant: it never increases any coordinate, and
 *    with stochastic rounding E‖q·s‖² = ‖v‖² + Σ s²p_i(1 − p_i), so λ ≥ (1 + d·s²/(4‖v‖²))^(−½) when maxNorm ≥ ‖v‖.
 */
import type { UpdateFields } from "./update-codec.ts";

const F32_MAX = 3.4028234663852886e38;
/** Smallest positive float32 (subnormal), 2^−149. */
const F32_MIN_POSITIVE = 2 ** -149;
/** Smallest positive normal float32, 2^−126. */
const F32_MIN_NORMAL = 2 ** -126;
/** Low float32 mantissa bits kept zero in a scale (23 − 16 stored bits = 17 significant bits with the implicit one). */
const SCALE_DROPPED_BITS = 7;
const WORDS_PER_DRAW = 16384;

/** Options of {@link quantizeUpdateInt8}. */
export interface QuantizeUpdateOptions {
  /**
   * Bound on the dequantized norm as the edge computes it, `scale·√(Σ q_i²)` in float64 (see the module header, 2).
   * A device passes its clip norm C (central mode) or the norm of what it quantizes (so quantization never grows it).
   * @default Infinity (no bound: the scale is the absmax one)
   */
  maxNorm?: number;
  /**
   * CSPRNG bytes for stochastic rounding (unbiased); without it values are rounded to nearest (deterministic).
   * @default undefined (round half away from zero)
   */
  random?: (buf: Uint8Array) => void;
}

/** An int8 update payload. */
export interface Int8UpdatePayload {
  dtype: "int8";
  values: Int8Array;
  scale: number;
}

/**
 * Quantize float32 values to int8 with one symmetric scale (see the module header). All-zero input (or a `maxNorm`
 * of 0) gets all-zero values and scale 1. Throws `RangeError` on a non-finite value or a bad `maxNorm`.
 */
export function quantizeUpdateInt8(values: Float32Array, options: QuantizeUpdateOptions = {}): Int8UpdatePayload {
  if (!(values instanceof Float32Array)) throw new TypeError("quantizeUpdateInt8: values must be a Float32Array");
  const maxNorm = options.maxNorm ?? Infinity;
  if (typeof maxNorm !== "number" || Number.isNaN(maxNorm) || maxNorm < 0) {
    throw new RangeError(`quantizeUpdateInt8: maxNorm must be a number >= 0, got ${String(options.maxNorm)}`);
  }
  const random = options.random;
  if (random !== undefined && typeof random !== "function")
    throw new TypeError("quantizeUpdateInt8: random must be a function");
  const n = values.length;
  let absmax = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    if (v - v !== 0) throw new RangeError(`quantizeUpdateInt8: value ${i} is not finite (${v})`);
    const a = v < 0 ? -v : v;
    if (a > absmax) absmax = a;
  }
  const q = new Int8Array(n);
  if (absmax === 0 || maxNorm === 0) return { dtype: "int8", values: q, scale: 1 };
  let scale = Math.fround(absmax / 127);
  if (scale === 0) scale = F32_MIN_POSITIVE;
  // If float32 rounding took the scale below absmax/127 (coarse among subnormals), step up one ulp so |v/scale| ≤ 127
  // and nearest rounding clamps nothing.
  if (127 * scale < absmax) scale = nextFloat32(scale, 1);
  scale = keepSignificantBits(scale, 1);
  // float32 rounding may push 127·scale past the float32 range; step down until it fits (decoders require it).
  while (127 * scale > F32_MAX) scale = keepSignificantBits(nextFloat32(scale, -1), -1);

  let sumSq = 0;
  if (random) {
    const words = new Uint32Array(Math.min(n, WORDS_PER_DRAW));
    const bytes = new Uint8Array(words.buffer);
    for (let start = 0; start < n; start += words.length) {
      const m = Math.min(words.length, n - start);
      random(m === words.length ? bytes : bytes.subarray(0, 4 * m));
      for (let k = 0; k < m; k++) {
        const i = start + k;
        const x = values[i]! / scale;
        const f = Math.floor(x);
        let r = words[k]! * 2 ** -32 < x - f ? f + 1 : f;
        if (r > 127) r = 127;
        else if (r < -127) r = -127;
        q[i] = r;
        sumSq += r * r;
      }
    }
  } else {
    for (let i = 0; i < n; i++) {
      const x = values[i]! / scale;
      let r = x < 0 ? -Math.floor(0.5 - x) : Math.floor(x + 0.5);
      if (r > 127) r = 127;
      else if (r < -127) r = -127;
      q[i] = r;
      sumSq += r * r;
    }
  }
  if (sumSq === 0) return { dtype: "int8", values: q, scale: 1 };
  const qNorm = Math.sqrt(sumSq);
  if (qNorm * scale > maxNorm) {
    // The largest 17-bit float32 scale with qNorm·scale ≤ maxNorm (float64, as the edge computes it).
    scale = keepSignificantBits(Math.fround(maxNorm / qNorm), -1);
    while (scale > 0 && qNorm * scale > maxNorm) scale = keepSignificantBits(nextFloat32(scale, -1), -1);
    if (!(scale > 0)) return { dtype: "int8", values: new Int8Array(n), scale: 1 };
  }
  return { dtype: "int8", values: q, scale };
}

/**
 * `scale·√(Σ q_i²)` in float64: the L2 norm of a dequantized int8 payload exactly as the edge's norm check computes it.
 */
export function int8PayloadNorm(payload: Pick<Int8UpdatePayload, "values" | "scale">): number {
  const v = payload.values;
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i]! * v[i]!;
  return Math.sqrt(sum) * payload.scale;
}

/**
 * The payload as float32: int8 values are dequantized (`q·scale`, rounded to float32) into a new array; a float32 payload's
 * own `values` array is returned as is (no copy).
 */
export function updateToFloat32(update: Pick<UpdateFields, "payload">): Float32Array {
  const payload = update.payload;
  if (payload.dtype === "float32") return payload.values;
  if (payload.dtype !== "int8")
    throw new TypeError(`updateToFloat32: unknown dtype ${String((payload as { dtype: unknown }).dtype)}`);
  const { values, scale } = payload;
  const n = values.length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = values[i]! * scale;
  return out;
}

/** The adjacent float32 above (+1) or below (−1) a positive float32 `x`: for x > 0 the bit patterns are ordered. */
function nextFloat32(x: number, step: 1 | -1): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  u[0] = u[0]! + step;
  return f[0]!;
}

/**
 * A positive float32 with its low {@link SCALE_DROPPED_BITS} mantissa bits cleared, rounded up (+1) or down (−1).
 * Subnormals are returned as they are (their products are below 2⁻¹²⁶ anyway).
 */
function keepSignificantBits(x: number, direction: 1 | -1): number {
  if (x < F32_MIN_NORMAL) return x;
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  const mask = (1 << SCALE_DROPPED_BITS) - 1;
  const low = u[0]! & mask;
  if (low === 0) return x;
  u[0] = u[0]! - low + (direction === 1 ? mask + 1 : 0);
  return f[0]!;
}
