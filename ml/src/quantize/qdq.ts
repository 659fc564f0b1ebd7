/**
 * @module
 * Post-training int8 quantization of any ONNX graph in QDQ form (the `QuantizeLinear`/`DequantizeLinear` pairs of
 * the ONNX standard, which every runtime understands):
 *
 * - weights: each float32 initializer feeding `MatMul` (B), `Gemm` (B), `Conv` (W) or `Gather` (data: embedding
 *   tables) is stored as int8 with one float32 scale per output channel (MatMul B `[K, N]`: axis 1; Gemm B: axis 0
 *   with `transB = 1`, else 1; Conv W `[M, C/g, kh, kw]`: axis 0; Gather data `[V, d]`: axis 0, one scale per row)
 *   and dequantized by a `DequantizeLinear(q, scale[, zero_point], axis)` node in front of its consumer. Symmetric
 *   (`per-axis.ts` rules: s = max|w|/127, no zero point) or asymmetric (int8 zero point per channel).
 * - activations (`calibration` given): the activation input of every quantized MatMul/Gemm/Conv gets a
 *   `QuantizeLinear → DequantizeLinear` pair with a calibrated uint8 scale and zero point (static quantization:
 *   Jacob et al. 2018, arXiv:1712.05877 §3; ONNX "QDQ" format). Tensors without a calibrated range stay float32.
 *
 * Everything else (biases, LayerNorm parameters, non-constant weights) stays float32. The result is a valid model of
 * the same interface; onnxruntime-web folds each constant DequantizeLinear into a float32 weight at session creation.
 * Pure: `ModelProto` in, `ModelProto` out.
 */
import { OnnxDataType } from "../onnx/descriptor.ts";
import { attr, intAttr, isDefaultDomain, node } from "../onnx/graph.ts";
import { float32Tensor, int8Tensor, tensorToFloat32, uint8Tensor } from "../onnx/tensor.ts";
import type { GraphProto, ModelProto, NodeProto, TensorProto } from "../onnx/types.ts";
import type { Quantization } from "@fedge/protocol";
import { activationQParams, quantizePerAxis, type ActivationRange } from "./per-axis.ts";

export interface QuantizeModelOptions {
  /** `symmetric`: int8 in [-127, 127], no zero point; `asymmetric`: int8 with a zero point per channel. */
  weights: "symmetric" | "asymmetric";
  /**
   * Calibrated `[min, max]` of activation tensors by name (from sample inputs): with it, the activation inputs of the
   * quantized operators are statically quantized to uint8.
   * @default none (weight-only quantization)
   */
  calibration?: ReadonlyMap<string, ActivationRange>;
  /**
   * Operator types whose weights are quantized.
   * @default ["MatMul", "Gemm", "Conv", "Gather"]
   */
  operators?: readonly string[];
  /**
   * Smallest weight (elements) worth quantizing: tiny tensors gain nothing and their scales cost more than they save.
   * @default 16
   */
  minElements?: number;
}

export interface QuantizedTensorReport {
  name: string;
  operator: string;
  axis: number;
  elements: number;
}

export interface QuantizeModelResult {
  model: ModelProto;
  weights: QuantizedTensorReport[];
  /** Activation tensors given a QuantizeLinear/DequantizeLinear pair. */
  activations: string[];
}

const DEFAULT_OPERATORS = ["MatMul", "Gemm", "Conv", "Gather"];

/** Which input of a node is its weight, and along which axis its output channels run; `undefined` if none. */
function weightSlot(n: NodeProto, dims: number[]): { input: number; axis: number } | undefined {
  switch (n.opType) {
    case "MatMul":
      return dims.length === 2 ? { input: 1, axis: 1 } : undefined;
    case "Gemm":
      return dims.length === 2 ? { input: 1, axis: intAttr(n, "transB", 0) === 1 ? 0 : 1 } : undefined;
    case "Conv":
      return dims.length >= 3 ? { input: 1, axis: 0 } : undefined;
    case "Gather":
      return dims.length === 2 && intAttr(n, "axis", 0) === 0 ? { input: 0, axis: 0 } : undefined;
    default:
      return undefined;
  }
}

