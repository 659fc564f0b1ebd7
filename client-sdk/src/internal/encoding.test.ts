import fc from "fast-check";
import * as schemas from "@fedge/protocol";
import { describe, expect, it } from "vitest";
import { checkinSigningBytes, fromBase64Url, toBase64Url } from "./encoding.ts";

describe("encoding matches the @fedge/protocol contracts", () => {
  it("base64url round-trips and equals the schemas' encoder", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const text = toBase64Url(bytes);
        expect(text).toBe(schemas.toBase64Url(bytes));
        expect([...fromBase64Url(text)]).toEqual([...bytes]);
        expect([...schemas.fromBase64Url(text)]).toEqual([...bytes]);
      }),
    );
  });
  it("rejects characters outside the alphabet and impossible lengths", () => {
    expect(() => fromBase64Url("ab+c")).toThrow(TypeError);
    expect(() => fromBase64Url("abc=")).toThrow(TypeError);
    expect(() => fromBase64Url("abcde")).toThrow(TypeError);
  });
  it("check-in signing bytes equal the schemas' function", () => {
    const args = ["mnist-mlp", "dev_abcdefgh123", "2026-11-23T12:00:00.000Z"] as const;
    expect([...checkinSigningBytes(...args)]).toEqual([...schemas.checkinSigningBytes(...args)]);
  });
});
