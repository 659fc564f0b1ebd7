/**
 * @module
 * A vector in Z_{2^b} on the wire: d' little-endian 32-bit words, base64url.
 */
import { fromBase64Url, toBase64Url } from "@fedge/protocol";
import { SecAggError } from "./errors.ts";
import { inModulus } from "./modular.ts";

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export function encodeVector(values: Uint32Array): string {
  const bytes = new Uint8Array(values.length * 4);
  if (LITTLE_ENDIAN) bytes.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  else {
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < values.length; i++) view.setUint32(i * 4, values[i]!, true);
  }
  return toBase64Url(bytes);
}

/** Decodes and checks a vector: exactly `length` words, each in Z_{2^bits}; `SecAggError("bad-message")` otherwise. */
export function decodeVector(text: string, length: number, bits: number): Uint32Array {
  const bytes = fromBase64Url(text);
  if (bytes.length !== length * 4) {
    throw new SecAggError("bad-message", `a vector of ${length} values has ${length * 4} bytes, got ${bytes.length}`);
  }
  const out = new Uint32Array(length);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < length; i++) out[i] = view.getUint32(i * 4, true);
  if (!inModulus(out, bits)) throw new SecAggError("bad-message", `a vector value lies outside Z_{2^${bits}}`);
  return out;
}
