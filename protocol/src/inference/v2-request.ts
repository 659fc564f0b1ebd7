/**
 * @module
 * An Open Inference Protocol inference request checked against the model it is for: every input named once and
 * known to the model, every model input present, the declared datatype the model's, the shape of the model's rank
 * with its fixed dimensions, the data (JSON or binary) exactly the shape's element count, integer values inside the
 * type and inside the range the model allows (e.g. token ids below the vocabulary size), float values finite, bool
 * values 0/1. Pure: the edge hands it the parsed JSON header and the binary tail; each failure is an
 * `InferenceRequestError` naming the tensor and the rule.
 *
 * The request structure is checked by hand rather than with the zod schema in `v2.ts` (which documents it): zod
 * copies every `data` array, which on a large JSON tensor costs about as much as parsing it.
 */
import { takeBinaryData, type V2TensorEntry } from "./v2-binary.ts";
import {
  allocTensorArray,
  DTYPE_BYTES,
  dtypeFromV2,
  float16Value,
  InferenceRequestError,
  shapeSize,
  tensorFromBytes,
  tensorFromJson,
  V2_DATATYPES,
  type Tensor,
  type TensorArray,
  type TensorDtype,
} from "./tensor-data.ts";

/**
 * What the edge knows about one model input or output. A number is a fixed dimension, `null` any size, a string a
 * symbolic dimension: any size, but the same wherever the symbol appears in the request's inputs.
 */
export interface TensorSignature {
  name: string;
  dtype: TensorDtype;
  shape: (number | string | null)[];
  /** Inclusive value range (integer inputs indexing a table; or declared by the manifest). */
  range?: readonly [number, number] | undefined;
}

export interface V2RequestInput extends V2TensorEntry {
  shape: number[];
  datatype: string;
  data?: unknown;
}

export interface V2RequestOutput extends V2TensorEntry {}

export interface V2InferRequestBody {
  id?: string | undefined;
  parameters?: Record<string, unknown> | undefined;
  inputs: V2RequestInput[];
  outputs?: V2RequestOutput[] | undefined;
}

export interface DecodedV2Request {
  id: string | undefined;
  feeds: Map<string, Tensor>;
  /** Outputs to return, in order, each with whether it goes back as binary data. */
  outputs: { name: string; binary: boolean }[];
  /** Total elements of every input (what metering counts). */
  elements: number;
}

function malformed(message: string): InferenceRequestError {
  return new InferenceRequestError("malformed", message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function checkParameters(v: unknown, where: string): Record<string, unknown> | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) throw malformed(`${where}.parameters must be an object`);
  return v;
}

/** Structure of the JSON header (no model needed). */
export function parseV2InferRequest(json: unknown): V2InferRequestBody {
  if (!isObject(json)) throw malformed("the inference request must be a JSON object");
  for (const k of Object.keys(json)) {
    if (!["id", "parameters", "inputs", "outputs"].includes(k)) throw malformed(`unknown field ${JSON.stringify(k)}`);
  }
  if (json.id !== undefined && typeof json.id !== "string") throw malformed("id must be a string");
  const parameters = checkParameters(json.parameters, "request");
  if (!Array.isArray(json.inputs) || json.inputs.length === 0) throw malformed("inputs must be a non-empty array");
  const inputs = json.inputs.map((x: unknown, i: number): V2RequestInput => {
    const where = `inputs[${i}]`;
    if (!isObject(x)) throw malformed(`${where} must be an object`);
    for (const k of Object.keys(x)) {
      if (!["name", "shape", "datatype", "parameters", "data"].includes(k)) {
        throw malformed(`${where}: unknown field ${JSON.stringify(k)}`);
      }
    }
    if (typeof x.name !== "string" || x.name.length === 0) throw malformed(`${where}.name must be a non-empty string`);
    if (!Array.isArray(x.shape) || x.shape.length > 8) {
      throw malformed(`${x.name}: shape must be an array of at most 8 dimensions`);
    }
    for (const d of x.shape) {
      if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) {
        throw new InferenceRequestError("shape", `${x.name}: shape ${JSON.stringify(x.shape)} must hold sizes ≥ 0`);
      }
    }
    if (typeof x.datatype !== "string") throw malformed(`${x.name}: datatype must be a string such as "FP32"`);
    const p = checkParameters(x.parameters, x.name);
    return {
      name: x.name,
      shape: x.shape as number[],
      datatype: x.datatype,
      ...(p ? { parameters: p } : {}),
      ...(x.data !== undefined ? { data: x.data } : {}),
    };
  });
  let outputs: V2RequestOutput[] | undefined;
  if (json.outputs !== undefined) {
    if (!Array.isArray(json.outputs)) throw malformed("outputs must be an array");
    outputs = json.outputs.map((x: unknown, i: number) => {
      if (!isObject(x) || typeof x.name !== "string") throw malformed(`outputs[${i}] must be {"name": string}`);
      const p = checkParameters(x.parameters, x.name);
      return { name: x.name, ...(p ? { parameters: p } : {}) };
    });
  }
  return { id: json.id as string | undefined, parameters, inputs, outputs };
}

