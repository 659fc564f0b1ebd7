/**
 * @module
 * The ONNX form of a fedge MLP (`MlpParams`), written and recognised exactly.
 *
 * Graph (opset {@link MLP_ONNX_OPSET}, IR {@link MLP_ONNX_IR_VERSION}):
 *
 *     input "input" float32 [batch, in]
 *     per layer i:
 *       [int8]  DequantizeLinear(layers.{i}.weight_quantized int8 [in,out], layers.{i}.weight_scale float32 [out], axis=1)
 *                 → layers.{i}.weight_dequantized
 *       MatMul(x, layers.{i}.weight | layers.{i}.weight_dequantized) → layers.{i}.matmul
 *       Add(·, layers.{i}.bias float32 [out])                          → layers.{i}.add
 *       Relu(·)  (layers whose activation is "relu")                   → layers.{i}.relu
 *     output "logits" float32 [batch, out]  (the last node writes it directly)
 *
 * int8 weights follow `quantize/` (per-channel symmetric, no zero point, so `DequantizeLinear` computes `q · scale[j]`).
 * All tensor data is stored as little-endian `raw_data`.
 */
import { decodeOnnx, encodeOnnx, OnnxFormatError } from "../onnx/codec.ts";
import { OnnxAttributeType, OnnxDataType } from "../onnx/descriptor.ts";
import { float32Tensor, int8Tensor, onnxDataTypeName, tensorToFloat32, tensorToInt8 } from "../onnx/tensor.ts";
import type { GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto } from "../onnx/types.ts";
import { dequantizePerChannelInt8, quantizePerChannelInt8, type QuantizedInt8 } from "../quantize/quantize.ts";
import { assertValidMlp, type Activation, type DenseLayer, type MlpParams } from "./mlp.ts";

/** Default-domain opset of exported MLPs: ≥ 13 for per-axis `DequantizeLinear`; run by onnxruntime-web/-node 1.30. */
export const MLP_ONNX_OPSET = 17;
/** ONNX IR version that goes with opset 17. */
export const MLP_ONNX_IR_VERSION = 8;
export const MLP_INPUT_NAME = "input";
export const MLP_OUTPUT_NAME = "logits";
/** Symbolic name of the dynamic batch dimension. */
export const MLP_BATCH_DIM = "batch";

export type OnnxQuantization = "none" | "int8-per-channel-symmetric";

/** The file is valid ONNX but not the fedge MLP layout (the edge answers 400 `invalid_model`). */
export class OnnxLayoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "OnnxLayoutError";
  }
}

export interface BuildMlpOnnxOptions {
  /** `none`: float32 weights; `int8-per-channel-symmetric`: int8 weights + one float32 scale per output channel. */
  quantization: OnnxQuantization;
  /**
   * Graph name.
   * @default "fedge-mlp"
   */
  name?: string;
  /**
   * Pre-quantized weights, one entry per layer (e.g. from the gpu-node backend), used as they are in int8 mode.
   * @default quantizePerChannelInt8 of each layer's float32 weight
   */
  int8?: { layers: QuantizedInt8[] };
  /**
   * Extra `metadata_props` (string key/value pairs) stored in the model.
   * @default {}
   */
  metadata?: Record<string, string>;
}

export interface MlpFromOnnx {
  params: MlpParams;
  quantization: OnnxQuantization;
  inputName: string;
  outputName: string;
  /** The stored int8 weights and scales per layer, in int8 mode (`params` holds their dequantized values). */
  int8?: { layers: QuantizedInt8[] };
}

const name = (i: number, what: string) => `layers.${i}.${what}`;

function tensorType(dims: (number | string)[]): NonNullable<ValueInfoProto["type"]> {
  return {
    tensorType: {
      elemType: OnnxDataType.FLOAT,
      shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
    },
  };
}

function checkFinite(values: Float32Array, what: string): void {
  for (let k = 0; k < values.length; k++) {
    if (!Number.isFinite(values[k]!)) throw new RangeError(`${what}[${k}] is not finite`);
  }
}

function checkPrequantized(q: QuantizedInt8, l: DenseLayer, i: number): void {
  if (q.values.length !== l.inFeatures * l.outFeatures) {
    throw new RangeError(`int8 layer ${i}: ${q.values.length} values, expected ${l.inFeatures}×${l.outFeatures}`);
  }
  if (q.scales.length !== l.outFeatures)
    throw new RangeError(`int8 layer ${i}: ${q.scales.length} scales, expected ${l.outFeatures}`);
  q.scales.forEach((s, j) => {
    if (!(s > 0) || !Number.isFinite(s))
      throw new RangeError(`int8 layer ${i}: scale[${j}] must be positive and finite`);
  });
  if (q.values.includes(-128)) throw new RangeError(`int8 layer ${i}: -128 is outside the symmetric range [-127, 127]`);
}

