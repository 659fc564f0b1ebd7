/**
 * @module
 * Symmetric per-tensor int8 quantization of an update (absmax / 127), and its inverse.
 *
 * q_i = round(v_i / s) with s = max_i |v_i| / 127, rounded half away from zero and clamped to −127..127, so that
 * |v_i − q_i·s| ≤ s/2 (up to float32 rounding of s). This is the standard symmetric linear quantizer
 * (Jacob et al. 2018, arXiv 1712.05877 §2.1, with zero point 0). It is deterministic: no randomness is involved.
 */
import type { UpdateFields } from "./update-codec.ts";

const F32_MAX = 3.4028234663852886e38;
/** Smallest positive float32 (subnormal), 2^−149. */
const F32_MIN_POSITIVE = 2 ** -149;

/**
 * Quantize float32 values to int8 with one symmetric scale (absmax / 127, stored as float32). All-zero input gets scale 1.
 * Throws `RangeError` on a non-finite value.
 */
export function quantizeUpdateInt8(values: Float32Array): { dtype: "int8"; values: Int8Array; scale: number } {
  if (!(values instanceof Float32Array)) throw new TypeError("quantizeUpdateInt8: values must be a Float32Array");
  const n = values.length;
  let absmax = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    if (v - v !== 0) throw new RangeError(`quantizeUpdateInt8: value ${i} is not finite (${v})`);
    const a = v < 0 ? -v : v;
    if (a > absmax) absmax = a;
  }
  const q = new Int8Array(n);
  if (absmax === 0) return { dtype: "int8", values: q, scale: 1 };
  let scale = Math.fround(absmax / 127);
  if (scale === 0) scale = F32_MIN_POSITIVE;
  // If float32 rounding took the scale below absmax/127 (coarse among subnormals), step up one ulp so |v/scale| ≤ 127 and
  // no value is clamped: the error bound scale/2 then holds everywhere.
  if (127 * scale < absmax) scale = nextFloat32(scale, 1);
  // float32 rounding may push 127·scale past the float32 range; step down one ulp until it fits (decoders require it).
  while (127 * scale > F32_MAX) scale = nextFloat32(scale, -1);
  for (let i = 0; i < n; i++) {
    const x = values[i]! / scale;
    let r = x < 0 ? -Math.floor(0.5 - x) : Math.floor(x + 0.5);
    if (r > 127) r = 127;
    else if (r < -127) r = -127;
    q[i] = r;
  }
  return { dtype: "int8", values: q, scale };
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
