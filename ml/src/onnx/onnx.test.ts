import fc from "fast-check";
import * as protobuf from "protobufjs/light.js";
import { describe, expect, it } from "vitest";
import { decodeOnnx, decodeOnnxMessage, encodeOnnx, encodeOnnxMessage, MAX_NESTING, OnnxFormatError } from "./codec.ts";
import { ONNX_PROTO_JSON, OnnxAttributeType, OnnxDataType } from "./descriptor.ts";
import { inspectOnnx } from "./inspect.ts";
import { float32Tensor, int8Tensor, tensorToFloat32, tensorToInt8 } from "./tensor.ts";
import type { ModelProto } from "./types.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const utf8 = (s: string) => new TextEncoder().encode(s);

/** A model touching every kind of field: nested messages, oneofs, packed/unpacked lists, negative int64, bytes. */
function richModel(): ModelProto {
  return {
    irVersion: 8,
    opsetImport: [
      { domain: "", version: 17 },
      { domain: "com.microsoft", version: 1 },
    ],
    producerName: "fedge-test",
    producerVersion: "1",
    modelVersion: -5,
    docString: "ünïcödé ✓",
    metadataProps: [{ key: "k", value: "v" }],
    graph: {
      name: "g",
      node: [
        {
          name: "n0",
          opType: "Gemm",
          input: ["x", "w", ""],
          output: ["y"],
          attribute: [
            { name: "alpha", type: OnnxAttributeType.FLOAT, f: 0.5 },
            { name: "transB", type: OnnxAttributeType.INT, i: 1 },
            { name: "big", type: OnnxAttributeType.INT, i: -(2 ** 53 - 1) },
            { name: "s", type: OnnxAttributeType.STRING, s: utf8("hello") },
            { name: "fl", type: OnnxAttributeType.FLOATS, floats: [1.5, -2.25] },
            { name: "is", type: OnnxAttributeType.INTS, ints: [0, -1, 2 ** 40] },
            { name: "ss", type: OnnxAttributeType.STRINGS, strings: [utf8("a"), utf8("")] },
            { name: "t", type: OnnxAttributeType.TENSOR, t: float32Tensor("c", [2], new Float32Array([1, 2])) },
            {
              name: "body",
              type: OnnxAttributeType.GRAPH,
              g: { name: "sub", node: [{ opType: "Identity", input: ["a"], output: ["b"] }] },
            },
          ],
        },
      ],
      initializer: [
        float32Tensor("w", [2, 3], new Float32Array([0, -0, 1.5, -3.25, 1e-30, 3.4e38])),
        int8Tensor("q", [3], new Int8Array([-127, 0, 127])),
        { name: "fd", dims: [3], dataType: OnnxDataType.FLOAT, floatData: [1, 2, 3] },
        { name: "i64", dims: [2], dataType: OnnxDataType.INT64, int64Data: [-1, 2 ** 50] },
        { name: "u64", dims: [1], dataType: OnnxDataType.UINT64, uint64Data: [2 ** 52] },
        { name: "dd", dims: [1], dataType: OnnxDataType.DOUBLE, doubleData: [Math.PI] },
      ],
      input: [
        {
          name: "x",
          type: {
            tensorType: {
              elemType: OnnxDataType.FLOAT,
              // dimValue 0 is a oneof member: it must survive the round trip (proto3 would drop a plain 0).
              shape: { dim: [{ dimParam: "batch" }, { dimValue: 0 }, { dimValue: 3, denotation: "FEATURE" }] },
            },
          },
        },
      ],
      output: [{ name: "y", type: { sequenceType: { elemType: { tensorType: { elemType: OnnxDataType.INT8 } } } } }],
    },
  };
}

/** Recursively drop proto3 defaults and empty lists so objects from different codecs compare equal. */
function normalize(v: unknown): unknown {
  if (v instanceof Uint8Array) return hex(v);
  if (Array.isArray(v)) return v.map(normalize);
  if (v && typeof v === "object") {
    if ("low" in v && "high" in v) {
      const { low, high, unsigned } = v as { low: number; high: number; unsigned: boolean };
      return (unsigned ? high >>> 0 : high | 0) * 2 ** 32 + (low >>> 0); // a protobufjs Long
    }
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined || x === null || x === "" || x === false || x === 0) continue;
      if (Array.isArray(x) && x.length === 0) continue;
      if (x instanceof Uint8Array && x.length === 0) continue;
      out[k] = normalize(x);
    }
    return out;
  }
  return v;
}