/** Build the ONNX file of an MLP. Throws `RangeError` on inconsistent params or pre-quantized weights. */
export function buildMlpOnnx(params: MlpParams, opts: BuildMlpOnnxOptions): Uint8Array {
  assertValidMlp(params);
  const quantization = opts.quantization;
  if (quantization !== "none" && quantization !== "int8-per-channel-symmetric") {
    throw new RangeError(`unknown quantization ${String(quantization)}`);
  }
  if (opts.int8 && quantization !== "int8-per-channel-symmetric") {
    throw new RangeError("int8 weights were given but quantization is none");
  }
  if (opts.int8 && opts.int8.layers.length !== params.layers.length) {
    throw new RangeError(`int8 weights for ${opts.int8.layers.length} layers, the model has ${params.layers.length}`);
  }
  const nodes: NodeProto[] = [];
  const initializer: TensorProto[] = [];
  let x = MLP_INPUT_NAME;
  const last = params.layers.length - 1;
  params.layers.forEach((l, i) => {
    checkFinite(l.bias, name(i, "bias"));
    let w: string;
    if (quantization === "int8-per-channel-symmetric") {
      const q = opts.int8?.layers[i] ?? quantizePerChannelInt8(l.weight, l.inFeatures, l.outFeatures);
      if (opts.int8) checkPrequantized(q, l, i);
      initializer.push(int8Tensor(name(i, "weight_quantized"), [l.inFeatures, l.outFeatures], q.values));
      initializer.push(float32Tensor(name(i, "weight_scale"), [l.outFeatures], q.scales));
      w = name(i, "weight_dequantized");
      nodes.push({
        name: `layers.${i}/DequantizeLinear`,
        opType: "DequantizeLinear",
        input: [name(i, "weight_quantized"), name(i, "weight_scale")],
        output: [w],
        attribute: [{ name: "axis", type: OnnxAttributeType.INT, i: 1 }],
      });
    } else {
      checkFinite(l.weight, name(i, "weight"));
      initializer.push(float32Tensor(name(i, "weight"), [l.inFeatures, l.outFeatures], l.weight));
      w = name(i, "weight");
    }
    initializer.push(float32Tensor(name(i, "bias"), [l.outFeatures], l.bias));
    const relu = l.activation === "relu";
    const addOut = i === last && !relu ? MLP_OUTPUT_NAME : name(i, "add");
    nodes.push({ name: `layers.${i}/MatMul`, opType: "MatMul", input: [x, w], output: [name(i, "matmul")] });
    nodes.push({
      name: `layers.${i}/Add`,
      opType: "Add",
      input: [name(i, "matmul"), name(i, "bias")],
      output: [addOut],
    });
    x = addOut;
    if (relu) {
      const reluOut = i === last ? MLP_OUTPUT_NAME : name(i, "relu");
      nodes.push({ name: `layers.${i}/Relu`, opType: "Relu", input: [x], output: [reluOut] });
      x = reluOut;
    }
  });
  const first = params.layers[0]!;
  const graph: GraphProto = {
    name: opts.name ?? "fedge-mlp",
    node: nodes,
    initializer,
    input: [{ name: MLP_INPUT_NAME, type: tensorType([MLP_BATCH_DIM, first.inFeatures]) }],
    output: [{ name: MLP_OUTPUT_NAME, type: tensorType([MLP_BATCH_DIM, params.layers[last]!.outFeatures]) }],
  };
  const metadata = { ...opts.metadata, "fedge.layout": "mlp", "fedge.quantization": quantization };
  const model: ModelProto = {
    irVersion: MLP_ONNX_IR_VERSION,
    opsetImport: [{ domain: "", version: MLP_ONNX_OPSET }],
    producerName: "fedge",
    producerVersion: "0.1.0",
    graph,
    metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
  };
  return encodeOnnx(model);
}

// ─── reading ────────────────────────────────────────────────────────────────────────────────────────────────────────

