import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import {
  attr,
  decodeOnnx,
  detectQuantization,
  encodeOnnx,
  float32Tensor,
  floatValueInfo,
  inspectServable,
  node,
  OnnxDataType,
  tensorValueInfo,
} from "@fedge/ml";
import { type Tensor } from "@fedge/protocol";
import { runCli } from "./cli/cli.ts";
import { parseCalibration, quantizeOnnx, runOnnx, sampleInputs } from "./quantize-onnx.ts";

const BIN = fileURLToPath(new URL("../bin/fedge.js", import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), "fedge-quantize-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const wave = (n: number, scale: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7 + 0.3) * scale);

/** Conv(8×1×3×3) → Relu → Flatten → Gemm(transB) : image [batch, 1, 6, 6] → logits [batch, 5]. */
function convNet(): Uint8Array {
  return encodeOnnx({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "conv",
      node: [
        node("Conv", ["image", "cw", "cb"], ["c"], { attribute: [attr.ints("pads", [1, 1, 1, 1])] }),
        node("Relu", ["c"], ["r"]),
        node("Flatten", ["r"], ["f"]),
        node("Gemm", ["f", "gw", "gb"], ["logits"], { attribute: [attr.int("transB", 1)] }),
      ],
      initializer: [
        float32Tensor("cw", [8, 1, 3, 3], wave(72, 0.5)),
        float32Tensor("cb", [8], wave(8, 0.1)),
        float32Tensor("gw", [5, 288], wave(5 * 288, 0.2)),
        float32Tensor("gb", [5], wave(5, 0.1)),
      ],
      input: [floatValueInfo("image", ["batch", 1, 6, 6])],
      output: [floatValueInfo("logits", ["batch", 5])],
    },
  });
}

/** Gather(embedding [20, 16], ids) → ReduceMean over seq → MatMul [16, 3]: ids [batch, seq] → logits [batch, 3]. */
function textNet(): Uint8Array {
  return encodeOnnx({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "text",
      node: [
        node("Gather", ["emb", "ids"], ["e"]),
        node("ReduceMean", ["e"], ["m"], { attribute: [attr.ints("axes", [1]), attr.int("keepdims", 0)] }),
        node("MatMul", ["m", "w"], ["logits"]),
      ],
      initializer: [float32Tensor("emb", [20, 16], wave(320, 1)), float32Tensor("w", [16, 3], wave(48, 0.5))],
      input: [tensorValueInfo("ids", OnnxDataType.INT64, ["batch", "seq"])],
      output: [floatValueInfo("logits", ["batch", 3])],
    },
  });
}

