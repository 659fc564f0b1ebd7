/**
 * @module
 * Can the edge serve this ONNX model? The static half of the registry's upload check (the other half is that
 * onnxruntime-web creates a session from the bytes): supported IR and opset, every node domain imported, no external
 * data, tensor inputs and outputs of a supported element type with a declared rank (dims may be fixed, symbolic or
 * unknown), unique names. It also derives what serving needs from the graph: the value range each integer input must
 * respect when it indexes a constant table (`Gather` indices), and an estimate of the session's memory.
 */
import { TENSOR_DTYPES, type TensorDtype } from "@fedge/protocol";
import { decodeOnnx, OnnxFormatError } from "./codec.ts";
import { OnnxDataType } from "./descriptor.ts";
import { forEachGraph, intAttr, isDefaultDomain } from "./graph.ts";
import type { OnnxDim } from "./inspect.ts";
import { isExternalTensor, onnxDataTypeName, tensorByteLength, tensorElementCount } from "./tensor.ts";
import type { GraphProto, ModelProto, TensorProto, ValueInfoProto } from "./types.ts";

/** Element types of inputs and outputs the edge serves (onnxruntime names): the wire's `TENSOR_DTYPES`. */
export const SERVABLE_DTYPES = TENSOR_DTYPES;
export type ServableDtype = TensorDtype;

/** Oldest `ai.onnx` opset onnxruntime guarantees (older ones load "depending upon legacy support"). */
export const MIN_SERVABLE_OPSET = 7;
/** Newest `ai.onnx` opset onnxruntime(-web) 1.30 loads (27 is refused: "ValidateOpsetForDomain"). */
export const MAX_SERVABLE_OPSET = 26;
/** Newest ONNX IR version onnxruntime 1.30 loads (IR 14 is refused). */
export const MAX_SERVABLE_IR_VERSION = 13;
/** Operator domains onnxruntime-web runs besides the default one. */
export const SERVABLE_DOMAINS = ["", "ai.onnx", "ai.onnx.ml", "com.microsoft"] as const;

/**
 * Session memory model, measured with onnxruntime-web 1.30 inside workerd (wasm heap = `WebAssembly.Memory` size):
 * the runtime starts at 16 MiB; creating a session of W bytes of float32-equivalent weights (int8 weights count 4×:
 * constant folding turns them into float32) grows the heap transiently by about 4·W (model copy, parsed proto,
 * initializers, prepacked MatMul weights), and a kept session holds about 1.5·W (8 MiB sessions kept one after
 * another added 12–14 MiB each). The estimate of a live session is {@link SESSION_WEIGHT_FACTOR}·W plus
 * {@link SESSION_OVERHEAD_BYTES}.
 */
export const SESSION_WEIGHT_FACTOR = 1.5;
/** Fixed per-session memory on top of the weights (graph, kernels, arena blocks). */
export const SESSION_OVERHEAD_BYTES = 1024 * 1024;

export type UnsupportedModelReason =
  "ir_version" | "opset" | "domain" | "external_data" | "io_type" | "io_shape" | "io_name" | "no_outputs";

/** Valid ONNX the edge does not serve (the edge answers 400 `invalid_model`); `reason` says which rule failed. */
export class UnsupportedModelError extends Error {
  readonly reason: UnsupportedModelReason;
  constructor(reason: UnsupportedModelReason, message: string) {
    super(message);
    this.name = "UnsupportedModelError";
    this.reason = reason;
  }
}

export interface ServableTensor {
  name: string;
  dtype: ServableDtype;
  /** One entry per axis: a fixed size, a symbolic name, or `null` (unknown). */
  shape: OnnxDim[];
}

export interface ServableModel {
  inputs: ServableTensor[];
  outputs: ServableTensor[];
  /** `ai.onnx` opset (0 when the graph uses none). */
  opset: number;
  irVersion: number;
  /**
   * Inclusive `[min, max]` an integer input must stay in because it indexes a constant table: `Gather` indices into
   * an initializer of `s` rows along the gather axis allow `[-s, s-1]` (ONNX Gather); the intersection over uses.
   */
  inputRanges: Record<string, [number, number]>;
  /**
   * Float32-equivalent bytes of the weights once loaded: each initializer's bytes, except that one dequantized by a
   * `DequantizeLinear` counts 4 bytes per element (constant folding turns int8 weights into float32).
   */
  weightBytes: number;
  /** Estimated memory of a live session: `SESSION_WEIGHT_FACTOR · weightBytes + SESSION_OVERHEAD_BYTES`. */
  sessionBytes: number;
}

