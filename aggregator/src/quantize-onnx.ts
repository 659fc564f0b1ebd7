/**
 * @module
 * `fedge quantize` as a library: int8 QDQ quantization of an ONNX file (`quantizeModel` from @fedge/ml, pure), with
 * the two steps that need to run the model done by onnxruntime-node (an optional peer dependency of the `fedge`
 * package, loaded on the first run, so the other commands do not need it):
 *
 * - calibration (optional): the float32 model, with the activation inputs of its MatMul/Gemm/Conv nodes exposed as
 *   extra outputs, runs on the sample inputs; each activation's observed [min, max] sets its uint8 scale and zero
 *   point (static quantization);
 * - the report: the float32 and the int8 model run on the same inputs (the calibration samples, or inputs sampled
 *   from the model's signature) and their first float output is compared: max and mean absolute error, top-1
 *   agreement, and the size ratio.
 *
 * Sessions use the edge's options (graph optimizations on, `disable_quant_qdq`), so the report is about what the
 * edge computes: constant DequantizeLinear nodes fold into float32 weights, activation Q/DQ pairs run as written.
 */
import type * as Ort from "onnxruntime-node";
import {
  checkServable,
  compareOutputs,
  decodeOnnx,
  encodeOnnx,
  extendRange,
  isDefaultDomain,
  quantizeModel,
  type ActivationRange,
  type ModelProto,
  type OutputComparison,
  type ServableModel,
} from "@fedge/ml";
import { decodeV2Request, parseV2InferRequest, shapeSize, allocTensorArray, type Tensor } from "@fedge/protocol";
import { xoshiroRandomBytes } from "@fedge/ml";

/** Options of {@link quantizeOnnx}. */
export interface QuantizeOnnxOptions {
  /** Weight quantization: `symmetric` (no zero point) or `asymmetric` (int8 zero point per channel). */
  weights: "symmetric" | "asymmetric";
  /**
   * Sample inputs: each a batch of the model's inputs by name. With them, activations are statically quantized
   * (calibrated on these inputs) and the report compares on them.
   * @default none: weight-only quantization, report on sampled inputs
   */
  calibration?: Map<string, Tensor>[];
  /**
   * Examples sampled for the report when no calibration is given (floats uniform in [0, 1), integer inputs that index
   * a table uniform over its rows, other integers 1, bool true).
   * @default 32
   */
  samples?: number;
  /**
   * Seed of the sampled inputs (reproducible reports; not a privacy-relevant random source).
   * @default 1
   */
  seed?: number;
}

export interface QuantizeOnnxReport {
  scheme: "int8-per-channel-symmetric" | "int8-per-channel-asymmetric";
  activations: "float32" | "uint8-static";
  size_bytes: { fp32: number; int8: number };
  size_ratio: number;
  weights_quantized: { name: string; operator: string; axis: number; elements: number }[];
  activations_quantized: string[];
  comparison: {
    /** Where the compared inputs came from. */
    inputs: "calibration" | "sampled";
    /** The output compared (the model's first float output). */
    output: string;
    examples: number;
    max_abs_error: number;
    mean_abs_error: number;
    top1_agreement: number;
  };
}

/** The edge's session options (workers/src/inference/ort.ts `SESSION_OPTIONS`), one thread. */
export const EDGE_SESSION_OPTIONS = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  graphOptimizationLevel: "all",
  extra: { session: { disable_quant_qdq: "1" } },
} as const;

/** A bad calibration file or model for quantization (the CLI maps it to exit code 1 with the message). */
export class QuantizeInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "QuantizeInputError";
  }
}

let ortModule: Promise<typeof Ort> | undefined;

/** onnxruntime-node, imported on first use. */
function loadOrt(): Promise<typeof Ort> {
  ortModule ??= import("onnxruntime-node").catch((e: unknown) => {
    ortModule = undefined;
    throw new Error("fedge quantize runs the models with onnxruntime-node: install it (npm i onnxruntime-node@^1.30)", {
      cause: e,
    });
  });
  return ortModule;
}

