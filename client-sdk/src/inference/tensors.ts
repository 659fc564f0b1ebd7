/**
 * @module
 * Typed tensors of `FedgeClient.infer`/`inferLocal` and their Open Inference Protocol bodies: argument checks (each
 * failure an `InvalidInputError` naming the tensor), the request in JSON or with the binary tensor extension (the
 * default: no number formatting, 4 bytes per float32), and the response decoded back into typed arrays.
 */
import {
  dtypeFromV2,
  isTensorArray,
  tensorToBytes,
  tensorToJson,
  TENSOR_DTYPES,
  V2_DATATYPES,
  type Tensor,
  type TensorArray,
  type TensorDtype,
} from "@fedge/protocol";
import {
  decodeV2Outputs,
  INFERENCE_HEADER_LENGTH,
  joinInferBody,
  parseHeaderLength,
  splitInferBody,
} from "@fedge/protocol";
import { FedgeAPIError, InvalidInputError } from "../core/errors.ts";
import type { Transport } from "../internal/transport.ts";
import type { InferOptions, InferResult } from "../types.ts";

export type { Tensor, TensorArray, TensorDtype };

/**
 * One input tensor: row-major `data` of `shape`. `dtype` defaults from the array: Float32Array float32,
 * BigInt64Array int64, Int32Array int32, Int8Array int8, Uint8Array uint8, Uint16Array float16 (IEEE 754 binary16
 * bit patterns); give `dtype: "bool"` for a Uint8Array of 0/1.
 */
export interface InferTensor {
  data: TensorArray;
  shape: readonly number[];
  dtype?: TensorDtype;
}

/** Inputs by name. */
export type InferInputs = Record<string, InferTensor>;

function defaultDtype(data: unknown): TensorDtype | undefined {
  if (data instanceof Float32Array) return "float32";
  if (data instanceof BigInt64Array) return "int64";
  if (data instanceof Int32Array) return "int32";
  if (data instanceof Int8Array) return "int8";
  if (data instanceof Uint8Array) return "uint8";
  if (data instanceof Uint16Array) return "float16";
  return undefined;
}

/** Checked inputs as wire tensors, in the caller's order. Throws `InvalidInputError`. */
export function checkInferInputs(inputs: InferInputs): Map<string, Tensor> {
  if (!inputs || typeof inputs !== "object" || Array.isArray(inputs)) {
    throw new InvalidInputError("inputs", "must be an object of named tensors {name: {data, shape, dtype?}}");
  }
  const out = new Map<string, Tensor>();
  for (const [name, t] of Object.entries(inputs)) {
    const where = `inputs.${name}`;
    if (!t || typeof t !== "object") throw new InvalidInputError(where, "must be {data, shape, dtype?}");
    const dtype = t.dtype ?? defaultDtype(t.data);
    if (!dtype || !(TENSOR_DTYPES as readonly string[]).includes(dtype)) {
      throw new InvalidInputError(where, `dtype must be one of ${TENSOR_DTYPES.join(", ")}`);
    }
    if (!isTensorArray(dtype, t.data)) {
      throw new InvalidInputError(where, `a ${dtype} tensor needs a ${defaultArrayName(dtype)}`);
    }
    if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isSafeInteger(d) || d < 0) || t.shape.length > 8) {
      throw new InvalidInputError(where, "shape must be at most 8 non-negative integers");
    }
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new InvalidInputError(
        where,
        `shape [${t.shape.join(", ")}] holds ${count} values, data has ${t.data.length}`,
      );
    }
    out.set(name, { dtype, shape: [...t.shape], data: t.data } as Tensor);
  }
  if (out.size === 0) throw new InvalidInputError("inputs", "give at least one tensor");
  return out;
}

function defaultArrayName(dtype: TensorDtype): string {
  return {
    float32: "Float32Array",
    float16: "Uint16Array of binary16 bits",
    int64: "BigInt64Array",
    int32: "Int32Array",
    int8: "Int8Array",
    uint8: "Uint8Array",
    bool: "Uint8Array of 0/1",
  }[dtype];
}

/** The request body of `POST /v2/models/{name}/infer`. */
export function encodeInferRequest(
  inputs: Map<string, Tensor>,
  options: { binary: boolean; outputs?: readonly string[] | undefined },
): { body: Uint8Array; contentType: string; headers: Record<string, string> } {
  const outputs = options.outputs?.map((name) => ({ name }));
  if (!options.binary) {
    const json = {
      inputs: [...inputs].map(([name, t]) => ({
        name,
        shape: t.shape,
        datatype: V2_DATATYPES[t.dtype],
        data: tensorToJson(t.dtype, t.data),
      })),
      ...(outputs ? { outputs } : {}),
    };
    return { body: new TextEncoder().encode(JSON.stringify(json)), contentType: "application/json", headers: {} };
  }
  const chunks: Uint8Array[] = [];
  const header = {
    inputs: [...inputs].map(([name, t]) => {
      const bytes = tensorToBytes(t.data);
      chunks.push(bytes);
      return {
        name,
        shape: t.shape,
        datatype: V2_DATATYPES[t.dtype],
        parameters: { binary_data_size: bytes.byteLength },
      };
    }),
    parameters: { binary_data_output: true },
    ...(outputs ? { outputs } : {}),
  };
  const { body, headerLength } = joinInferBody(header, chunks);
  return {
    body,
    contentType: "application/octet-stream",
    headers: { [INFERENCE_HEADER_LENGTH]: String(headerLength) },
  };
}

/** The outputs of a v2 inference response (JSON or binary), as typed tensors. */
export function decodeInferResponse(
  body: Uint8Array,
  headers: Headers,
): { outputs: Record<string, Tensor>; modelVersion: number | undefined } {
  try {
    const { json, tail } = splitInferBody(body, parseHeaderLength(headers.get(INFERENCE_HEADER_LENGTH)));
    const version = Number((json as { model_version?: unknown })?.model_version);
    return {
      outputs: decodeV2Outputs(json, tail),
      modelVersion: Number.isInteger(version) ? version : undefined,
    };
  } catch (cause) {
    throw new FedgeAPIError({
      code: "invalid_response",
      message: `infer: the edge's response does not decode: ${(cause as Error).message}`,
      cause,
    });
  }
}

/** `FedgeClient.infer`: `POST /v2/models/:name[/versions/:v]/infer` with checked, encoded tensors. */
export async function inferRemote(
  transport: Transport,
  model: string,
  inputs: InferInputs,
  options: InferOptions,
): Promise<InferResult> {
  const feeds = checkInferInputs(inputs);
  const req = encodeInferRequest(feeds, { binary: options.binary ?? true, outputs: options.outputs });
  const path = `/v2/models/${model}${options.version === undefined ? "" : `/versions/${options.version}`}/infer`;
  const res = await transport.request(
    { method: "POST", path, body: req.body, contentType: req.contentType, headers: req.headers },
    options,
  );
  const { outputs, modelVersion } = decodeInferResponse(res.body, res.headers);
  return { model, version: modelVersion ?? options.version ?? 0, outputs };
}

/** A dtype name from an onnxruntime tensor type, if fedge serves it. */
export function dtypeOfOrt(type: string | undefined): TensorDtype | undefined {
  return type && (TENSOR_DTYPES as readonly string[]).includes(type) ? (type as TensorDtype) : undefined;
}

export { dtypeFromV2 };
