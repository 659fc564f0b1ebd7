import { createCipheriv } from "node:crypto";
import { describe, expect, it } from "vitest";
import { expandMask } from "./prg.ts";

/** The same keystream from Node's OpenSSL AES-256-CTR (zero IV), read as little-endian words. */
function opensslWords(seed: Uint8Array, length: number): Uint32Array {
  const cipher = createCipheriv("aes-256-ctr", seed, Buffer.alloc(16));
  const stream = cipher.update(Buffer.alloc(length * 4));
  const out = new Uint32Array(length);
  for (let i = 0; i < length; i++) out[i] = stream.readUInt32LE(i * 4);
  return out;
}

describe("expandMask (AES-256-CTR)", () => {
  it("is the AES-256-CTR keystream, also across the chunk boundary", async () => {
    const seed = crypto.getRandomValues(new Uint8Array(32));
    const length = (1 << 22) + 12; // one chunk and three blocks
    const got = await expandMask(seed, length, 32);
    const want = opensslWords(seed, length);
    expect(got.subarray(0, 8)).toEqual(want.subarray(0, 8));
    expect(got.subarray(length - 24)).toEqual(want.subarray(length - 24));
    expect(Buffer.compare(Buffer.from(got.buffer), Buffer.from(want.buffer))).toBe(0);
  });

  it("keeps the low b bits and differs between seeds", async () => {
    const seed = crypto.getRandomValues(new Uint8Array(32));
    const full = await expandMask(seed, 1000, 32);
    const low = await expandMask(seed, 1000, 11);
    expect(Array.from(low)).toEqual(Array.from(full, (v) => v & 0x7ff));
    const other = await expandMask(crypto.getRandomValues(new Uint8Array(32)), 1000, 32);
    expect(Array.from(other)).not.toEqual(Array.from(full));
  });

  it("rejects a seed that is not 32 bytes and bad widths", async () => {
    await expect(expandMask(new Uint8Array(16), 10, 16)).rejects.toThrow(RangeError);
    await expect(expandMask(new Uint8Array(32), 10, 33)).rejects.toThrow(RangeError);
  });
});
