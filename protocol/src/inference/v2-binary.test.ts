import { describe, expect, it } from "vitest";
import { decodeV2Outputs, joinInferBody, parseHeaderLength, splitInferBody, takeBinaryData } from "./v2-binary.ts";
import { decodeV2Request, parseV2InferRequest } from "./v2-request.ts";
import { V2InferRequest } from "./v2.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

describe("binary tensor extension", () => {
  it("frames the JSON header and the tensors exactly (fixed bytes)", () => {
    const header = { inputs: [{ name: "a", shape: [2], datatype: "INT32", parameters: { binary_data_size: 8 } }] };
    const { body, headerLength } = joinInferBody(header, [new Uint8Array([1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])]);
    const json = '{"inputs":[{"name":"a","shape":[2],"datatype":"INT32","parameters":{"binary_data_size":8}}]}';
    expect(headerLength).toBe(json.length);
    expect(hex(body)).toBe(hex(new TextEncoder().encode(json)) + "01000000ffffffff");
    const split = splitInferBody(body, headerLength);
    expect(split.json).toEqual(header);
    const model = { inputs: [{ name: "a", dtype: "int32" as const, shape: [null] }], outputs: [] };
    const decoded = decodeV2Request(parseV2InferRequest(split.json), split.tail, model, { binaryByDefault: false });
    expect(decoded.feeds.get("a")!.data).toEqual(new Int32Array([1, -1]));
    expect(decoded.elements).toBe(2);
  });

  it("decodes responses with JSON and binary outputs side by side", () => {
    const json = {
      outputs: [
        { name: "p", shape: [1, 2], datatype: "FP32", parameters: { binary_data_size: 8 } },
        { name: "k", shape: [1], datatype: "BOOL", data: [true] },
      ],
    };
    const { body, headerLength } = joinInferBody(json, [new Uint8Array(new Float32Array([0.25, 0.75]).buffer)]);
    const s = splitInferBody(body, headerLength);
    const out = decodeV2Outputs(s.json, s.tail);
    expect(out.p).toEqual({ dtype: "float32", shape: [1, 2], data: new Float32Array([0.25, 0.75]) });
    expect(out.k!.data).toEqual(new Uint8Array([1]));
  });

  it("refuses inconsistent framing", () => {
    expect(() => splitInferBody(new Uint8Array(4), 5)).toThrow(/body has 4 bytes/);
    expect(() => splitInferBody(new TextEncoder().encode("{x"), null)).toThrow(/not JSON/);
    expect(() => parseHeaderLength("-1")).toThrow(/byte count/);
    expect(parseHeaderLength(undefined)).toBeNull();
    expect(() => takeBinaryData([{ name: "a", parameters: { binary_data_size: 4 } }], new Uint8Array(3))).toThrow(
      /runs past/,
    );
    expect(() => takeBinaryData([{ name: "a", parameters: { binary_data_size: 2 } }], new Uint8Array(3))).toThrow(
      /no tensor claims/,
    );
    expect(() => takeBinaryData([{ name: "a", parameters: { binary_data_size: -2 } }], new Uint8Array(0))).toThrow(
      /byte count/,
    );
  });

  it("parses exactly the requests the documented zod schema accepts", () => {
    const good = [
      { inputs: [{ name: "x", shape: [1, 2], datatype: "FP32", data: [1, 2] }] },
      {
        id: "a",
        parameters: { binary_data_output: true },
        inputs: [{ name: "x", shape: [], datatype: "BOOL", data: [true] }],
      },
      {
        inputs: [{ name: "x", shape: [2], datatype: "INT64", parameters: { binary_data_size: 16 } }],
        outputs: [{ name: "y" }],
      },
    ];
    const bad = [
      {},
      { inputs: [] },
      { inputs: [{ name: "", shape: [1], datatype: "FP32", data: [1] }] },
      { inputs: [{ name: "x", shape: [-1], datatype: "FP32", data: [1] }] },
      { inputs: [{ name: "x", shape: [1.5], datatype: "FP32", data: [1] }] },
      { inputs: [{ name: "x", shape: [1], datatype: 3, data: [1] }] },
      { inputs: [{ name: "x", shape: [1], datatype: "FP32", data: [1], extra: 1 }] },
      { inputs: [{ name: "x", shape: [1], datatype: "FP32", data: [1] }], extra: true },
      { inputs: [{ name: "x", shape: [1], datatype: "FP32", data: [1] }], outputs: [{}] },
      { id: 5, inputs: [{ name: "x", shape: [1], datatype: "FP32", data: [1] }] },
    ];
    for (const g of good) {
      expect(V2InferRequest.safeParse(g).success, JSON.stringify(g)).toBe(true);
      expect(() => parseV2InferRequest(g), JSON.stringify(g)).not.toThrow();
    }
    for (const b of bad) {
      expect(V2InferRequest.safeParse(b).success, JSON.stringify(b)).toBe(false);
      expect(() => parseV2InferRequest(b), JSON.stringify(b)).toThrow();
    }
  });
});
