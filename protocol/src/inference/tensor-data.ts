/**
 * @module
 * Tensors on the wire, free of zod so that the SDK core can use it: the element types fedge serves, their Open
 * Inference Protocol (KServe v2) names, their typed arrays, little-endian bytes, float16 conversion, and the JSON
 * `data` form (flat or nested, row-major). Every malformed or out-of-range value is an `InferenceRequestError` whose
 * `reason` names the rule; the edge maps it to a 4xx.
 *
 * Typed arrays: float32 `Float32Array`, float16 `Uint16Array` (IEEE 754 binary16 bit patterns), int64
 * `BigInt64Array`, int32 `Int32Array`, int8 `Int8Array`, uint8 and bool `Uint8Array` (bool: 0 or 1).
 * Binary tensor data is little-endian, row-major, bool one byte per element (KServe v2 binary tensor extension).
 *
 * @see https://github.com/kserve/open-inference-protocol/blob/main/specification/protocol/inference_rest.md
 */
import { FedgeError, type ErrorCode } from "../fedge-error.ts";

/** Element types of served inputs and outputs (onnxruntime names). */
export const TENSOR_DTYPES = ["float32", "float16", "int64", "int32", "int8", "uint8", "bool"] as const;
export type TensorDtype = (typeof TENSOR_DTYPES)[number];

/** Open Inference Protocol datatype names, by dtype. */
export const V2_DATATYPES = {
  float32: "FP32",
  float16: "FP16",
  int64: "INT64",
  int32: "INT32",
  int8: "INT8",
  uint8: "UINT8",
  bool: "BOOL",
} as const satisfies Record<TensorDtype, string>;
export type V2Datatype = (typeof V2_DATATYPES)[TensorDtype];

const FROM_V2 = new Map<string, TensorDtype>(
  Object.entries(V2_DATATYPES).map(([dtype, v2]) => [v2, dtype as TensorDtype]),
);

/** The dtype of a v2 datatype name (`"FP32"` → `"float32"`), or `undefined` for one fedge does not serve. */
export function dtypeFromV2(datatype: string): TensorDtype | undefined {
  return FROM_V2.get(datatype);
}

/** Bytes per element on the wire. */
export const DTYPE_BYTES: Record<TensorDtype, number> = {
  float32: 4,
  float16: 2,
  int64: 8,
  int32: 4,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/** The typed array holding each dtype. */
export interface TensorArrays {
  float32: Float32Array;
  float16: Uint16Array;
  int64: BigInt64Array;
  int32: Int32Array;
  int8: Int8Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}
export type TensorArray = TensorArrays[TensorDtype];

/** A dense tensor: row-major `data` of `shape`. */
export interface Tensor<D extends TensorDtype = TensorDtype> {
  dtype: D;
  shape: number[];
  data: TensorArrays[D];
}

export type InferenceRequestReason =
  | "malformed"
  | "unknown_tensor"
  | "missing_tensor"
  | "duplicate_tensor"
  | "datatype"
  | "shape"
  | "element_count"
  | "out_of_range"
  | "non_finite"
  | "too_large";

const REASON_CODES: Record<InferenceRequestReason, [ErrorCode, number]> = {
  malformed: ["validation_failed", 400],
  unknown_tensor: ["unknown_tensor", 400],
  missing_tensor: ["missing_tensor", 400],
  duplicate_tensor: ["validation_failed", 400],
  datatype: ["invalid_datatype", 400],
  shape: ["invalid_shape", 400],
  element_count: ["invalid_shape", 400],
  out_of_range: ["out_of_range", 400],
  non_finite: ["non_finite", 400],
  too_large: ["payload_too_large", 413],
};

/** An inference request that does not fit the model or the wire format; `reason` names the rule. */
export class InferenceRequestError extends FedgeError {
  readonly reason: InferenceRequestReason;
  constructor(reason: InferenceRequestReason, message: string) {
    const [code, status] = REASON_CODES[reason];
    super(code, status, message);
    this.name = "InferenceRequestError";
    this.reason = reason;
  }
}

const ARRAYS = {
  float32: Float32Array,
  float16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
} as const;

/** A zero-filled typed array of `length` elements of `dtype`. */
export function allocTensorArray<D extends TensorDtype>(dtype: D, length: number): TensorArrays[D] {
  return new ARRAYS[dtype](length) as TensorArrays[D];
}

/** Whether `data` is the typed array type of `dtype`. */
export function isTensorArray(dtype: TensorDtype, data: unknown): boolean {
  return data instanceof ARRAYS[dtype];
}

/** Number of elements of `shape` (1 for a scalar); throws `InferenceRequestError` on a bad dimension. */
export function shapeSize(shape: readonly number[], what = "shape"): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new InferenceRequestError("shape", `${what} ${JSON.stringify(shape)} has an invalid dimension ${d}`);
    }
    n *= d;
  }
  if (!Number.isSafeInteger(n)) throw new InferenceRequestError("too_large", `${what} has too many elements`);
  return n;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** `count` elements of `dtype` from little-endian bytes (copied into a fresh, aligned array). */