const SERVABLE = new Set<string>(SERVABLE_DTYPES);

function ioTensor(v: ValueInfoProto, kind: "input" | "output"): ServableTensor {
  const where = `graph ${kind} ${JSON.stringify(v.name ?? "")}`;
  if (!v.name) throw new UnsupportedModelError("io_name", `a graph ${kind} has no name`);
  const t = v.type?.tensorType;
  if (!t) {
    const what = v.type?.sequenceType
      ? "a sequence"
      : v.type?.mapType
        ? "a map"
        : v.type?.sparseTensorType
          ? "a sparse tensor"
          : v.type?.optionalType
            ? "an optional"
            : "untyped";
    throw new UnsupportedModelError("io_type", `${where} is ${what}; the edge serves dense tensors only`);
  }
  const dtype = onnxDataTypeName(t.elemType);
  if (!SERVABLE.has(dtype)) {
    throw new UnsupportedModelError(
      "io_type",
      `${where} has element type ${dtype}; served types are ${SERVABLE_DTYPES.join(", ")}`,
    );
  }
  if (!t.shape) throw new UnsupportedModelError("io_shape", `${where} declares no shape (its rank must be known)`);
  const shape = (t.shape.dim ?? []).map((d) =>
    d.dimValue !== undefined ? d.dimValue : d.dimParam ? d.dimParam : null,
  );
  if (shape.length > 8) throw new UnsupportedModelError("io_shape", `${where} has rank ${shape.length}; at most 8`);
  return { name: v.name, dtype: dtype as ServableDtype, shape };
}

function checkExternal(t: TensorProto, where: string): void {
  if (!isExternalTensor(t)) return;
  const file = (t.externalData ?? []).find((e) => e.key === "location")?.value;
  throw new UnsupportedModelError(
    "external_data",
    `${where} ${JSON.stringify(t.name ?? "")} keeps its data in an external file${file ? ` (${JSON.stringify(file)})` : ""}; ` +
      "upload a single self-contained .onnx file (onnx.save_model(..., save_as_external_data=False))",
  );
}

function checkGraphData(graph: GraphProto): void {
  forEachGraph(graph, (g) => {
    for (const t of g.initializer ?? []) checkExternal(t, "initializer");
    for (const s of g.sparseInitializer ?? []) {
      if (s.values) checkExternal(s.values, "sparse initializer");
      if (s.indices) checkExternal(s.indices, "sparse initializer indices");
    }
    for (const n of g.node ?? []) {
      for (const a of n.attribute ?? []) {
        if (a.t) checkExternal(a.t, `attribute ${a.name} of node`);
        for (const t of a.tensors ?? []) checkExternal(t, `attribute ${a.name} of node`);
      }
    }
  });
}

function inferInputRanges(graph: GraphProto, inputs: ServableTensor[]): Record<string, [number, number]> {
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name ?? "", t]));
  // A constant table may also reach Gather through DequantizeLinear (a weight-quantized embedding).
  const constDims = new Map<string, number[]>();
  for (const [name, t] of inits) constDims.set(name, t.dims ?? []);
  for (const n of graph.node ?? []) {
    if (isDefaultDomain(n) && n.opType === "DequantizeLinear" && constDims.has(n.input?.[0] ?? "")) {
      constDims.set(n.output?.[0] ?? "", constDims.get(n.input![0]!)!);
    }
  }
  const integer = new Set(inputs.filter((i) => i.dtype === "int64" || i.dtype === "int32").map((i) => i.name));
  const ranges: Record<string, [number, number]> = {};
  for (const n of graph.node ?? []) {
    if (!isDefaultDomain(n) || n.opType !== "Gather") continue;
    const [data, indices] = n.input ?? [];
    if (!indices || !integer.has(indices)) continue;
    const dims = constDims.get(data ?? "");
    if (!dims || dims.length === 0) continue;
    let axis = intAttr(n, "axis", 0);
    if (axis < 0) axis += dims.length;
    const s = dims[axis];
    if (s === undefined || s < 1) continue;
    const prev = ranges[indices];
    ranges[indices] = prev ? [Math.max(prev[0], -s), Math.min(prev[1], s - 1)] : [-s, s - 1];
  }
  return ranges;
}

