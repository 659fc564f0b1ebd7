/**
 * @module
 * Building and reading ONNX `TensorProto` values.
 *
 * fedge writes tensor data as `raw_data`: fixed-width little-endian element bytes (what ONNX requires of `raw_data`,
 * whatever the host's byte order). Readers accept both `raw_data` and the typed lists (`float_data` for FLOAT,
 * `int32_data` for INT8/UINT8/INT16/UINT16/INT32/BOOL, `int64_data` for INT64, `double_data` for DOUBLE).
 */
import { OnnxDataType } from "./descriptor.ts";
import { OnnxFormatError } from "./codec.ts";
import type { TensorProto } from "./types.ts";

const DTYPE_NAMES: Record<number, string> = {
  [OnnxDataType.FLOAT]: "float32",
  [OnnxDataType.UINT8]: "uint8",
  [OnnxDataType.INT8]: "int8",
  [OnnxDataType.UINT16]: "uint16",
  [OnnxDataType.INT16]: "int16",
  [OnnxDataType.INT32]: "int32",
  [OnnxDataType.INT64]: "int64",
  [OnnxDataType.STRING]: "string",
  [OnnxDataType.BOOL]: "bool",
  [OnnxDataType.FLOAT16]: "float16",
  [OnnxDataType.DOUBLE]: "float64",
  [OnnxDataType.UINT32]: "uint32",
  [OnnxDataType.UINT64]: "uint64",
  [OnnxDataType.COMPLEX64]: "complex64",
  [OnnxDataType.COMPLEX128]: "complex128",
  [OnnxDataType.BFLOAT16]: "bfloat16",
  [OnnxDataType.FLOAT8E4M3FN]: "float8e4m3fn",
  [OnnxDataType.FLOAT8E4M3FNUZ]: "float8e4m3fnuz",
  [OnnxDataType.FLOAT8E5M2]: "float8e5m2",
  [OnnxDataType.FLOAT8E5M2FNUZ]: "float8e5m2fnuz",
  [OnnxDataType.UINT4]: "uint4",
  [OnnxDataType.INT4]: "int4",
  [OnnxDataType.FLOAT4E2M1]: "float4e2m1",
  [OnnxDataType.FLOAT8E8M0]: "float8e8m0",
  [OnnxDataType.UINT2]: "uint2",
  [OnnxDataType.INT2]: "int2",
};

/** The onnxruntime name of an ONNX element type (`1` → `"float32"`), or `"undefined"`/`"unknown(N)"`. */
export function onnxDataTypeName(code: number | undefined): string {
  if (!code) return "undefined";
  return DTYPE_NAMES[code] ?? `unknown(${code})`;
}

/** Number of elements of a tensor with these dims (1 for a scalar), or throw on a negative/unsafe product. */
export function tensorElementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new OnnxFormatError(`invalid tensor dimension ${d}`);
    n *= d;
    if (!Number.isSafeInteger(n)) throw new OnnxFormatError("tensor has too many elements");
  }
  return n;
}

/** A FLOAT tensor with `raw_data`. */
export function float32Tensor(name: string, dims: readonly number[], data: Float32Array): TensorProto {
  if (data.length !== tensorElementCount(dims)) {
    throw new RangeError(`${name}: ${data.length} values do not fill dims [${dims.join(", ")}]`);
  }
  const raw = new Uint8Array(data.length * 4);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i]!, true);
  return { name, dims: [...dims], dataType: OnnxDataType.FLOAT, rawData: raw };
}

/** An INT8 tensor with `raw_data`. */
export function int8Tensor(name: string, dims: readonly number[], data: Int8Array): TensorProto {
  if (data.length !== tensorElementCount(dims)) {
    throw new RangeError(`${name}: ${data.length} values do not fill dims [${dims.join(", ")}]`);
  }
  const raw = new Uint8Array(data.length);
  raw.set(new Uint8Array(data.buffer, data.byteOffset, data.length));
  return { name, dims: [...dims], dataType: OnnxDataType.INT8, rawData: raw };
}

function checkInline(t: TensorProto, what: string): number {
  if (t.dataLocation === 1 || (t.externalData?.length ?? 0) > 0) {
    throw new OnnxFormatError(`${what}: tensor data is stored externally`);
  }
  return tensorElementCount(t.dims ?? []);
}

