import { describe, expect, it } from "vitest";
import { parseV2InferRequest, splitInferBody } from "@fedge/protocol";
import { FedgeAPIError, InvalidInputError } from "../core/errors.ts";
import { checkInferInputs, decodeInferResponse, encodeInferRequest } from "./tensors.ts";

describe("infer tensors", () => {
  it("infers dtypes from typed arrays and refuses inconsistent tensors, naming them", () => {
    const feeds = checkInferInputs({
      a: { data: new Float32Array(6), shape: [2, 3] },
      b: { data: new BigInt64Array(2), shape: [2] },
      c: { data: new Uint8Array([1, 0]), shape: [2], dtype: "bool" },
      d: { data: new Uint16Array(1), shape: [] },
    });
    expect([...feeds.values()].map((t) => t.dtype)).toEqual(["float32", "int64", "bool", "float16"]);
    const bad = (inputs: unknown) => {
      try {
        checkInferInputs(inputs as never);
      } catch (e) {
        return e instanceof InvalidInputError ? e.param : "other";
      }
      return "ok";
    };
    expect(bad({ a: { data: new Float32Array(5), shape: [2, 3] } })).toBe("inputs.a");
    expect(bad({ a: { data: new Float64Array(1), shape: [1] } })).toBe("inputs.a");
    expect(bad({ a: { data: new Float32Array(1), shape: [1], dtype: "int64" } })).toBe("inputs.a");
    expect(bad({ a: { data: new Float32Array(1), shape: [-1] } })).toBe("inputs.a");
    expect(bad({})).toBe("inputs");
    expect(bad([])).toBe("inputs");
  });

  it("encodes the binary tensor extension and JSON as the edge parses them", () => {
    const feeds = checkInferInputs({ x: { data: new Int32Array([7, -1]), shape: [1, 2] } });
    const bin = encodeInferRequest(feeds, { binary: true, outputs: ["y"] });
    expect(bin.contentType).toBe("application/octet-stream");
    const { json, tail } = splitInferBody(bin.body, Number(bin.headers["inference-header-content-length"]));
    expect(parseV2InferRequest(json)).toMatchObject({
      inputs: [{ name: "x", shape: [1, 2], datatype: "INT32", parameters: { binary_data_size: 8 } }],
      parameters: { binary_data_output: true },
      outputs: [{ name: "y" }],
    });
    expect(Array.from(tail)).toEqual([7, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    const js = encodeInferRequest(feeds, { binary: false });
    expect(JSON.parse(new TextDecoder().decode(js.body))).toEqual({
      inputs: [{ name: "x", shape: [1, 2], datatype: "INT32", data: [7, -1] }],
    });
  });

  it("decodes responses and turns an undecodable one into invalid_response", () => {
    const body = new TextEncoder().encode(
      JSON.stringify({
        model_name: "m",
        model_version: "3",
        outputs: [{ name: "y", shape: [2], datatype: "BOOL", data: [true, false] }],
      }),
    );
    const res = decodeInferResponse(body, new Headers());
    expect(res.modelVersion).toBe(3);
    expect(res.outputs.y).toEqual({ dtype: "bool", shape: [2], data: new Uint8Array([1, 0]) });
    const broken = () => decodeInferResponse(new TextEncoder().encode("{}"), new Headers());
    expect(broken).toThrow(FedgeAPIError);
    expect(FedgeAPIError.generate(400, { error: "bad ids", code: "out_of_range" })).toMatchObject({
      code: "out_of_range",
      message: "bad ids",
    });
  });
});
