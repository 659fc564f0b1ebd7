/**
 * @module
 * Mask expansion: a 32-byte seed → a vector uniform in Z_{2^b}, with AES-256 in counter mode (NIST SP 800-38A) through
 * WebCrypto, which is native code in Node, workerd and browsers. The keystream is AES_seed(0), AES_seed(1), … read as
 * little-endian 32-bit words; the low b bits of each are uniform in Z_{2^b} (a power-of-two modulus, no rejection).
 * A seed is used for exactly one vector, so the all-zero initial counter block is safe.
 */
import { modulusMask } from "./modular.ts";

/** Seed length in bytes (an AES-256 key). */
export const PRG_SEED_BYTES = 32;

/** Words per WebCrypto call: bounds the transient plaintext buffer (16 MiB) on long vectors. */
const CHUNK_WORDS = 1 << 22;

/** All-zero plaintext shared by every expansion (WebCrypto reads it and never writes it). */
let zeros = new Uint8Array(0);

/** Expands `seed` to `length` values uniform in Z_{2^bits}. */
export async function expandMask(seed: Uint8Array, length: number, bits: number): Promise<Uint32Array> {
  if (seed.length !== PRG_SEED_BYTES)
    throw new RangeError(`a mask seed has ${PRG_SEED_BYTES} bytes, got ${seed.length}`);
  if (!Number.isInteger(length) || length < 0)
    throw new RangeError(`mask length must be a whole number, got ${length}`);
  const mask = modulusMask(bits);
  const key = await crypto.subtle.importKey("raw", seed as Uint8Array<ArrayBuffer>, { name: "AES-CTR" }, false, [
    "encrypt",
  ]);
  if (zeros.length < 4 * Math.min(length, CHUNK_WORDS)) zeros = new Uint8Array(4 * Math.min(length, CHUNK_WORDS));
  // One chunk (every round's vector today): the keystream buffer itself becomes the mask, no copy.
  const out = length <= CHUNK_WORDS ? undefined : new Uint32Array(length);
  let single: Uint32Array | undefined;
  for (let start = 0; start < length; start += CHUNK_WORDS) {
    const words = Math.min(CHUNK_WORDS, length - start);
    // The counter block of word `start` is block number start / 4 (4 words per 16-byte block), big-endian in the last
    // 8 bytes; CHUNK_WORDS is a multiple of 4, so every chunk starts on a block boundary.
    const counter = new Uint8Array(16);
    new DataView(counter.buffer).setBigUint64(8, BigInt(start / 4));
    const stream = await crypto.subtle.encrypt(
      { name: "AES-CTR", counter, length: 64 },
      key,
      zeros.subarray(0, words * 4) as Uint8Array<ArrayBuffer>,
    );
    if (out) out.set(new Uint32Array(stream), start);
    else single = new Uint32Array(stream);
  }
  const result = out ?? single ?? new Uint32Array(0);
  if (mask !== 0xffffffff) for (let i = 0; i < length; i++) result[i] = result[i]! & mask;
  return result;
}