function weightBytes(graph: GraphProto): number {
  const dequantized = new Set<string>();
  for (const n of graph.node ?? []) {
    if (isDefaultDomain(n) && n.opType === "DequantizeLinear" && n.input?.[0]) dequantized.add(n.input[0]);
  }
  let bytes = 0;
  for (const t of graph.initializer ?? []) {
    let b = tensorByteLength(t);
    if (dequantized.has(t.name ?? "")) {
      try {
        b = 4 * tensorElementCount(t.dims ?? []);
      } catch {
        /* malformed dims: onnxruntime refuses the model later */
      }
    }
    bytes += b;
  }
  return bytes;
}

/** Check a decoded model; throws `UnsupportedModelError` (or `OnnxFormatError`) when the edge cannot serve it. */
export function checkServable(model: ModelProto): ServableModel {
  const graph = model.graph!;
  const irVersion = model.irVersion ?? 0;
  if (irVersion > MAX_SERVABLE_IR_VERSION) {
    throw new UnsupportedModelError(
      "ir_version",
      `ONNX IR version ${irVersion} is newer than onnxruntime 1.30 loads (at most ${MAX_SERVABLE_IR_VERSION})`,
    );
  }
  const imported = new Map<string, number>();
  for (const o of model.opsetImport ?? []) imported.set(o.domain === "ai.onnx" ? "" : (o.domain ?? ""), o.version ?? 0);
  const opset = imported.get("") ?? 0;
  const usesDefault = (graph.node ?? []).some(isDefaultDomain);
  if (usesDefault || imported.has("")) {
    if (opset < MIN_SERVABLE_OPSET || opset > MAX_SERVABLE_OPSET) {
      throw new UnsupportedModelError(
        "opset",
        `ai.onnx opset ${opset} is not supported; onnxruntime-web 1.30 serves opsets ${MIN_SERVABLE_OPSET} to ${MAX_SERVABLE_OPSET}`,
      );
    }
  }
  const local = new Set((model.functions ?? []).map((f) => f.domain ?? ""));
  forEachGraph(graph, (g) => {
    for (const n of g.node ?? []) {
      const domain = n.domain === "ai.onnx" ? "" : (n.domain ?? "");
      if (!imported.has(domain)) {
        throw new UnsupportedModelError(
          "domain",
          `node ${JSON.stringify(n.name ?? n.opType)} (${n.opType}) uses operator domain ${JSON.stringify(domain)}, which the model does not import`,
        );
      }
      if (!(SERVABLE_DOMAINS as readonly string[]).includes(domain) && !local.has(domain)) {
        throw new UnsupportedModelError(
          "domain",
          `operator domain ${JSON.stringify(domain)} (node ${n.opType}) is not available in onnxruntime-web; supported: ai.onnx, ai.onnx.ml, com.microsoft`,
        );
      }
    }
  });
  checkGraphData(graph);

  const initializers = new Set((graph.initializer ?? []).map((t) => t.name));
  const inputs = (graph.input ?? []).filter((v) => !initializers.has(v.name)).map((v) => ioTensor(v, "input"));
  const outputs = (graph.output ?? []).map((v) => ioTensor(v, "output"));
  if (outputs.length === 0) throw new UnsupportedModelError("no_outputs", "the graph has no outputs");
  for (const list of [inputs, outputs]) {
    const seen = new Set<string>();
    for (const t of list) {
      if (seen.has(t.name)) throw new UnsupportedModelError("io_name", `graph tensor name ${t.name} is not unique`);
      seen.add(t.name);
    }
  }
  const weights = weightBytes(graph);
  return {
    inputs,
    outputs,
    opset,
    irVersion,
    inputRanges: inferInputRanges(graph, inputs),
    weightBytes: weights,
    sessionBytes: Math.ceil(SESSION_WEIGHT_FACTOR * weights) + SESSION_OVERHEAD_BYTES,
  };
}

/** Decode (without copying the weights) and check an ONNX file. */
export function inspectServable(bytes: Uint8Array): ServableModel {
  try {
    return checkServable(decodeOnnx(bytes, { copyBytes: false }));
  } catch (e) {
    if (e instanceof UnsupportedModelError || e instanceof OnnxFormatError) throw e;
    throw new OnnxFormatError(`cannot read the model: ${(e as Error).message}`, { cause: e });
  }
}

/** ONNX element type code of a servable dtype name. */
export const SERVABLE_ONNX_TYPES: Record<ServableDtype, number> = {
  float32: OnnxDataType.FLOAT,
  float16: OnnxDataType.FLOAT16,
  int64: OnnxDataType.INT64,
  int32: OnnxDataType.INT32,
  int8: OnnxDataType.INT8,
  uint8: OnnxDataType.UINT8,
  bool: OnnxDataType.BOOL,
};