function checkValues(input: V2RequestInput, sig: TensorSignature, data: TensorArray): void {
  if (sig.dtype === "float32" || sig.dtype === "float16") {
    const isF16 = sig.dtype === "float16";
    const [lo, hi] = sig.range ?? [Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY];
    for (let i = 0; i < data.length; i++) {
      const raw = data[i] as number;
      if (isF16 ? (raw & 0x7c00) === 0x7c00 : raw - raw !== 0) {
        throw new InferenceRequestError(
          "non_finite",
          `${input.name}: element ${i} is not finite; only finite numbers are accepted`,
        );
      }
      const v = isF16 ? float16Value(raw) : raw;
      if (v < lo || v > hi) {
        throw new InferenceRequestError(
          "out_of_range",
          `${input.name}: element ${i} is ${v}, outside the model's range [${lo}, ${hi}]`,
        );
      }
    }
    return;
  }
  if (sig.dtype === "bool") {
    const bad = (data as Uint8Array).findIndex((v) => v > 1);
    if (bad >= 0) throw new InferenceRequestError("out_of_range", `${input.name}: BOOL element ${bad} is not 0 or 1`);
    return;
  }
  if (!sig.range) return;
  const [lo, hi] = sig.range;
  if (sig.dtype === "int64") {
    const blo = BigInt(lo);
    const bhi = BigInt(hi);
    const d = data as BigInt64Array;
    for (let i = 0; i < d.length; i++) {
      if (d[i]! < blo || d[i]! > bhi) {
        throw new InferenceRequestError(
          "out_of_range",
          `${input.name}: element ${i} is ${d[i]}, outside the model's range [${lo}, ${hi}]`,
        );
      }
    }
    return;
  }
  const d = data as Int32Array;
  for (let i = 0; i < d.length; i++) {
    if (d[i]! < lo || d[i]! > hi) {
      throw new InferenceRequestError(
        "out_of_range",
        `${input.name}: element ${i} is ${d[i]}, outside the model's range [${lo}, ${hi}]`,
      );
    }
  }
}

/**
 * Check a parsed request against the model's inputs and outputs and decode its tensors. `tail` holds the binary data
 * after the JSON header (empty for a JSON-only body). `binaryByDefault`: whether outputs go back as binary data unless
 * a request says otherwise (the edge answers a binary request in binary).
 */
