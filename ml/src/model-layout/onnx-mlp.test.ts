import { describe, expect, it } from "vitest";
import { decodeOnnx, encodeOnnx, OnnxFormatError } from "../onnx/codec.ts";
import { inspectOnnx } from "../onnx/inspect.ts";
import { float32Tensor } from "../onnx/tensor.ts";
import type { ModelProto } from "../onnx/types.ts";
import { dequantizePerChannelInt8, quantizePerChannelInt8 } from "../quantize/quantize.ts";
import type { MlpParams } from "./mlp.ts";
import { buildMlpOnnx, MLP_ONNX_OPSET, OnnxLayoutError, readMlpFromOnnx } from "./onnx-mlp.ts";

/** Deterministic pseudo-weights (a fixed formula, no randomness needed). */
const values = (n: number, seed: number) =>
  Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed * 78.233) * 0.5);

function mlp(sizes: number[], lastRelu = false): MlpParams {
  return {
    layers: sizes.slice(1).map((out, i) => ({
      inFeatures: sizes[i]!,
      outFeatures: out,
      weight: values(sizes[i]! * out, 2 * i + 1),
      bias: values(out, 2 * i + 2),
      activation: i < sizes.length - 2 || lastRelu ? "relu" : "none",
    })),
  };
}

describe("buildMlpOnnx / readMlpFromOnnx", () => {
  it("round-trips float32 weights bit-exactly", () => {
    const params = mlp([5, 4, 3]);
    const bytes = buildMlpOnnx(params, { quantization: "none", name: "tiny" });
    const back = readMlpFromOnnx(bytes);
    expect(back.quantization).toBe("none");
    expect(back.inputName).toBe("input");
    expect(back.outputName).toBe("logits");
    expect(back.int8).toBeUndefined();
    expect(back.params).toEqual(params);
    expect(decodeOnnx(bytes).graph!.name).toBe("tiny");
  });

  it("round-trips int8 weights as their dequantized values and keeps the int8 tensors", () => {
    const params = mlp([6, 5, 4, 3], true);
    const back = readMlpFromOnnx(buildMlpOnnx(params, { quantization: "int8-per-channel-symmetric" }));
    expect(back.quantization).toBe("int8-per-channel-symmetric");
    back.params.layers.forEach((l, i) => {
      const src = params.layers[i]!;
      const q = quantizePerChannelInt8(src.weight, src.inFeatures, src.outFeatures);
      expect(back.int8!.layers[i]).toEqual(q);
      expect(l.weight).toEqual(dequantizePerChannelInt8(q, src.inFeatures, src.outFeatures));
      expect(l.bias).toEqual(src.bias);
      expect(l.activation).toBe(src.activation);
    });
    expect(back.params.layers.map((l) => l.activation)).toEqual(["relu", "relu", "relu"]);
  });

  it("uses pre-quantized weights as given", () => {
    const params = mlp([2, 2]);
    const given = { values: new Int8Array([1, -2, 3, 127]), scales: new Float32Array([0.5, 0.25]) };
    const back = readMlpFromOnnx(
      buildMlpOnnx(params, { quantization: "int8-per-channel-symmetric", int8: { layers: [given] } }),
    );
    expect(back.int8!.layers[0]).toEqual(given);
    expect(Array.from(back.params.layers[0]!.weight)).toEqual([0.5, -0.5, 1.5, 31.75]);
  });

  it("declares a dynamic batch, opset 17 and the fedge metadata", () => {
    const bytes = buildMlpOnnx(mlp([784, 64, 10]), { quantization: "int8-per-channel-symmetric" });
    const info = inspectOnnx(bytes);
    expect(info.inputs).toEqual([{ name: "input", dtype: "float32", shape: ["batch", 784] }]);
    expect(info.outputs).toEqual([{ name: "logits", dtype: "float32", shape: ["batch", 10] }]);
    expect(info.opset).toBe(MLP_ONNX_OPSET);
    expect(info.nodeCount).toBe(7); // 2 × (DequantizeLinear, MatMul, Add) + 1 Relu
    const model = decodeOnnx(bytes);
    expect(model.metadataProps).toContainEqual({ key: "fedge.quantization", value: "int8-per-channel-symmetric" });
    expect(model.graph!.initializer!.map((t) => t.name)).toEqual([
      "layers.0.weight_quantized",
      "layers.0.weight_scale",
      "layers.0.bias",
      "layers.1.weight_quantized",
      "layers.1.weight_scale",
      "layers.1.bias",
    ]);
  });

  it("refuses inconsistent params and bad pre-quantized weights", () => {
    const p = mlp([3, 2]);
    expect(() => buildMlpOnnx({ layers: [] }, { quantization: "none" })).toThrow(RangeError);
    expect(() =>
      buildMlpOnnx({ layers: [{ ...p.layers[0]!, bias: new Float32Array(3) }] }, { quantization: "none" }),
    ).toThrow(RangeError);
    const nan = { layers: [{ ...p.layers[0]!, weight: p.layers[0]!.weight.map((v, i) => (i === 1 ? NaN : v)) }] };
    expect(() => buildMlpOnnx(nan, { quantization: "none" })).toThrow(/not finite/);
    expect(() => buildMlpOnnx(nan, { quantization: "int8-per-channel-symmetric" })).toThrow(/not finite/);
    const q = { values: new Int8Array(6), scales: new Float32Array([1, 1]) };
    expect(() => buildMlpOnnx(p, { quantization: "none", int8: { layers: [q] } })).toThrow(/quantization is none/);
    expect(() => buildMlpOnnx(p, { quantization: "int8-per-channel-symmetric", int8: { layers: [] } })).toThrow(
      /for 0 layers/,
    );
    const bad = [
      { values: new Int8Array(5), scales: new Float32Array([1, 1]) },
      { values: new Int8Array(6), scales: new Float32Array([1]) },
      { values: new Int8Array(6), scales: new Float32Array([1, 0]) },
      { values: new Int8Array([0, 0, -128, 0, 0, 0]), scales: new Float32Array([1, 1]) },
    ];
    for (const b of bad) {
      expect(() => buildMlpOnnx(p, { quantization: "int8-per-channel-symmetric", int8: { layers: [b] } })).toThrow(
        RangeError,
      );
    }
  });

  describe("anything but the layout → OnnxLayoutError (invalid_model/400)", () => {
    const base = () => decodeOnnx(buildMlpOnnx(mlp([4, 3, 2]), { quantization: "none" }));
    const baseQ = () => decodeOnnx(buildMlpOnnx(mlp([4, 3, 2]), { quantization: "int8-per-channel-symmetric" }));
    const cases: [string, () => ModelProto][] = [
      [
        "an extra node",
        () => {
          const m = base();
          m.graph!.node!.push({ opType: "Softmax", input: ["logits"], output: ["p"] });
          return m;
        },
      ],
      [
        "a Sigmoid instead of Relu",
        () => {
          const m = base();
          m.graph!.node![2]!.opType = "Sigmoid";
          return m;
        },
      ],
      [
        "a renamed weight",
        () => {
          const m = base();
          m.graph!.initializer![0]!.name = "fc1.weight";
          return m;
        },
      ],
      [
        "a missing bias",
        () => {
          const m = base();
          m.graph!.initializer!.splice(1, 1);
          return m;
        },
      ],
      [
        "an extra initializer",
        () => {
          const m = base();
          m.graph!.initializer!.push(float32Tensor("extra", [1], new Float32Array(1)));
          return m;
        },
      ],
      [
        "swapped MatMul inputs",
        () => {
          const m = base();
          m.graph!.node![0]!.input!.reverse();
          return m;
        },
      ],
      [
        "a bias of the wrong length",
        () => {
          const m = base();
          m.graph!.initializer![1] = float32Tensor("layers.0.bias", [2], new Float32Array(2));
          return m;
        },
      ],
      [
        "weight data shorter than its dims",
        () => {
          const m = base();
          m.graph!.initializer![0]!.rawData = new Uint8Array(8);
          return m;
        },
      ],
      [
        "two graph inputs",
        () => {
          const m = base();
          m.graph!.input!.push({ ...m.graph!.input![0]!, name: "other" });
          return m;
        },
      ],
      [
        "an int64 input",
        () => {
          const m = base();
          m.graph!.input![0]!.type!.tensorType!.elemType = 7;
          return m;
        },
      ],
      [
        "an input of the wrong width",
        () => {
          const m = base();
          m.graph!.input![0]!.type!.tensorType!.shape!.dim![1] = { dimValue: 5 };
          return m;
        },
      ],
      [
        "an output name the last node does not write",
        () => {
          const m = base();
          m.graph!.output![0]!.name = "y";
          return m;
        },
      ],
      [
        "opset 12",
        () => {
          const m = base();
          m.opsetImport = [{ domain: "", version: 12 }];
          return m;
        },
      ],
      [
        "DequantizeLinear on axis 0",
        () => {
          const m = baseQ();
          m.graph!.node![0]!.attribute![0]!.i = 0;
          return m;
        },
      ],
      [
        "a DequantizeLinear zero point",
        () => {
          const m = baseQ();
          m.graph!.node![0]!.input!.push("zp");
          return m;
        },
      ],
      [
        "mixed int8 and float32 layers",
        () => {
          const m = baseQ();
          const fp = base();
          m.graph!.node!.splice(4, 1); // drop layer 1's DequantizeLinear
          m.graph!.node![4]!.input![1] = "layers.1.weight";
          m.graph!.initializer!.splice(3, 2, fp.graph!.initializer![2]!);
          return m;
        },
      ],
      [
        "an empty graph",
        () => {
          const m = base();
          m.graph!.node = [];
          m.graph!.initializer = [];
          return m;
        },
      ],
    ];
    it.each(cases)("%s", (_label, make) => {
      const bytes = encodeOnnx(make());
      let caught: unknown;
      try {
        readMlpFromOnnx(bytes);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(OnnxLayoutError);
      // A domain error: no HTTP status in the library; the edge maps it to 400 invalid_model.
      expect((caught as Error).name).toBe("OnnxLayoutError");
    });

    it("bytes that are not ONNX at all → OnnxFormatError", () => {
      expect(() => readMlpFromOnnx(new TextEncoder().encode("hello"))).toThrow(OnnxFormatError);
      const valid = buildMlpOnnx(mlp([4, 3, 2]), { quantization: "none" });
      expect(() => readMlpFromOnnx(valid.subarray(0, 100))).toThrow(OnnxFormatError);
    });
  });
});