function expectFloatMatrixIo(v: ValueInfoProto, features: number, what: string): void {
  const t = v.type?.tensorType;
  if (!t || t.elemType !== OnnxDataType.FLOAT) {
    throw new OnnxLayoutError(`${what} "${v.name}" must be a float32 tensor, got ${onnxDataTypeName(t?.elemType)}`);
  }
  const dims = t.shape?.dim ?? [];
  if (dims.length !== 2) throw new OnnxLayoutError(`${what} "${v.name}" must have rank 2 [batch, features]`);
  const d1 = dims[1]!;
  if (d1.dimValue !== features) {
    throw new OnnxLayoutError(
      `${what} "${v.name}" has ${d1.dimValue ?? d1.dimParam ?? "?"} features, expected ${features}`,
    );
  }
}

function expectDims(t: TensorProto, dims: number[]): void {
  const got = t.dims ?? [];
  if (got.length !== dims.length || got.some((d, k) => d !== dims[k])) {
    throw new OnnxLayoutError(`initializer ${t.name} has dims [${got.join(", ")}], expected [${dims.join(", ")}]`);
  }
}

function expectNode(node: NodeProto | undefined, opType: string, inputs: string[], where: string): string {
  if (!node) throw new OnnxLayoutError(`${where}: expected a ${opType} node, the graph ends`);
  if (node.opType !== opType || (node.domain && node.domain !== "ai.onnx")) {
    throw new OnnxLayoutError(
      `${where}: expected ${opType}, got ${node.domain ? node.domain + "." : ""}${node.opType}`,
    );
  }
  const got = node.input ?? [];
  if (got.length !== inputs.length || got.some((s, k) => s !== inputs[k])) {
    throw new OnnxLayoutError(`${where}: ${opType} inputs [${got.join(", ")}], expected [${inputs.join(", ")}]`);
  }
  const out = node.output ?? [];
  if (out.length !== 1 || !out[0]) throw new OnnxLayoutError(`${where}: ${opType} must have exactly one output`);
  const allowedAttrs = opType === "DequantizeLinear" ? ["axis"] : [];
  for (const a of node.attribute ?? []) {
    if (!allowedAttrs.includes(a.name ?? ""))
      throw new OnnxLayoutError(`${where}: unexpected ${opType} attribute ${a.name}`);
  }
  return out[0];
}

/**
 * Parse an ONNX file written by {@link buildMlpOnnx} (or one with exactly its layout) back into `MlpParams`; int8
 * weights are dequantized to float32 (`q · scale`). Throws `OnnxFormatError` if the bytes are not ONNX and
 * `OnnxLayoutError` for any other graph.
 */