export function decodeV2Request(
  req: V2InferRequestBody,
  tail: Uint8Array,
  model: { inputs: readonly TensorSignature[]; outputs: readonly TensorSignature[] },
  options: { binaryByDefault: boolean; maxElements?: number },
): DecodedV2Request {
  const binary = takeBinaryData(req.inputs, tail);
  const specs = new Map(model.inputs.map((s) => [s.name, s]));
  const feeds = new Map<string, Tensor>();
  const symbols = new Map<string, { size: number; input: string }>();
  let elements = 0;
  for (const input of req.inputs) {
    const sig = specs.get(input.name);
    if (!sig) {
      throw new InferenceRequestError(
        "unknown_tensor",
        `the model has no input ${JSON.stringify(input.name)}; its inputs are ${model.inputs.map((s) => s.name).join(", ")}`,
      );
    }
    if (feeds.has(input.name)) throw new InferenceRequestError("duplicate_tensor", `input ${input.name} appears twice`);
    const dtype = dtypeFromV2(input.datatype);
    if (dtype !== sig.dtype) {
      throw new InferenceRequestError(
        "datatype",
        `${input.name}: datatype ${input.datatype}, the model takes ${V2_DATATYPES[sig.dtype]}`,
      );
    }
    const rankOk = input.shape.length === sig.shape.length;
    if (!rankOk || sig.shape.some((d, i) => typeof d === "number" && d !== input.shape[i])) {
      const want = sig.shape.map((d) => (typeof d === "number" ? d : -1));
      throw new InferenceRequestError(
        "shape",
        `${input.name}: shape ${JSON.stringify(input.shape)} does not fit the model's ${JSON.stringify(want)} (-1 = any size)`,
      );
    }
    sig.shape.forEach((d, i) => {
      if (typeof d !== "string") return;
      const size = input.shape[i]!;
      const seen = symbols.get(d);
      if (!seen) symbols.set(d, { size, input: input.name });
      else if (seen.size !== size) {
        throw new InferenceRequestError(
          "shape",
          `${input.name}: dimension ${i} ("${d}") is ${size}, but ${seen.input} has ${d} = ${seen.size}; the model needs them equal`,
        );
      }
    });
    const count = shapeSize(input.shape, input.name);
    elements += count;
    if (options.maxElements !== undefined && elements > options.maxElements) {
      throw new InferenceRequestError("too_large", `the request has more than ${options.maxElements} elements`);
    }
    const bytes = binary.get(input.name);
    let data: TensorArray;
    if (bytes) {
      if (input.data !== undefined) {
        throw new InferenceRequestError("malformed", `${input.name}: both data and binary_data_size are given`);
      }
      const need = count * DTYPE_BYTES[dtype];
      if (bytes.byteLength !== need) {
        throw new InferenceRequestError(
          "element_count",
          `${input.name}: ${bytes.byteLength} bytes of binary data, shape ${JSON.stringify(input.shape)} of ${input.datatype} needs ${need}`,
        );
      }
      data = tensorFromBytes(dtype, bytes);
    } else {
      if (input.data === undefined) {
        throw new InferenceRequestError("malformed", `${input.name}: no data and no parameters.binary_data_size`);
      }
      data = tensorFromJson(dtype, input.data, count, input.name);
    }
    checkValues(input, sig, data);
    feeds.set(input.name, { dtype, shape: [...input.shape], data } as Tensor);
  }
  const missing = model.inputs.filter((s) => !feeds.has(s.name)).map((s) => s.name);
  if (missing.length > 0) {
    throw new InferenceRequestError("missing_tensor", `the request lacks the model input(s) ${missing.join(", ")}`);
  }
  const all = req.parameters?.binary_data_output;
  const defaultBinary = typeof all === "boolean" ? all : options.binaryByDefault;
  const known = new Set(model.outputs.map((s) => s.name));
  const requested: V2RequestOutput[] = req.outputs ?? model.outputs.map((s) => ({ name: s.name }));
  const seen = new Set<string>();
  const outputs = requested.map((o) => {
    if (!known.has(o.name)) {
      throw new InferenceRequestError(
        "unknown_tensor",
        `the model has no output ${JSON.stringify(o.name)}; its outputs are ${[...known].join(", ")}`,
      );
    }
    if (seen.has(o.name)) throw new InferenceRequestError("duplicate_tensor", `output ${o.name} is requested twice`);
    seen.add(o.name);
    const b = o.parameters?.binary_data;
    return { name: o.name, binary: typeof b === "boolean" ? b : defaultBinary };
  });
  return { id: req.id, feeds, outputs, elements };
}

/**
 * A fixed input for each signature, for benchmarks (the edge's admin bench route and onnxruntime-node get the same):
 * every dynamic dimension 1 on the first axis and 16 elsewhere; float32 and float16 0.5; integer inputs with a range
 * `k mod (max + 1)` for element k, other integers 1; bool true.
 */
export function benchInputs(inputs: readonly TensorSignature[]): Map<string, Tensor> {
  const feeds = new Map<string, Tensor>();
  for (const sig of inputs) {
    const shape = sig.shape.map((d, i) => (typeof d === "number" ? d : i === 0 ? 1 : 16));
    const count = shapeSize(shape);
    const data = allocTensorArray(sig.dtype, count);
    const mod = sig.range ? sig.range[1] + 1 : 0;
    for (let k = 0; k < count; k++) {
      if (sig.dtype === "float32") (data as Float32Array)[k] = 0.5;
      else if (sig.dtype === "float16") (data as Uint16Array)[k] = 0x3800;
      else if (sig.dtype === "int64") (data as BigInt64Array)[k] = BigInt(mod > 0 ? k % mod : 1);
      else (data as Int32Array)[k] = mod > 0 ? k % mod : 1;
    }
    feeds.set(sig.name, { dtype: sig.dtype, shape, data } as Tensor);
  }
  return feeds;
}
