import { fromBase64Url, toBase64Url } from "@fedge/protocol";
import { describe, expect, it } from "vitest";
import { modulusMask } from "./modular.ts";
import { decodePackedVector, decodeVector, encodePackedVector, encodeVector } from "./vector-codec.ts";

const random = (length: number, bits: number) =>
  crypto.getRandomValues(new Uint32Array(length)).map((v) => v & modulusMask(bits));

describe("vector codecs", () => {
  it("packs b bits a value, ⌈d'·b/8⌉ bytes, and reads back the same vector for every b", () => {
    for (const bits of [1, 7, 8, 13, 16, 20, 24, 25, 31, 32]) {
      for (const length of [1, 3, 1000]) {
        const values = random(length, bits);
        values[0] = modulusMask(bits); // the largest value survives packing
        const text = encodePackedVector(values, bits);
        expect(fromBase64Url(text).length).toBe(Math.ceil((length * bits) / 8));
        expect(Array.from(decodePackedVector(text, length, bits))).toEqual(Array.from(values));
      }
    }
  });

  it("lays the bits out little-endian, low bits first", () => {
    expect(Array.from(fromBase64Url(encodePackedVector(Uint32Array.of(0x1, 0x2, 0x3, 0xf), 4)))).toEqual([0x21, 0xf3]);
    expect(Array.from(fromBase64Url(encodePackedVector(Uint32Array.of(0xabcde, 0x12345), 20)))).toEqual([
      0xde, 0xbc, 0x5a, 0x34, 0x12,
    ]);
  });

  it("refuses a wrong length, nonzero padding bits and values outside Z_{2^b}", () => {
    const text = encodePackedVector(Uint32Array.of(1, 2, 3), 20); // 60 bits in 8 bytes: 4 padding bits
    expect(() => decodePackedVector(text, 4, 20)).toThrow(expect.objectContaining({ reason: "bad-message" }));
    expect(() => decodePackedVector(text, 2, 20)).toThrow(expect.objectContaining({ reason: "bad-message" }));
    const padded = fromBase64Url(text);
    padded[7]! |= 0x80;
    expect(() => decodePackedVector(toBase64Url(padded), 3, 20)).toThrow(/padding/);
    expect(() => encodePackedVector(Uint32Array.of(1 << 20), 20)).toThrow(RangeError);
  });

  it("keeps 32-bit words for the sum the aggregator reads", () => {
    const values = random(100, 32);
    expect(Array.from(decodeVector(encodeVector(values), 100, 32))).toEqual(Array.from(values));
    expect(() => decodeVector(encodeVector(Uint32Array.of(256)), 1, 8)).toThrow(/outside/);
  });
});
