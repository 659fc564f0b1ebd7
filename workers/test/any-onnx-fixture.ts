/**
 * A small ONNX model with several inputs and outputs of every served element type, N-D and symbolic shapes, for the
 * registry and Open Inference Protocol tests (workerd side; its outputs are simple enough to compute here):
 *
 *     sum      float32 [batch, seq, 4] = Gather(table [10, 4], ids) + x
 *     not_flag bool    [batch]         = Not(flag)
 *     h2       float16 [2, 3]          = h + h
 *     ui       int32   [3]             = Cast(u, int32) + i
 *     ids2     int64   [batch, seq]    = ids + ids
 *     s8_out   int8    [2]             = Identity(s8)
 *
 * `ids` indexes the 10-row table, so the edge infers its range [-10, 9].
 */
import {
  attr,
  encodeOnnx,
  float32Tensor,
  node,
  OnnxDataType,
  tensorValueInfo,
  type GraphProto,
  type ModelProto,
} from "@fedge/ml";

export const TABLE = Float32Array.from({ length: 40 }, (_, i) => (i % 7) - 3 + i / 100);

export function anyOnnxModel(over: { opset?: number; graph?: (g: GraphProto) => GraphProto } = {}): ModelProto {
  const T = OnnxDataType;
  let graph: GraphProto = {
    name: "any-onnx",
    node: [
      node("Gather", ["table", "ids"], ["rows"], { attribute: [attr.int("axis", 0)] }),
      node("Add", ["rows", "x"], ["sum"]),
      node("Not", ["flag"], ["not_flag"]),
      node("Add", ["h", "h"], ["h2"]),
      node("Cast", ["u"], ["u32"], { attribute: [attr.int("to", T.INT32)] }),
      node("Add", ["u32", "i"], ["ui"]),
      node("Add", ["ids", "ids"], ["ids2"]),
      node("Identity", ["s8"], ["s8_out"]),
    ],
    initializer: [float32Tensor("table", [10, 4], TABLE)],
    input: [
      tensorValueInfo("x", T.FLOAT, ["batch", "seq", 4]),
      tensorValueInfo("ids", T.INT64, ["batch", "seq"]),
      tensorValueInfo("flag", T.BOOL, ["batch"]),
      tensorValueInfo("h", T.FLOAT16, [2, 3]),
      tensorValueInfo("u", T.UINT8, [3]),
      tensorValueInfo("i", T.INT32, [3]),
      tensorValueInfo("s8", T.INT8, [2]),
    ],
    output: [
      tensorValueInfo("sum", T.FLOAT, ["batch", "seq", 4]),
      tensorValueInfo("not_flag", T.BOOL, ["batch"]),
      tensorValueInfo("h2", T.FLOAT16, [2, 3]),
      tensorValueInfo("ui", T.INT32, [3]),
      tensorValueInfo("ids2", T.INT64, ["batch", "seq"]),
      tensorValueInfo("s8_out", T.INT8, [2]),
    ],
  };
  if (over.graph) graph = over.graph(graph);
  return {
    irVersion: 8,
    opsetImport: [{ domain: "", version: over.opset ?? 17 }],
    producerName: "fedge-test",
    graph,
  };
}

export function anyOnnxBytes(over: Parameters<typeof anyOnnxModel>[0] = {}): Uint8Array {
  return encodeOnnx(anyOnnxModel(over));
}

/** A float32 MatMul model `x [batch, k] · w [k, n]` whose weight file is about `mib` MiB (w = 0.001 everywhere). */
export function bigMatMulBytes(mib: number, k = 1024): Uint8Array {
  const n = Math.round((mib * 1024 * 1024) / 4 / k);
  return encodeOnnx({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "big",
      node: [node("MatMul", ["x", "w"], ["y"])],
      initializer: [float32Tensor("w", [k, n], new Float32Array(k * n).fill(0.001))],
      input: [tensorValueInfo("x", OnnxDataType.FLOAT, ["batch", k])],
      output: [tensorValueInfo("y", OnnxDataType.FLOAT, ["batch", n])],
    },
  });
}
