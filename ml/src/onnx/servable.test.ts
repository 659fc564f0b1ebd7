import { describe, expect, it } from "vitest";
import { encodeOnnx } from "./codec.ts";
import { OnnxDataType } from "./descriptor.ts";
import { attr, node, tensorValueInfo } from "./graph.ts";
import { checkServable, inspectServable, SESSION_OVERHEAD_BYTES, UnsupportedModelError } from "./servable.ts";
import { float32Tensor, int8Tensor } from "./tensor.ts";
import type { GraphProto, ModelProto } from "./types.ts";

const T = OnnxDataType;

function model(graph: Partial<GraphProto> = {}, opset = 17): ModelProto {
  return {
    irVersion: 8,
    opsetImport: [{ domain: "", version: opset }],
    graph: {
      name: "g",
      node: [
        node("DequantizeLinear", ["emb_q", "emb_s"], ["emb"], { attribute: [attr.int("axis", 0)] }),
        node("Gather", ["emb", "ids"], ["e"]),
        node("Gather", ["pos", "ids"], ["p"], { attribute: [attr.int("axis", -2)] }),
        node("Add", ["e", "p"], ["y"]),
      ],
      initializer: [
        int8Tensor("emb_q", [50, 4], new Int8Array(200)),
        float32Tensor("emb_s", [50], new Float32Array(50).fill(1)),
        float32Tensor("pos", [30, 4], new Float32Array(120)),
      ],
      input: [tensorValueInfo("ids", T.INT64, ["batch", "seq"])],
      output: [tensorValueInfo("y", T.FLOAT, ["batch", "seq", 4])],
      ...graph,
    },
  };
}

describe("checkServable", () => {
  it("describes the interface, the ranges Gather implies and the session memory", () => {
    const info = checkServable(model());
    expect(info.inputs).toEqual([{ name: "ids", dtype: "int64", shape: ["batch", "seq"] }]);
    expect(info.outputs[0]!.shape).toEqual(["batch", "seq", 4]);
    // Two tables, 50 rows (through DequantizeLinear) and 30 rows: the intersection [-30, 29].
    expect(info.inputRanges).toEqual({ ids: [-30, 29] });
    // int8 table counts 4 bytes per element (folded to float32): 200·4 + 50·4 + 120·4.
    expect(info.weightBytes).toBe(800 + 200 + 480);
    expect(info.sessionBytes).toBe(Math.ceil(1.5 * 1480) + SESSION_OVERHEAD_BYTES);
    expect(inspectServable(encodeOnnx(model())).inputRanges).toEqual(info.inputRanges);
  });

  it("refuses what onnxruntime-web does not serve, naming the rule", () => {
    const reason = (m: ModelProto) => {
      try {
        checkServable(m);
      } catch (e) {
        return (e as UnsupportedModelError).reason;
      }
      return "ok";
    };
    expect(reason(model({}, 27))).toBe("opset");
    expect(reason({ ...model(), irVersion: 14 })).toBe("ir_version");
    expect(reason(model({ node: [{ ...node("Relu", ["ids"], ["y"]), domain: "x.y" }] }))).toBe("domain");
    expect(reason(model({ input: [tensorValueInfo("ids", T.STRING, [1])] }))).toBe("io_type");
    expect(reason(model({ input: [{ name: "ids", type: { sequenceType: {} } }] }))).toBe("io_type");
    expect(reason(model({ output: [{ name: "y", type: { tensorType: { elemType: T.FLOAT } } }] }))).toBe("io_shape");
    expect(reason(model({ output: [] }))).toBe("no_outputs");
    expect(
      reason(
        model({
          output: [tensorValueInfo("y", T.FLOAT, [1]), tensorValueInfo("y", T.FLOAT, [1])],
        }),
      ),
    ).toBe("io_name");
    const ext = {
      ...float32Tensor("pos", [30, 4], new Float32Array(120)),
      rawData: new Uint8Array(0),
      dataLocation: 1,
    };
    expect(reason(model({ initializer: [ext] }))).toBe("external_data");
    // Inside a subgraph too.
    const sub: GraphProto = {
      name: "s",
      node: [],
      initializer: [ext],
      output: [tensorValueInfo("pos", T.FLOAT, [30, 4])],
    };
    expect(
      reason(
        model({
          node: [
            ...model().graph!.node!,
            node("If", ["c"], ["z"], { attribute: [{ name: "then_branch", type: 5, g: sub }] }),
          ],
        }),
      ),
    ).toBe("external_data");
    expect(new UnsupportedModelError("opset", "x").reason).toBe("opset");
    expect(reason(model())).toBe("ok");
  });
});
