/**
 * @module
 * Generic validation of an ONNX file: does it parse, what are its graph inputs and outputs, which opset.
 * The edge registry uses it to check an uploaded model against its manifest without running it.
 */
import { decodeOnnx, OnnxFormatError } from "./codec.ts";
import { onnxDataTypeName } from "./tensor.ts";
import type { ValueInfoProto } from "./types.ts";

/** One dimension: a fixed size, a symbolic name (`"batch"`), or `null` when the file leaves it unknown. */
export type OnnxDim = number | string | null;

export interface OnnxValueInfo {
  name: string;
  /** onnxruntime element type name (`"float32"`, `"int8"`, …); `"sequence"`, `"map"`, `"optional"`, `"sparse:<dtype>"` otherwise. */
  dtype: string;
  /** `null` when the file declares no shape (unknown rank). */
  shape: OnnxDim[] | null;
}

export interface OnnxInspection {
  /** Graph inputs that are not initializers (what a caller must feed). */
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  /** Version of the default (`ai.onnx`) operator set. */
  opset: number;
  irVersion: number;
  nodeCount: number;
  initializerCount: number;
  producerName: string;
}

function valueInfo(v: ValueInfoProto, where: string): OnnxValueInfo {
  if (!v.name) throw new OnnxFormatError(`${where} has no name`);
  const t = v.type;
  let dtype = "undefined";
  let shape: OnnxDim[] | null = null;
  const tensor = t?.tensorType ?? t?.sparseTensorType;
  if (tensor) {
    dtype = (t?.sparseTensorType ? "sparse:" : "") + onnxDataTypeName(tensor.elemType);
    if (tensor.shape) {
      shape = (tensor.shape.dim ?? []).map((d) =>
        d.dimValue !== undefined ? d.dimValue : d.dimParam ? d.dimParam : null,
      );
    }
  } else if (t?.sequenceType) dtype = "sequence";
  else if (t?.mapType) dtype = "map";
  else if (t?.optionalType) dtype = "optional";
  return { name: v.name, dtype, shape };
}

/** Parse an ONNX file and describe its interface. Throws `OnnxFormatError` for anything that is not an ONNX model. */
export function inspectOnnx(bytes: Uint8Array): OnnxInspection {
  const model = decodeOnnx(bytes);
  const graph = model.graph!;
  const initializers = new Set((graph.initializer ?? []).map((t) => t.name));
  const opsets = model.opsetImport ?? [];
  const defaultOpset = opsets.find((o) => !o.domain || o.domain === "ai.onnx");
  if (!defaultOpset && (graph.node ?? []).some((n) => !n.domain || n.domain === "ai.onnx")) {
    throw new OnnxFormatError("graph uses ai.onnx operators but imports no ai.onnx opset");
  }
  const outputs = (graph.output ?? []).map((v, i) => valueInfo(v, `graph output ${i}`));
  if (outputs.length === 0) throw new OnnxFormatError("graph has no outputs");
  return {
    inputs: (graph.input ?? [])
      .filter((v) => !initializers.has(v.name))
      .map((v, i) => valueInfo(v, `graph input ${i}`)),
    outputs,
    opset: defaultOpset?.version ?? 0,
    irVersion: model.irVersion!,
    nodeCount: (graph.node ?? []).length,
    initializerCount: initializers.size,
    producerName: model.producerName ?? "",
  };
}
