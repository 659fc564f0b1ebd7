import { createCipheriv } from "node:crypto";
import { describe, expect, it } from "vitest";
import { chacha20Stream } from "./chacha20.ts";

describe("chacha20Stream", () => {
  it("matches OpenSSL's ChaCha20 keystream (RFC 8439 §2.3.2 key and nonce), across calls of any size", () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => i);
    const nonce = Uint8Array.from([0, 0, 0, 9, 0, 0, 0, 0x4a, 0, 0, 0, 0]);
    const stream = chacha20Stream(key, nonce, 1);
    const ours = new Uint8Array(1000);
    let off = 0;
    for (const n of [1, 63, 64, 65, 7, 800]) {
      stream(ours.subarray(off, off + n));
      off += n;
    }
    // OpenSSL's IV is the 32-bit little-endian counter followed by the 96-bit nonce.
    const iv = Buffer.concat([Buffer.from([1, 0, 0, 0]), Buffer.from(nonce)]);
    const theirs = createCipheriv("chacha20", key, iv).update(Buffer.alloc(1000));
    expect(Buffer.from(ours).equals(theirs)).toBe(true);
    // RFC 8439 §2.3.2: the serialized block begins 10 f1 e7 e4.
    expect(Array.from(ours.subarray(0, 4))).toEqual([0x10, 0xf1, 0xe7, 0xe4]);
  });

  it("refuses a key or nonce of the wrong length", () => {
    expect(() => chacha20Stream(new Uint8Array(16))).toThrow(RangeError);
    expect(() => chacha20Stream(new Uint8Array(32), new Uint8Array(8))).toThrow(RangeError);
    expect(() => chacha20Stream(new Uint8Array(32), new Uint8Array(12), -1)).toThrow(RangeError);
  });
});
