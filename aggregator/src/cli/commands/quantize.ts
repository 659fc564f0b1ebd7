/**
 * @module
 * `fedge quantize MODEL.onnx --out OUT.onnx`: int8 QDQ quantization of a team's own float32 model, with a report that
 * compares it with the float32 model. Prints one JSON object (the report) on stdout.
 */
import { readFile, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { checkServable, decodeOnnx, type ServableModel } from "@fedge/ml";
import { parseCalibration, QuantizeInputError, quantizeOnnx } from "../../quantize-onnx.ts";
import { EXIT_OK, UsageError, type Command } from "../command.ts";

const USAGE = `Usage:
  fedge quantize MODEL.onnx --out OUT.onnx [--weights symmetric|asymmetric] [--calibration FILE]
                 [--samples N] [--seed S] [--report FILE]

Quantizes the float32 weights of every MatMul, Gemm, Conv and Gather (embedding table) to int8, one scale per
output channel, in QDQ form (DequantizeLinear in front of each operator): about 4x smaller; the edge and
onnxruntime-web/-node load it unchanged. With --calibration, the activations entering each quantized
MatMul/Gemm/Conv are quantized too (uint8, scales from their range on the sample inputs: static quantization).

Prints a JSON report comparing the int8 model with the float32 one on the calibration inputs (or on sampled ones):
  {"size_bytes": {"fp32", "int8"}, "size_ratio", "comparison": {"output", "examples", "max_abs_error",
   "mean_abs_error", "top1_agreement"}, "weights_quantized": [...], "activations_quantized": [...], ...}

Options:
  --out FILE           where to write the int8 model (required)
  --weights MODE       symmetric (default: int8 in [-127, 127], no zero point) or asymmetric (int8 zero point per channel)
  --calibration FILE   JSON sample inputs: an Open Inference Protocol request {"inputs": [{"name", "shape",
                       "datatype", "data"}]}, an array of them, or {"samples": [...]}
  --samples N          examples sampled for the report when there is no calibration file (default 32)
  --seed S             seed of the sampled examples (default 1)
  --report FILE        also write the report to FILE
  -h, --help           this help
Exit codes: 0 ok, 2 bad arguments, 1 other errors (invalid_model: a malformed or unservable model; invalid_input:
an unreadable model, or a bad calibration file).
`;

function positiveInt(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < 1)
    throw new UsageError(`--${flag} must be a positive integer, got "${text}"`);
  return Number(text);
}

async function readInput(path: string, what: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    throw new QuantizeInputError(
      `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
}

export const quantizeCommand: Command = {
  summary: "quantize a float32 ONNX model to int8 (QDQ, per channel) and report the error against the original",
  usage: USAGE,
  async run(argv, io) {
    let values;
    let positionals: string[];
    try {
      ({ values, positionals } = parseArgs({
        args: argv,
        strict: true,
        allowPositionals: true,
        options: {
          out: { type: "string" },
          weights: { type: "string", default: "symmetric" },
          calibration: { type: "string" },
          samples: { type: "string" },
          seed: { type: "string" },
          report: { type: "string" },
        },
      }));
    } catch (err) {
      throw new UsageError((err as Error).message.split("\n")[0]!);
    }
    if (positionals.length !== 1) throw new UsageError("expected exactly one MODEL.onnx argument");
    if (!values.out) throw new UsageError("missing --out OUT.onnx");
    const weights = values.weights;
    if (weights !== "symmetric" && weights !== "asymmetric") {
      throw new UsageError(`--weights must be symmetric or asymmetric, got "${weights}"`);
    }
    const samples = positiveInt("samples", values.samples, 32);
    const seed = positiveInt("seed", values.seed, 1);
    const bytes = await readInput(positionals[0]!, "model");
    let calibration;
    if (values.calibration) {
      let graph: ServableModel;
      try {
        graph = checkServable(decodeOnnx(bytes));
      } catch (e) {
        throw new QuantizeInputError(`the model cannot be served: ${(e as Error).message}`);
      }
      const text = new TextDecoder().decode(await readInput(values.calibration, "calibration file"));
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (e) {
        throw new QuantizeInputError(`calibration file ${values.calibration} is not JSON: ${(e as Error).message}`);
      }
      calibration = parseCalibration(json, graph);
    }
    const result = await quantizeOnnx(bytes, { weights, samples, seed, ...(calibration ? { calibration } : {}) });
    await writeFile(values.out, result.bytes);
    const report = JSON.stringify({ input: positionals[0], output: values.out, ...result.report });
    if (values.report) await writeFile(values.report, report + "\n");
    io.stdout(report + "\n");
    return EXIT_OK;
  },
};