describe("ONNX protobuf codec", () => {
  it("encodes a minimal model to fixed bytes, in field-number order", () => {
    const bytes = encodeOnnx({ irVersion: 8, opsetImport: [{ version: 17 }], graph: { name: "g" } });
    // 08 08: ir_version=8 | 3a 03 (12 01 67): graph{name="g"} | 42 02 (10 11): opset_import{version=17}
    expect(hex(bytes)).toBe("08083a03120167420210" + "11");
    const back = decodeOnnx(bytes);
    expect(back.irVersion).toBe(8);
    expect(back.graph?.name).toBe("g");
    expect(back.opsetImport).toEqual([{ domain: "", version: 17 }]);
  });

  it("writes TensorProto raw_data little-endian, and float_data packed", () => {
    const t = float32Tensor("w", [2], new Float32Array([1, -2]));
    expect(hex(t.rawData!)).toBe("0000803f000000c0");
    const packed = encodeOnnxMessage("TensorProto", { dims: [2], dataType: 1, floatData: [1, -2] });
    // 08 02: dims (unpacked, like onnx.proto) | 10 01: data_type | 22 08 …: float_data packed (wire type 2)
    expect(hex(packed)).toBe("08021001" + "22080000803f000000c0");
  });

  it("round-trips every kind of field", () => {
    const model = richModel();
    const back = decodeOnnx(encodeOnnx(model));
    expect(normalize(back)).toEqual(normalize(model));
    expect(back.graph!.input![0]!.type!.tensorType!.shape!.dim![1]).toEqual({ dimValue: 0, denotation: "" });
    expect(back.graph!.node![0]!.attribute![2]!.i).toBe(-(2 ** 53 - 1));
    expect(tensorToFloat32(back.graph!.initializer![0]!)).toEqual(new Float32Array([0, -0, 1.5, -3.25, 1e-30, 3.4e38]));
    expect(tensorToInt8(back.graph!.initializer![1]!)).toEqual(new Int8Array([-127, 0, 127]));
    expect(tensorToFloat32(back.graph!.initializer![2]!)).toEqual(new Float32Array([1, 2, 3]));
    // Decoded bytes are copies, not views into the input.
    expect(back.graph!.initializer![0]!.rawData!.byteOffset).toBe(0);
  });

  it("agrees byte-for-byte with protobufjs reflection (Root.fromJSON) on the same descriptor", () => {
    const root = protobuf.Root.fromJSON(ONNX_PROTO_JSON);
    const Model = root.lookupType("onnx.ModelProto");
    const model = richModel();
    const ours = encodeOnnx(model);
    expect(hex(Model.encode(Model.fromObject(model)).finish())).toBe(hex(ours));
    const theirs = Model.toObject(Model.decode(ours), { longs: Number, oneofs: false });
    expect(normalize(theirs)).toEqual(normalize(model));
  });

  it("accepts packed and unpacked encodings of every repeated scalar", () => {
    const flipped = structuredClone(ONNX_PROTO_JSON);
    for (const t of ["TensorProto", "AttributeProto"] as const) {
      for (const f of Object.values(flipped.nested.onnx.nested![t]!.fields!)) {
        if (f.options) f.options = { packed: !f.options.packed };
      }
    }
    const T = protobuf.Root.fromJSON(flipped).lookupType("onnx.TensorProto");
    const tensor = { dims: [2, 1], dataType: 1, floatData: [0.5, 2], int64Data: [-3, 4] };
    const bytes = T.encode(T.fromObject(tensor)).finish();
    expect(hex(bytes)).not.toBe(hex(encodeOnnxMessage("TensorProto", tensor)));
    expect(normalize(decodeOnnxMessage("TensorProto", bytes))).toEqual(normalize(tensor));
  });

  it("inspects inputs, outputs, opset and node count; initializers listed as inputs are not feeds", () => {
    const model = richModel();
    model.graph!.input!.push({
      name: "w",
      type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 2 }, {}] } } },
    });
    const info = inspectOnnx(encodeOnnx(model));
    expect(info.inputs).toEqual([{ name: "x", dtype: "float32", shape: ["batch", 0, 3] }]);
    expect(info.outputs).toEqual([{ name: "y", dtype: "sequence", shape: null }]);
    expect(info).toMatchObject({
      opset: 17,
      irVersion: 8,
      nodeCount: 1,
      initializerCount: 6,
      producerName: "fedge-test",
    });
  });

  describe("bad input → OnnxFormatError (a domain error; the edge maps it to 400 invalid_model)", () => {
    const valid = encodeOnnx(richModel());
    const bad: [string, Uint8Array][] = [
      ["empty", new Uint8Array(0)],
      ["garbage", new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])],
      ["ASCII text", utf8("this is not an onnx model")],
      ["truncated", valid.subarray(0, valid.length - 7)],
      ["invalid wire type 7", new Uint8Array([0x0f, 0x01])],
      ["field number 0", new Uint8Array([0x00, 0x01])],
      ["ir_version as a length-delimited field", new Uint8Array([0x0a, 0x01, 0x00])],
      ["graph as a varint", new Uint8Array([0x08, 0x08, 0x38, 0x01])],
      ["length beyond the end", new Uint8Array([0x08, 0x08, 0x3a, 0x7f, 0x12])],
      ["ir_version beyond 2^53", new Uint8Array([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])],
      ["non-UTF-8 string", new Uint8Array([0x08, 0x08, 0x12, 0x02, 0xc3, 0x28])],
      ["no graph", encodeOnnx({ irVersion: 8, opsetImport: [{ version: 17 }] })],
      ["no ir_version", encodeOnnx({ opsetImport: [{ version: 17 }], graph: { name: "g" } })],
      ["no opset_import", encodeOnnx({ irVersion: 8, graph: { name: "g" } })],
    ];
    it.each(bad)("%s", (_label, bytes) => {
      let caught: unknown;
      try {
        decodeOnnx(bytes);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(OnnxFormatError);
      // A domain error: no HTTP status in the library; the edge maps it to 400 invalid_model.
      expect((caught as Error).name).toBe("OnnxFormatError");
    });

    it("rejects a non-Uint8Array", () => {
      expect(() => decodeOnnx("abc" as unknown as Uint8Array)).toThrow(OnnxFormatError);
    });

    it("rejects nesting deeper than MAX_NESTING", () => {
      // GraphProto → node → attribute(g) → GraphProto … nested MAX_NESTING times.
      let g: ModelProto["graph"] = { name: "leaf" };
      for (let d = 0; d < MAX_NESTING; d++) g = { node: [{ opType: "If", attribute: [{ name: "g", type: 5, g }] }] };
      expect(() => encodeOnnx({ irVersion: 8, opsetImport: [{ version: 17 }], graph: g })).toThrow(RangeError);
      let bytes = encodeOnnxMessage("GraphProto", { name: "leaf" });
      for (let d = 0; d < MAX_NESTING; d++) {
        const attr = new Uint8Array([0x32, ...varint(bytes.length), ...bytes]); // AttributeProto.g = 6
        const node = new Uint8Array([0x2a, ...varint(attr.length), ...attr]); // NodeProto.attribute = 5
        bytes = new Uint8Array([0x0a, ...varint(node.length), ...node]); // GraphProto.node = 1
      }
      const model = new Uint8Array([0x08, 0x08, 0x3a, ...varint(bytes.length), ...bytes, 0x42, 0x02, 0x10, 0x11]);
      expect(() => decodeOnnx(model)).toThrow(/nested deeper/);
    });

    it("every proper prefix of a valid model is rejected", () => {
      const small = encodeOnnx({
        irVersion: 8,
        opsetImport: [{ version: 17 }],
        graph: { name: "g", initializer: [float32Tensor("w", [3], new Float32Array([1, 2, 3]))] },
      });
      for (let n = 0; n < small.length; n++) expect(() => decodeOnnx(small.subarray(0, n))).toThrow(OnnxFormatError);
    });

    it("random bytes either decode or throw OnnxFormatError, never anything else", () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
          try {
            decodeOnnx(bytes);
          } catch (e) {
            if (!(e instanceof OnnxFormatError)) throw e;
          }
        }),
        { numRuns: 2000 },
      );
    });
  });

  it("tensor helpers round-trip random float32 data through raw_data", () => {
    fc.assert(
      fc.property(fc.float32Array({ maxLength: 50 }), (data) => {
        const back = decodeOnnxMessage(
          "TensorProto",
          encodeOnnxMessage("TensorProto", float32Tensor("t", [data.length], data)),
        );
        expect(tensorToFloat32(back)).toEqual(data);
      }),
      { numRuns: 200 },
    );
    expect(() => float32Tensor("t", [2, 2], new Float32Array(3))).toThrow(RangeError);
    expect(() => tensorToFloat32({ name: "t", dims: [2], dataType: 1, rawData: new Uint8Array(7) })).toThrow(
      OnnxFormatError,
    );
    expect(() => tensorToFloat32({ name: "t", dims: [1], dataType: 3, rawData: new Uint8Array(1) })).toThrow(
      /expected float32/,
    );
    expect(() => tensorToInt8({ name: "t", dims: [1], dataType: 3, dataLocation: 1 })).toThrow(/externally/);
    expect(tensorToInt8({ name: "t", dims: [2], dataType: 3, int32Data: [-5, 7] })).toEqual(new Int8Array([-5, 7]));
  });
});

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 127) {
    out.push((n & 127) | 128);
    n >>>= 7;
  }
  out.push(n);
  return out;
}