/** Quantize a model's weights (and, with calibration, activations). Throws `RangeError` on bad options. */
export function quantizeModel(model: ModelProto, options: QuantizeModelOptions): QuantizeModelResult {
  if (options.weights !== "symmetric" && options.weights !== "asymmetric") {
    throw new RangeError(`weights must be symmetric or asymmetric, got ${String(options.weights)}`);
  }
  const minElements = options.minElements ?? 16;
  if (!(Number.isInteger(minElements) && minElements >= 1)) {
    throw new RangeError(`minElements must be a positive integer, got ${options.minElements}`);
  }
  const operators = new Set(options.operators ?? DEFAULT_OPERATORS);
  const graph = model.graph!;
  const opset = (model.opsetImport ?? []).find((o) => !o.domain || o.domain === "ai.onnx")?.version ?? 0;
  if (opset < 13)
    throw new RangeError(`per-channel DequantizeLinear needs ai.onnx opset >= 13, the model has ${opset}`);

  const inits = new Map((graph.initializer ?? []).map((t) => [t.name ?? "", t]));
  // An initializer is replaced only when every consumer is a quantizable slot along the same axis.
  const uses = new Map<string, { node: NodeProto; slot: { input: number; axis: number } | undefined }[]>();
  const graphOutputs = new Set((graph.output ?? []).map((o) => o.name));
  for (const n of graph.node ?? []) {
    (n.input ?? []).forEach((name, k) => {
      const t = inits.get(name);
      if (!t) return;
      const slot =
        isDefaultDomain(n) && operators.has(n.opType ?? "") && t.dataType === OnnxDataType.FLOAT
          ? weightSlot(n, t.dims ?? [])
          : undefined;
      const list = uses.get(name) ?? [];
      list.push({ node: n, slot: slot && slot.input === k ? slot : undefined });
      uses.set(name, list);
    });
  }
  const replaced = new Map<string, string>();
  const newInits: TensorProto[] = [];
  const dqNodes: NodeProto[] = [];
  const report: QuantizedTensorReport[] = [];
  for (const [name, list] of uses) {
    const t = inits.get(name)!;
    const axes = new Set(list.map((u) => u.slot?.axis));
    if (axes.size !== 1 || axes.has(undefined) || graphOutputs.has(name)) continue;
    const axis = [...axes][0]!;
    const dims = t.dims ?? [];
    const values = tensorToFloat32(t);
    if (values.length < minElements) continue;
    const q = quantizePerAxis(values, dims, axis, options.weights);
    const qName = `${name}_quantized`;
    const sName = `${name}_scale`;
    const zName = `${name}_zero_point`;
    const dqName = `${name}_dequantized`;
    newInits.push(int8Tensor(qName, dims, q.values), float32Tensor(sName, [dims[axis]!], q.scales));
    const dqInputs = [qName, sName];
    if (q.zeroPoints) {
      newInits.push(int8Tensor(zName, [dims[axis]!], q.zeroPoints));
      dqInputs.push(zName);
    }
    dqNodes.push(node("DequantizeLinear", dqInputs, [dqName], { attribute: [attr.int("axis", axis)] }));
    replaced.set(name, dqName);
    report.push({ name, operator: list[0]!.node.opType ?? "", axis, elements: values.length });
  }

  // Static activation quantization: a Q/DQ pair on the activation input of each quantized MatMul/Gemm/Conv.
  const activationPairs: NodeProto[] = [];
  const activationNames: string[] = [];
  const qdqOf = new Map<string, string>();
  if (options.calibration) {
    for (const n of graph.node ?? []) {
      if (!isDefaultDomain(n) || !["MatMul", "Gemm", "Conv"].includes(n.opType ?? "")) continue;
      if (!replaced.has(n.input?.[1] ?? "")) continue;
      const x = n.input?.[0];
      if (!x || inits.has(x) || qdqOf.has(x)) continue;
      const range = options.calibration.get(x);
      if (!range) continue;
      const { scale, zeroPoint } = activationQParams(range);
      const base = x.replace(/[^A-Za-z0-9_.]/g, "_");
      const s = `${base}_act_scale`;
      const z = `${base}_act_zero_point`;
      newInits.push(float32Tensor(s, [], new Float32Array([scale])), uint8Tensor(z, [], new Uint8Array([zeroPoint])));
      activationPairs.push(
        node("QuantizeLinear", [x, s, z], [`${base}_act_quantized`]),
        node("DequantizeLinear", [`${base}_act_quantized`, s, z], [`${base}_act_dequantized`]),
      );
      qdqOf.set(x, `${base}_act_dequantized`);
      activationNames.push(x);
    }
  }

  const rewire = (n: NodeProto): NodeProto => {
    const quantizable = isDefaultDomain(n) && ["MatMul", "Gemm", "Conv"].includes(n.opType ?? "");
    const input = (n.input ?? []).map((name, k) => {
      if (replaced.has(name)) return replaced.get(name)!;
      if (k === 0 && quantizable && qdqOf.has(name) && replaced.has(n.input?.[1] ?? "")) return qdqOf.get(name)!;
      return name;
    });
    return { ...n, input };
  };
  // Topological order: DQ of weights first (they read only initializers); each activation pair right before its
  // first consumer keeps the order valid, but placing them after the producer is simpler: insert after the node that
  // writes the activation (or first, for graph inputs).
  const producedBy = new Map<string, number>();
  const nodes = graph.node ?? [];
  nodes.forEach((n, i) => (n.output ?? []).forEach((o) => producedBy.set(o, i)));
  const after = new Map<number, NodeProto[]>();
  const first: NodeProto[] = [...dqNodes];
  for (let k = 0; k < activationPairs.length; k += 2) {
    const x = activationPairs[k]!.input![0]!;
    const i = producedBy.get(x);
    if (i === undefined) first.push(activationPairs[k]!, activationPairs[k + 1]!);
    else after.set(i, [...(after.get(i) ?? []), activationPairs[k]!, activationPairs[k + 1]!]);
  }
  const newNodes: NodeProto[] = [...first];
  nodes.forEach((n, i) => {
    newNodes.push(rewire(n));
    newNodes.push(...(after.get(i) ?? []));
  });
  const keptInits = (graph.initializer ?? []).filter((t) => !replaced.has(t.name ?? ""));
  const newGraph: GraphProto = {
    ...graph,
    node: newNodes,
    initializer: [...keptInits, ...newInits],
    // Graph inputs that named a replaced initializer (IR < 4 style) must go too.
    input: (graph.input ?? []).filter((v) => !replaced.has(v.name ?? "")),
  };
  const quantization = options.weights === "symmetric" ? "int8-per-channel-symmetric" : "int8-per-channel-asymmetric";
  const metadata = (model.metadataProps ?? []).filter((p) => !p.key?.startsWith("fedge.quantization"));
  metadata.push({ key: "fedge.quantization", value: quantization });
  if (activationNames.length > 0) metadata.push({ key: "fedge.quantization.activations", value: "uint8-static" });
  return {
    model: { ...model, graph: newGraph, metadataProps: metadata },
    weights: report,
    activations: activationNames,
  };
}