/** Run `bytes` on each batch of `feeds`; returns the named outputs of every batch. */
export async function runOnnx(
  bytes: Uint8Array,
  feeds: Map<string, Tensor>[],
  outputs?: string[],
): Promise<Record<string, Ort.Tensor>[]> {
  const ort = await loadOrt();
  const session = await ort.InferenceSession.create(bytes, EDGE_SESSION_OPTIONS);
  try {
    const results: Record<string, Ort.Tensor>[] = [];
    for (const f of feeds) {
      const inputs: Record<string, Ort.Tensor> = {};
      for (const [name, t] of f) inputs[name] = new ort.Tensor(t.dtype, t.data as Float32Array, t.shape);
      results.push((await session.run(inputs, outputs ?? session.outputNames)) as Record<string, Ort.Tensor>);
    }
    return results;
  } finally {
    await session.release();
  }
}

/**
 * Read calibration samples: a JSON Open Inference Protocol request `{inputs: [{name, shape, datatype, data}]}`, an
 * array of them, or `{samples: [...]}`; each checked against the model like an edge request.
 */
export function parseCalibration(json: unknown, graph: ServableModel): Map<string, Tensor>[] {
  const list = Array.isArray(json)
    ? json
    : json && typeof json === "object" && Array.isArray((json as { samples?: unknown }).samples)
      ? (json as { samples: unknown[] }).samples
      : [json];
  if (list.length === 0) throw new QuantizeInputError("the calibration file holds no samples");
  const signature = {
    inputs: graph.inputs.map((t) => ({ ...t, range: graph.inputRanges[t.name] })),
    outputs: graph.outputs,
  };
  return list.map((item, i) => {
    try {
      const req = parseV2InferRequest(item);
      return decodeV2Request(req, new Uint8Array(0), signature, { binaryByDefault: false }).feeds;
    } catch (e) {
      throw new QuantizeInputError(`calibration sample ${i}: ${(e as Error).message}`);
    }
  });
}

/** Inputs sampled from the model's signature: `n` examples in one batch (see `QuantizeOnnxOptions.samples`). */
export function sampleInputs(graph: ServableModel, n: number, seed: number): Map<string, Tensor> {
  const random = xoshiroRandomBytes(seed);
  const word = new Uint8Array(4);
  const uniform = () => {
    random(word);
    return (word[0]! | (word[1]! << 8) | (word[2]! << 16) | ((word[3]! & 0x7f) << 24)) / 2 ** 31;
  };
  const feeds = new Map<string, Tensor>();
  for (const input of graph.inputs) {
    const shape = input.shape.map((d, i) => (typeof d === "number" ? d : i === 0 ? n : 8));
    const count = shapeSize(shape);
    const data = allocTensorArray(input.dtype, count);
    const range = graph.inputRanges[input.name];
    for (let k = 0; k < count; k++) {
      switch (input.dtype) {
        case "float32":
          (data as Float32Array)[k] = uniform();
          break;
        case "float16":
          (data as Uint16Array)[k] = 0x3800; // 0.5
          break;
        case "int64":
          (data as BigInt64Array)[k] = BigInt(range ? Math.floor(uniform() * (range[1] + 1)) : 1);
          break;
        default:
          (data as Int32Array)[k] = range ? Math.floor(uniform() * (range[1] + 1)) : 1;
      }
    }
    feeds.set(input.name, { dtype: input.dtype, shape, data } as Tensor);
  }
  return feeds;
}

/** Activation tensors worth calibrating: the first input of each MatMul/Gemm/Conv with a constant weight. */
function calibrationTargets(model: ModelProto): string[] {
  const graph = model.graph!;
  const inits = new Set((graph.initializer ?? []).map((t) => t.name));
  const targets = new Set<string>();
  for (const n of graph.node ?? []) {
    if (!isDefaultDomain(n) || !["MatMul", "Gemm", "Conv"].includes(n.opType ?? "")) continue;
    const [x, w] = n.input ?? [];
    if (x && w && inits.has(w) && !inits.has(x)) targets.add(x);
  }
  return [...targets];
}

