import { describe, expect, it } from "vitest";
import {
  float16Bits,
  float16Value,
  InferenceRequestError,
  tensorFromBytes,
  tensorFromJson,
  tensorToBytes,
  tensorToJson,
} from "./tensor-data.ts";

describe("float16", () => {
  it("encodes known values exactly (IEEE 754 binary16, round to nearest even)", () => {
    const known: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      [65520, 0x7c00], // rounds up to Infinity
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // half of it ties to even (0)
      [3 * 2 ** -25, 0x0002], // 1.5 ulp ties to even (2)
      [0.1, 0x2e66],
      [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10 goes to even
      [1 + 3 * 2 ** -11, 0x3c02],
      [Number.POSITIVE_INFINITY, 0x7c00],
    ];
    for (const [x, bits] of known) expect(float16Bits(x), String(x)).toBe(bits);
    expect(float16Bits(Number.NaN) & 0x7c00).toBe(0x7c00);
    for (let h = 0; h < 0x7c00; h += 37) expect(float16Bits(float16Value(h))).toBe(h);
    expect(float16Value(0x7bff)).toBe(65504);
    expect(float16Value(0xfc00)).toBe(Number.NEGATIVE_INFINITY);
  });
});

describe("tensor data", () => {
  it("round-trips little-endian bytes of every dtype", () => {
    const cases = [
      ["float32", new Float32Array([1.5, -2, 3e-8])],
      ["int64", new BigInt64Array([-(2n ** 62n), 5n])],
      ["int32", new Int32Array([-7, 2 ** 31 - 1])],
      ["float16", new Uint16Array([0x3c00, 0xc000])],
      ["int8", new Int8Array([-128, 127])],
    ] as const;
    for (const [dtype, data] of cases) {
      const bytes = tensorToBytes(data);
      expect(tensorFromBytes(dtype, bytes.slice())).toEqual(data);
    }
    // Fixed bytes: 1.0f = 00 00 80 3f, int64 -2 = fe ff ff ff ff ff ff ff.
    expect(Array.from(tensorToBytes(new Float32Array([1])))).toEqual([0, 0, 0x80, 0x3f]);
    expect(Array.from(tensorToBytes(new BigInt64Array([-2n])))).toEqual([0xfe, ...new Array(7).fill(0xff)]);
    expect(() => tensorFromBytes("float32", new Uint8Array(6))).toThrow(InferenceRequestError);
  });

  it("reads flat or nested JSON and checks every value against its type", () => {
    expect(
      tensorFromJson(
        "float32",
        [
          [1, 2],
          [3, 4],
        ],
        4,
        "x",
      ),
    ).toEqual(new Float32Array([1, 2, 3, 4]));
    expect(tensorFromJson("int64", [1, -2], 2, "x")).toEqual(new BigInt64Array([1n, -2n]));
    expect(tensorFromJson("bool", [true, false], 2, "x")).toEqual(new Uint8Array([1, 0]));
    expect(tensorToJson("bool", new Uint8Array([1, 0]))).toEqual([true, false]);
    expect(tensorToJson("int64", new BigInt64Array([3n]))).toEqual([3]);
    expect(tensorToJson("float16", new Uint16Array([0x3c00]))).toEqual([1]);
    const reason = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return (e as InferenceRequestError).reason;
      }
      return "none";
    };
    expect(reason(() => tensorFromJson("float32", [1, 2, 3], 4, "x"))).toBe("element_count");
    expect(reason(() => tensorFromJson("float32", [1, 2, 3, 4, 5], 4, "x"))).toBe("element_count");
    expect(reason(() => tensorFromJson("float32", [1, "2"], 2, "x"))).toBe("datatype");
    expect(reason(() => tensorFromJson("float32", [1, 1e39], 2, "x"))).toBe("out_of_range");
    expect(reason(() => tensorFromJson("float32", [Number.POSITIVE_INFINITY], 1, "x"))).toBe("non_finite");
    expect(reason(() => tensorFromJson("uint8", [256], 1, "x"))).toBe("out_of_range");
    expect(reason(() => tensorFromJson("int8", [-129], 1, "x"))).toBe("out_of_range");
    expect(reason(() => tensorFromJson("int32", [0.5], 1, "x"))).toBe("datatype");
    expect(reason(() => tensorFromJson("int64", [2 ** 53], 1, "x"))).toBe("out_of_range");
    expect(reason(() => tensorFromJson("bool", [1], 1, "x"))).toBe("datatype");
    expect(reason(() => tensorFromJson("float16", [70000], 1, "x"))).toBe("out_of_range");
    expect(reason(() => tensorFromJson("float32", "1", 1, "x"))).toBe("malformed");
    expect(new InferenceRequestError("too_large", "x").status).toBe(413);
    expect(new InferenceRequestError("datatype", "x").code).toBe("invalid_datatype");
  });
});