/** What quantization a model carries, read from its graph (constant DequantizeLinear inputs, QuantizeLinear nodes). */
export function detectQuantization(model: ModelProto): Quantization {
  const graph = model.graph!;
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name ?? "", t]));
  let int8 = false;
  let asymmetric = false;
  let staticActivations = false;
  for (const n of graph.node ?? []) {
    if (!isDefaultDomain(n)) continue;
    if (n.opType === "DequantizeLinear") {
      const q = inits.get(n.input?.[0] ?? "");
      if (!q || (q.dataType !== OnnxDataType.INT8 && q.dataType !== OnnxDataType.UINT8)) continue;
      int8 = true;
      const zp = inits.get(n.input?.[2] ?? "");
      if (q.dataType === OnnxDataType.UINT8) asymmetric = true;
      else if (zp && (zp.rawData ?? new Uint8Array()).some((b) => b !== 0)) asymmetric = true;
      else if (zp && (zp.int32Data ?? []).some((v) => v !== 0)) asymmetric = true;
    } else if (n.opType === "QuantizeLinear" && !inits.has(n.input?.[0] ?? "")) {
      staticActivations = true;
    }
  }
  if (!int8) return { scheme: "none", weight_dtype: "float32" };
  return {
    scheme: asymmetric ? "int8-per-channel-asymmetric" : "int8-per-channel-symmetric",
    weight_dtype: "int8",
    ...(staticActivations ? { activations: "uint8-static" as const } : {}),
  };
}