/** Observed [min, max] of `targets` over the samples (the float32 model with those tensors exposed as outputs). */
async function calibrate(
  model: ModelProto,
  samples: Map<string, Tensor>[],
  targets: string[],
): Promise<Map<string, ActivationRange>> {
  const graph = model.graph!;
  const existing = new Set((graph.output ?? []).map((o) => o.name));
  const exposed: ModelProto = {
    ...model,
    graph: {
      ...graph,
      output: [...(graph.output ?? []), ...targets.filter((t) => !existing.has(t)).map((name) => ({ name }))],
    },
  };
  const results = await runOnnx(encodeOnnx(exposed), samples, targets);
  const ranges = new Map<string, ActivationRange>();
  for (const r of results) {
    for (const t of targets) ranges.set(t, extendRange(ranges.get(t), r[t]!.data as Float32Array));
  }
  return ranges;
}

/** Rows of a tensor's comparison: its first dimension (1 for a scalar). */
function rowsOf(t: Ort.Tensor): number {
  return t.dims.length > 0 ? Number(t.dims[0]) : 1;
}

/** Quantize an ONNX file; returns the int8 file and the report. */
export async function quantizeOnnx(
  bytes: Uint8Array,
  options: QuantizeOnnxOptions,
): Promise<{ bytes: Uint8Array; report: QuantizeOnnxReport }> {
  const model = decodeOnnx(bytes);
  let graph: ServableModel;
  try {
    graph = checkServable(model);
  } catch (e) {
    throw new QuantizeInputError(`the model cannot be served: ${(e as Error).message}`);
  }
  const samples = options.samples ?? 32;
  if (!(Number.isInteger(samples) && samples >= 1 && samples <= 10_000)) {
    throw new RangeError(`samples must be an integer in 1..10000, got ${options.samples}`);
  }
  const calibration =
    options.calibration && options.calibration.length > 0
      ? await calibrate(model, options.calibration, calibrationTargets(model))
      : undefined;
  const q = quantizeModel(model, { weights: options.weights, ...(calibration ? { calibration } : {}) });
  if (q.weights.length === 0) {
    throw new QuantizeInputError("nothing to quantize: no float32 MatMul/Gemm/Conv/Gather weight initializer");
  }
  const out = encodeOnnx(q.model);

  const feeds = options.calibration?.length ? options.calibration : [sampleInputs(graph, samples, options.seed ?? 1)];
  const floatOut = graph.outputs.find((o) => o.dtype === "float32");
  if (!floatOut) throw new QuantizeInputError("the model has no float32 output to compare");
  const [ref, cand] = await Promise.all([runOnnx(bytes, feeds, [floatOut.name]), runOnnx(out, feeds, [floatOut.name])]);
  const refs: number[] = [];
  const cands: number[] = [];
  let rows = 0;
  ref.forEach((r, i) => {
    const a = r[floatOut.name]!;
    const b = cand[i]![floatOut.name]!;
    rows += rowsOf(a);
    refs.push(...(a.data as Float32Array));
    cands.push(...(b.data as Float32Array));
  });
  const cmp: OutputComparison = compareOutputs(refs, cands, rows);
  return {
    bytes: out,
    report: {
      scheme: options.weights === "symmetric" ? "int8-per-channel-symmetric" : "int8-per-channel-asymmetric",
      activations: q.activations.length > 0 ? "uint8-static" : "float32",
      size_bytes: { fp32: bytes.byteLength, int8: out.byteLength },
      size_ratio: out.byteLength / bytes.byteLength,
      weights_quantized: q.weights,
      activations_quantized: q.activations,
      comparison: {
        inputs: options.calibration?.length ? "calibration" : "sampled",
        output: floatOut.name,
        examples: cmp.examples,
        max_abs_error: cmp.maxAbsError,
        mean_abs_error: cmp.meanAbsError,
        top1_agreement: cmp.top1Agreement,
      },
    },
  };
}