export function tensorFromBytes<D extends TensorDtype>(dtype: D, bytes: Uint8Array): TensorArrays[D] {
  const size = DTYPE_BYTES[dtype];
  if (bytes.byteLength % size !== 0) {
    throw new InferenceRequestError(
      "element_count",
      `${bytes.byteLength} bytes are not a whole number of ${dtype} elements (${size} bytes each)`,
    );
  }
  const out = allocTensorArray(dtype, bytes.byteLength / size);
  const dst = new Uint8Array(out.buffer);
  dst.set(bytes);
  if (!LITTLE_ENDIAN && size > 1) {
    for (let i = 0; i < dst.length; i += size) dst.subarray(i, i + size).reverse();
  }
  return out;
}

/** The little-endian bytes of a typed array (a view of it on little-endian hosts). */
export function tensorToBytes(data: TensorArray): Uint8Array {
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (LITTLE_ENDIAN || data.BYTES_PER_ELEMENT === 1) return view;
  const out = view.slice();
  for (let i = 0; i < out.length; i += data.BYTES_PER_ELEMENT) out.subarray(i, i + data.BYTES_PER_ELEMENT).reverse();
  return out;
}

// ─── float16 ────────────────────────────────────────────────────────────────────────────────────────────────────────

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 binary16 bits of `x`, rounded to nearest even (overflow → ±Infinity, NaN stays NaN). */
export function float16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && (m & 1) === 1)) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1) === 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

/** The number an IEEE 754 binary16 bit pattern stands for. */
export function float16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Largest finite float16. */
export const FLOAT16_MAX = 65504;

// ─── JSON data ──────────────────────────────────────────────────────────────────────────────────────────────────────

const INT_RANGES: Partial<Record<TensorDtype, [number, number]>> = {
  int64: [-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  int32: [-2147483648, 2147483647],
  int8: [-128, 127],
  uint8: [0, 255],
};

/**
 * Flatten a JSON `data` value (a flat array, or arrays nested along the shape) into `count` elements of `dtype`.
 * Numbers must be finite; integers must be whole and within their type (int64: within ±(2^53−1), what JSON numbers
 * carry exactly); bool takes `true`/`false`; float16 must be within ±65504.
 */
export function tensorFromJson<D extends TensorDtype>(
  dtype: D,
  data: unknown,
  count: number,
  name: string,
): TensorArrays[D] {
  if (!Array.isArray(data)) throw new InferenceRequestError("malformed", `${name}: data must be an array`);
  const out = allocTensorArray(dtype, count);
  const range = INT_RANGES[dtype];
  let k = 0;
  const put = (v: unknown): void => {
    if (k >= count) {
      k++;
      return;
    }
    if (dtype === "bool") {
      if (typeof v !== "boolean") throw new InferenceRequestError("datatype", `${name}: BOOL data must be true/false`);
      (out as Uint8Array)[k++] = v ? 1 : 0;
      return;
    }
    if (typeof v !== "number") {
      throw new InferenceRequestError("datatype", `${name}: element ${k} is ${typeof v}, expected a number`);
    }
    if (!Number.isFinite(v)) {
      throw new InferenceRequestError("non_finite", `${name}: element ${k} is ${v}; only finite numbers are accepted`);
    }
    if (range) {
      if (!Number.isInteger(v)) {
        throw new InferenceRequestError("datatype", `${name}: element ${k} is ${v}, not an integer (${dtype})`);
      }
      if (v < range[0] || v > range[1]) {
        throw new InferenceRequestError("out_of_range", `${name}: element ${k} is ${v}, outside the ${dtype} range`);
      }
      if (dtype === "int64") (out as BigInt64Array)[k++] = BigInt(v);
      else (out as Int32Array | Int8Array | Uint8Array)[k++] = v;
      return;
    }
    if (dtype === "float16") {
      if (Math.abs(v) > FLOAT16_MAX) {
        throw new InferenceRequestError("out_of_range", `${name}: element ${k} is ${v}, outside the float16 range`);
      }
      (out as Uint16Array)[k++] = float16Bits(v);
      return;
    }
    (out as Float32Array)[k] = v;
    if (!Number.isFinite((out as Float32Array)[k]!)) {
      throw new InferenceRequestError("out_of_range", `${name}: element ${k} is ${v}, outside the float32 range`);
    }
    k++;
  };
  const walk = (v: unknown[], depth: number): void => {
    if (depth > 8) throw new InferenceRequestError("malformed", `${name}: data is nested deeper than 8 levels`);
    for (const x of v) {
      if (Array.isArray(x)) walk(x, depth + 1);
      else put(x);
    }
  };
  walk(data, 0);
  if (k !== count) {
    throw new InferenceRequestError("element_count", `${name}: data has ${k} elements, the shape needs ${count}`);
  }
  return out;
}

/** A typed array as JSON `data` (int64 as numbers: exact up to ±2^53; float16 as its value; bool as true/false). */
export function tensorToJson(dtype: TensorDtype, data: TensorArray): number[] | boolean[] {
  switch (dtype) {
    case "bool":
      return Array.from(data as Uint8Array, (v) => v !== 0);
    case "int64":
      return Array.from(data as BigInt64Array, (v) => Number(v));
    case "float16":
      return Array.from(data as Uint16Array, float16Value);
    default:
      return Array.from(data as Float32Array);
  }
}