/** The values of a FLOAT tensor. */
export function tensorToFloat32(t: TensorProto): Float32Array {
  const what = `tensor ${t.name ?? ""}`;
  if (t.dataType !== OnnxDataType.FLOAT) {
    throw new OnnxFormatError(`${what}: data type ${onnxDataTypeName(t.dataType)}, expected float32`);
  }
  const n = checkInline(t, what);
  const out = new Float32Array(n);
  if (t.rawData && t.rawData.length > 0) {
    if (t.rawData.length !== n * 4)
      throw new OnnxFormatError(`${what}: raw_data has ${t.rawData.length} bytes, expected ${n * 4}`);
    const view = new DataView(t.rawData.buffer, t.rawData.byteOffset, t.rawData.length);
    for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
    return out;
  }
  const list = t.floatData ?? [];
  if (list.length !== n) throw new OnnxFormatError(`${what}: float_data has ${list.length} values, expected ${n}`);
  out.set(list);
  return out;
}

/** The values of an INT8 tensor. */
export function tensorToInt8(t: TensorProto): Int8Array {
  const what = `tensor ${t.name ?? ""}`;
  if (t.dataType !== OnnxDataType.INT8) {
    throw new OnnxFormatError(`${what}: data type ${onnxDataTypeName(t.dataType)}, expected int8`);
  }
  const n = checkInline(t, what);
  if (t.rawData && t.rawData.length > 0) {
    if (t.rawData.length !== n)
      throw new OnnxFormatError(`${what}: raw_data has ${t.rawData.length} bytes, expected ${n}`);
    return new Int8Array(t.rawData.buffer.slice(t.rawData.byteOffset, t.rawData.byteOffset + n));
  }
  const list = t.int32Data ?? [];
  if (list.length !== n) throw new OnnxFormatError(`${what}: int32_data has ${list.length} values, expected ${n}`);
  const out = new Int8Array(n);
  for (let i = 0; i < n; i++) {
    const v = list[i]!;
    if (v < -128 || v > 127) throw new OnnxFormatError(`${what}: int32_data value ${v} is out of int8 range`);
    out[i] = v;
  }
  return out;
}

/** A UINT8 tensor with `raw_data`. */
export function uint8Tensor(name: string, dims: readonly number[], data: Uint8Array): TensorProto {
  if (data.length !== tensorElementCount(dims)) {
    throw new RangeError(`${name}: ${data.length} values do not fill dims [${dims.join(", ")}]`);
  }
  return { name, dims: [...dims], dataType: OnnxDataType.UINT8, rawData: data.slice() };
}

/** An INT64 tensor with `raw_data` (values must be safe integers). */
export function int64Tensor(name: string, dims: readonly number[], data: readonly number[]): TensorProto {
  if (data.length !== tensorElementCount(dims)) {
    throw new RangeError(`${name}: ${data.length} values do not fill dims [${dims.join(", ")}]`);
  }
  const raw = new Uint8Array(data.length * 8);
  const view = new DataView(raw.buffer);
  data.forEach((v, i) => {
    if (!Number.isSafeInteger(v)) throw new RangeError(`${name}[${i}] = ${v} is not a safe integer`);
    view.setBigInt64(i * 8, BigInt(v), true);
  });
  return { name, dims: [...dims], dataType: OnnxDataType.INT64, rawData: raw };
}

/** Bytes per element of the fixed-width ONNX element types (`undefined` for strings and sub-byte types). */
export function onnxElementSize(dataType: number | undefined): number | undefined {
  switch (dataType) {
    case OnnxDataType.FLOAT:
    case OnnxDataType.INT32:
    case OnnxDataType.UINT32:
      return 4;
    case OnnxDataType.UINT8:
    case OnnxDataType.INT8:
    case OnnxDataType.BOOL:
    case OnnxDataType.FLOAT8E4M3FN:
    case OnnxDataType.FLOAT8E4M3FNUZ:
    case OnnxDataType.FLOAT8E5M2:
    case OnnxDataType.FLOAT8E5M2FNUZ:
    case OnnxDataType.FLOAT8E8M0:
      return 1;
    case OnnxDataType.UINT16:
    case OnnxDataType.INT16:
    case OnnxDataType.FLOAT16:
    case OnnxDataType.BFLOAT16:
      return 2;
    case OnnxDataType.INT64:
    case OnnxDataType.UINT64:
    case OnnxDataType.DOUBLE:
    case OnnxDataType.COMPLEX64:
      return 8;
    case OnnxDataType.COMPLEX128:
      return 16;
    default:
      return undefined;
  }
}

/** Whether a tensor's data lives outside the model file (`data_location = EXTERNAL` or `external_data` entries). */
export function isExternalTensor(t: TensorProto): boolean {
  return t.dataLocation === 1 || (t.externalData?.length ?? 0) > 0;
}

/** Bytes a tensor's data takes in memory once loaded: element count × element size (the stored bytes otherwise). */
export function tensorByteLength(t: TensorProto): number {
  const size = onnxElementSize(t.dataType);
  if (size !== undefined) {
    try {
      return tensorElementCount(t.dims ?? []) * size;
    } catch {
      /* fall through to the stored bytes */
    }
  }
  return t.rawData?.length ?? 0;
}