describe("quantizeOnnx", () => {
  it("quantizes Conv and Gemm per channel; the result loads in onnxruntime-node and stays close", async () => {
    const fp32 = convNet();
    for (const weights of ["symmetric", "asymmetric"] as const) {
      const { bytes, report } = await quantizeOnnx(fp32, { weights, samples: 16 });
      expect(report.weights_quantized.map((w) => [w.name, w.operator, w.axis])).toEqual([
        ["cw", "Conv", 0],
        ["gw", "Gemm", 0],
      ]);
      expect(detectQuantization(decodeOnnx(bytes)).scheme).toBe(`int8-per-channel-${weights}`);
      expect(report.size_ratio).toBeLessThan(0.4);
      expect(report.comparison).toMatchObject({ inputs: "sampled", output: "logits", examples: 16 });
      expect(report.comparison.max_abs_error).toBeLessThan(0.05);
      expect(report.comparison.top1_agreement).toBeGreaterThanOrEqual(0.9);
      // The interface is unchanged: same inputs and outputs.
      expect(inspectServable(bytes).inputs).toEqual(inspectServable(fp32).inputs);
    }
  });

  it("quantizes an embedding table (Gather) and, with calibration, activations (static uint8)", async () => {
    const fp32 = textNet();
    const graph = inspectServable(fp32);
    expect(graph.inputRanges.ids).toEqual([-20, 19]);
    const calibration = parseCalibration(
      {
        samples: [
          { inputs: [{ name: "ids", shape: [2, 4], datatype: "INT64", data: [1, 2, 3, 4, 5, 6, 7, 19] }] },
          { inputs: [{ name: "ids", shape: [1, 3], datatype: "INT64", data: [[0, 10, 11]] }] },
        ],
      },
      graph,
    );
    const { bytes, report } = await quantizeOnnx(fp32, { weights: "symmetric", calibration });
    expect(report.weights_quantized.map((w) => [w.name, w.operator, w.axis])).toEqual([
      ["emb", "Gather", 0],
      ["w", "MatMul", 1],
    ]);
    expect(report.activations_quantized).toEqual(["m"]);
    expect(report.activations).toBe("uint8-static");
    expect(detectQuantization(decodeOnnx(bytes)).activations).toBe("uint8-static");
    expect(report.comparison).toMatchObject({ inputs: "calibration", examples: 3 });
    expect(report.comparison.max_abs_error).toBeLessThan(0.05);
    const [out] = await runOnnx(bytes, [calibration[0]!]);
    expect(out!.logits!.dims).toEqual([2, 3]);
  });

  it("refuses calibration samples that do not fit the model, naming the sample", () => {
    const graph = inspectServable(textNet());
    expect(() =>
      parseCalibration({ inputs: [{ name: "ids", shape: [1, 2], datatype: "INT64", data: [1, 99] }] }, graph),
    ).toThrow(/calibration sample 0: .*outside the model's range/);
    expect(() => parseCalibration([], graph)).toThrow(/no samples/);
    const sampled = sampleInputs(graph, 4, 1).get("ids") as Tensor<"int64">;
    expect(sampled.shape).toEqual([4, 8]);
    expect(Math.max(...Array.from(sampled.data, Number))).toBeLessThanOrEqual(19);
  });
});

describe("fedge quantize (spawned)", () => {
  const run = (...args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, "quantize", ...args], { encoding: "utf8", timeout: 60_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it("writes the int8 model and prints the report; the model runs in onnxruntime-node", async () => {
    const input = path.join(dir, "conv.onnx");
    const out = path.join(dir, "conv.int8.onnx");
    const reportFile = path.join(dir, "report.json");
    writeFileSync(input, convNet());
    const r = run(input, "--out", out, "--samples", "8", "--report", reportFile);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ input, output: out, scheme: "int8-per-channel-symmetric" });
    expect(JSON.parse(readFileSync(reportFile, "utf8"))).toEqual(report);
    const session = await ort.InferenceSession.create(readFileSync(out));
    const res = await session.run({ image: new ort.Tensor("float32", new Float32Array(36).fill(0.5), [1, 1, 6, 6]) });
    expect(res.logits!.dims).toEqual([1, 5]);
  });

  it("exits 2 on bad arguments and 1 on unreadable inputs (in process)", async () => {
    const cli = async (...args: string[]) => {
      let stderr = "";
      const code = await runCli(["quantize", ...args], { stdout: () => undefined, stderr: (t) => (stderr += t) });
      return { code, stderr };
    };
    const input = path.join(dir, "conv2.onnx");
    writeFileSync(input, convNet());
    expect((await cli(input)).code).toBe(2);
    expect((await cli(input, "--out", "x.onnx", "--weights", "sideways")).code).toBe(2);
    expect((await cli(input, "--out", "x.onnx", "--samples", "0")).code).toBe(2);
    const missing = await cli(path.join(dir, "missing.onnx"), "--out", path.join(dir, "m.onnx"));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/cannot read model .*ENOENT/);
    const badCal = path.join(dir, "cal.json");
    writeFileSync(badCal, "{not json");
    const cal = await cli(input, "--out", path.join(dir, "c.onnx"), "--calibration", badCal);
    expect(cal.code).toBe(1);
    expect(cal.stderr).toMatch(/not JSON/);
    const notOnnx = path.join(dir, "not.onnx");
    writeFileSync(notOnnx, "hello");
    expect((await cli(notOnnx, "--out", path.join(dir, "n.onnx"))).code).toBe(1);
  });
});