export function readMlpFromOnnx(bytes: Uint8Array): MlpFromOnnx {
  const model = decodeOnnx(bytes);
  const graph = model.graph!;
  const opset = (model.opsetImport ?? []).find((o) => !o.domain || o.domain === "ai.onnx")?.version ?? 0;
  if (opset < 13) throw new OnnxLayoutError(`default opset ${opset} is below 13`);
  if ((graph.sparseInitializer ?? []).length > 0)
    throw new OnnxLayoutError("sparse initializers are not part of the layout");

  const inits = new Map<string, TensorProto>();
  for (const t of graph.initializer ?? []) {
    if (!t.name) throw new OnnxLayoutError("initializer without a name");
    if (inits.has(t.name)) throw new OnnxLayoutError(`duplicate initializer ${t.name}`);
    inits.set(t.name, t);
  }
  const feeds = (graph.input ?? []).filter((v) => !inits.has(v.name ?? ""));
  if (feeds.length !== 1) throw new OnnxLayoutError(`expected exactly one graph input, found ${feeds.length}`);
  if ((graph.output ?? []).length !== 1) {
    throw new OnnxLayoutError(`expected exactly one graph output, found ${(graph.output ?? []).length}`);
  }
  const input = feeds[0]!;
  const output = graph.output![0]!;
  const inputName = input.name!;
  const outputName = output.name ?? "";

  const nodes = graph.node ?? [];
  const used = new Set<string>();
  const take = (tensorName: string, dataType: number, where: string): TensorProto => {
    const t = inits.get(tensorName);
    if (!t) throw new OnnxLayoutError(`${where}: missing initializer ${tensorName}`);
    if (t.dataType !== dataType) {
      throw new OnnxLayoutError(
        `initializer ${tensorName} is ${onnxDataTypeName(t.dataType)}, expected ${onnxDataTypeName(dataType)}`,
      );
    }
    used.add(tensorName);
    return t;
  };

  const layers: DenseLayer[] = [];
  const int8Layers: QuantizedInt8[] = [];
  let quantized: boolean | undefined;
  let x = inputName;
  let k = 0;
  try {
    for (let i = 0; k < nodes.length; i++) {
      const where = `layer ${i}`;
      const op = nodes[k]!.opType;
      if (op !== "DequantizeLinear" && op !== "MatMul") {
        throw new OnnxLayoutError(`${where}: unexpected ${op} node (a layer starts with DequantizeLinear or MatMul)`);
      }
      const isDq = op === "DequantizeLinear";
      if (quantized === undefined) quantized = isDq;
      else if (quantized !== isDq) throw new OnnxLayoutError(`${where}: mixes int8 and float32 layers`);
      let w: string;
      let weightTensor: TensorProto;
      let q: QuantizedInt8 | undefined;
      if (isDq) {
        const dq = nodes[k++]!;
        w = expectNode(dq, "DequantizeLinear", [name(i, "weight_quantized"), name(i, "weight_scale")], where);
        const axis = (dq.attribute ?? []).find((a) => a.name === "axis");
        if (!axis || axis.type !== OnnxAttributeType.INT || (axis.i !== 1 && axis.i !== -1)) {
          throw new OnnxLayoutError(`${where}: DequantizeLinear must have axis=1 (per output channel)`);
        }
        weightTensor = take(name(i, "weight_quantized"), OnnxDataType.INT8, where);
        const scale = take(name(i, "weight_scale"), OnnxDataType.FLOAT, where);
        q = { values: tensorToInt8(weightTensor), scales: tensorToFloat32(scale) };
      } else {
        w = name(i, "weight");
        weightTensor = take(w, OnnxDataType.FLOAT, where);
      }
      const wDims = weightTensor.dims ?? [];
      if (wDims.length !== 2) throw new OnnxLayoutError(`initializer ${weightTensor.name} must be a matrix [in, out]`);
      const [inFeatures, outFeatures] = wDims as [number, number];
      if (inFeatures < 1 || outFeatures < 1) throw new OnnxLayoutError(`initializer ${weightTensor.name} is empty`);
      const prev = layers[i - 1];
      if (prev && prev.outFeatures !== inFeatures) {
        throw new OnnxLayoutError(`${where}: input ${inFeatures} does not match previous output ${prev.outFeatures}`);
      }
      const mm = expectNode(nodes[k++], "MatMul", [x, w], where);
      const biasTensor = take(name(i, "bias"), OnnxDataType.FLOAT, where);
      expectDims(biasTensor, [outFeatures]);
      x = expectNode(nodes[k++], "Add", [mm, name(i, "bias")], where);
      let activation: Activation = "none";
      if (nodes[k]?.opType === "Relu") {
        x = expectNode(nodes[k++], "Relu", [x], where);
        activation = "relu";
      }
      let weight: Float32Array;
      if (q) {
        expectDims(inits.get(name(i, "weight_scale"))!, [outFeatures]);
        const bad = q.scales.findIndex((s) => !(s > 0) || !Number.isFinite(s));
        if (bad >= 0) throw new OnnxLayoutError(`${where}: weight_scale[${bad}] must be positive and finite`);
        weight = dequantizePerChannelInt8(q, inFeatures, outFeatures);
        int8Layers.push(q);
      } else {
        weight = tensorToFloat32(weightTensor);
      }
      layers.push({ inFeatures, outFeatures, weight, bias: tensorToFloat32(biasTensor), activation });
    }
  } catch (e) {
    // A tensor whose data does not match its dims is a layout problem here, not a wire-format one.
    if (e instanceof OnnxFormatError) throw new OnnxLayoutError(e.message);
    throw e;
  }
  if (layers.length === 0) throw new OnnxLayoutError("graph has no layers");
  if (x !== outputName) throw new OnnxLayoutError(`the last node writes ${x}, but the graph output is ${outputName}`);
  const unused = [...inits.keys()].filter((n) => !used.has(n));
  if (unused.length > 0) throw new OnnxLayoutError(`unexpected initializers: ${unused.join(", ")}`);
  expectFloatMatrixIo(input, layers[0]!.inFeatures, "input");
  expectFloatMatrixIo(output, layers[layers.length - 1]!.outFeatures, "output");
  const params: MlpParams = { layers };
  for (const l of layers) {
    const bad = [l.weight, l.bias].find((a) => a.some((v) => !Number.isFinite(v)));
    if (bad) throw new OnnxLayoutError("weights must be finite");
  }
  assertValidMlp(params);
  return {
    params,
    quantization: quantized ? "int8-per-channel-symmetric" : "none",
    inputName,
    outputName,
    ...(quantized ? { int8: { layers: int8Layers } } : {}),
  };
}
