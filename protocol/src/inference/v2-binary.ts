/**
 * @module
 * The Open Inference Protocol's binary tensor data extension (Triton/KServe v2), zod-free for the SDK core.
 *
 * A binary body is the JSON inference header (its byte length in the `Inference-Header-Content-Length` header)
 * followed by the raw tensor data of every tensor whose JSON entry has `parameters.binary_data_size`, in the order
 * the tensors appear in the JSON, each exactly that many bytes (little-endian, row-major; BOOL one byte per element).
 * Requests and responses use the same framing.
 *
 * @see https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_binary_data.md
 */
import {
  dtypeFromV2,
  DTYPE_BYTES,
  InferenceRequestError,
  shapeSize,
  tensorFromBytes,
  tensorFromJson,
  type Tensor,
} from "./tensor-data.ts";

/** HTTP header with the byte length of the JSON part of a binary body. */
export const INFERENCE_HEADER_LENGTH = "inference-header-content-length";
/** Media type of a binary body. */
export const BINARY_INFER_MEDIA_TYPE = "application/octet-stream";

/** The JSON header of a body, and the bytes after it. `headerLength` null: the whole body is JSON. */
export function splitInferBody(body: Uint8Array, headerLength: number | null): { json: unknown; tail: Uint8Array } {
  const n = headerLength ?? body.byteLength;
  if (!Number.isSafeInteger(n) || n < 0 || n > body.byteLength) {
    throw new InferenceRequestError(
      "malformed",
      `${INFERENCE_HEADER_LENGTH} is ${headerLength}, but the body has ${body.byteLength} bytes`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(body.subarray(0, n)));
  } catch (e) {
    throw new InferenceRequestError("malformed", `the inference header is not JSON: ${(e as Error).message}`);
  }
  return { json, tail: body.subarray(n) };
}

/** Parse the `Inference-Header-Content-Length` header value (`null` when absent). */
export function parseHeaderLength(value: string | null | undefined): number | null {
  if (value === null || value === undefined || value.trim() === "") return null;
  if (!/^\d{1,10}$/.test(value.trim())) {
    throw new InferenceRequestError("malformed", `${INFERENCE_HEADER_LENGTH} must be a byte count, got ${value}`);
  }
  return Number(value.trim());
}

/** One tensor entry of a JSON header (request input or response output). */
export interface V2TensorEntry {
  name: string;
  parameters?: Record<string, unknown> | undefined;
}

/** The `binary_data_size` parameter of an entry, or `undefined`. */
export function binaryDataSize(entry: V2TensorEntry): number | undefined {
  const v = entry.parameters?.binary_data_size;
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new InferenceRequestError("malformed", `${entry.name}: binary_data_size must be a byte count`);
  }
  return v;
}

/**
 * Cut the bytes after the JSON header into each entry's binary data, in order. Every byte must belong to an entry:
 * a short or long tail is an error.
 */
export function takeBinaryData(entries: readonly V2TensorEntry[], tail: Uint8Array): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  let offset = 0;
  for (const e of entries) {
    const size = binaryDataSize(e);
    if (size === undefined) continue;
    if (offset + size > tail.byteLength) {
      throw new InferenceRequestError(
        "element_count",
        `${e.name}: binary_data_size ${size} runs past the end of the body (${tail.byteLength - offset} bytes left)`,
      );
    }
    out.set(e.name, tail.subarray(offset, offset + size));
    offset += size;
  }
  if (offset !== tail.byteLength) {
    throw new InferenceRequestError(
      "malformed",
      `the body has ${tail.byteLength - offset} bytes after the binary tensor data that no tensor claims`,
    );
  }
  return out;
}

/** A body of `json` followed by `chunks`; `headerLength` goes into `Inference-Header-Content-Length`. */
export function joinInferBody(
  json: unknown,
  chunks: readonly Uint8Array[],
): { body: Uint8Array; headerLength: number } {
  const header = new TextEncoder().encode(JSON.stringify(json));
  let total = header.byteLength;
  for (const c of chunks) total += c.byteLength;
  const body = new Uint8Array(total);
  body.set(header, 0);
  let offset = header.byteLength;
  for (const c of chunks) {
    body.set(c, offset);
    offset += c.byteLength;
  }
  return { body, headerLength: header.byteLength };
}

/** One output of an inference response, as JSON. */
export interface V2ResponseTensor extends V2TensorEntry {
  shape: number[];
  datatype: string;
  data?: unknown[];
}

/**
 * Decode the outputs of an inference response (JSON `data` or binary data after the header) into tensors.
 * Throws `InferenceRequestError` when the response does not hold together.
 */
export function decodeV2Outputs(json: unknown, tail: Uint8Array): Record<string, Tensor> {
  const outputs = (json as { outputs?: unknown })?.outputs;
  if (!Array.isArray(outputs)) throw new InferenceRequestError("malformed", "the response has no outputs array");
  const entries = outputs as V2ResponseTensor[];
  const binary = takeBinaryData(entries, tail);
  const result: Record<string, Tensor> = {};
  for (const o of entries) {
    const dtype = dtypeFromV2(o.datatype);
    if (!dtype) throw new InferenceRequestError("datatype", `${o.name}: unsupported datatype ${o.datatype}`);
    const count = shapeSize(o.shape, o.name);
    const bytes = binary.get(o.name);
    let data;
    if (bytes) {
      if (bytes.byteLength !== count * DTYPE_BYTES[dtype]) {
        throw new InferenceRequestError("element_count", `${o.name}: binary data does not fill ${o.shape}`);
      }
      data = tensorFromBytes(dtype, bytes);
    } else {
      data = tensorFromJson(dtype, o.data, count, o.name);
    }
    result[o.name] = { dtype, shape: [...o.shape], data } as Tensor;
  }
  return result;
}
