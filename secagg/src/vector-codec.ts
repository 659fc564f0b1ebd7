/**
 * @module
 * A vector in Z_{2^b} on the wire, base64url: d' little-endian 32-bit words (the sum the aggregator reads), or packed
 * at b bits a value (a device's masked input, the bulk of what it sends).
 */
import { fromBase64Url, toBase64Url } from "@fedge/protocol";
import { SecAggError } from "./errors.ts";
import { inModulus, modulusMask } from "./modular.ts";

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

/**
 * A masked input on the wire: d' values of b bits each, packed little-endian (value i is bits i·b … i·b + b − 1 of
 * the byte string, low bits first), then base64url: ⌈d'·b/8⌉ bytes instead of 4·d'.
 */
export function encodePackedVector(values: Uint32Array, bits: number): string {
  const mask = modulusMask(bits);
  const bytes = new Uint8Array(packedBytes(values.length, bits));
  if (bits <= 24) {
    // fewer than 8 bits wait in the accumulator, so b + 7 ≤ 31 bits fit a small integer: shifts, no division
    let acc = 0;
    let accBits = 0;
    let at = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (v > mask) throw new RangeError(`value ${i} (${v}) lies outside Z_{2^${bits}}`);
      acc |= v << accBits;
      accBits += bits;
      while (accBits >= 8) {
        bytes[at++] = acc & 0xff;
        acc >>>= 8;
        accBits -= 8;
      }
    }
    if (accBits > 0) bytes[at] = acc;
    return toBase64Url(bytes);
  }
  let acc = 0; // < 2^(b + 8) ≤ 2^40: exact in a double
  let accBits = 0;
  let at = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v > mask) throw new RangeError(`value ${i} (${v}) lies outside Z_{2^${bits}}`);
    acc += v * 2 ** accBits;
    accBits += bits;
    while (accBits >= 8) {
      const byte = acc % 256;
      bytes[at++] = byte;
      acc = (acc - byte) / 256;
      accBits -= 8;
    }
  }
  if (accBits > 0) bytes[at] = acc;
  return toBase64Url(bytes);
}

/**
 * Decodes and checks a packed vector: exactly ⌈length·b/8⌉ bytes with zero padding bits (one encoding per vector);
 * `SecAggError("bad-message")` otherwise.
 */
export function decodePackedVector(text: string, length: number, bits: number): Uint32Array {
  modulusMask(bits);
  const bytes = fromBase64Url(text);
  const expected = packedBytes(length, bits);
  if (bytes.length !== expected) {
    throw new SecAggError(
      "bad-message",
      `${length} values of ${bits} bits pack into ${expected} bytes, got ${bytes.length}`,
    );
  }
  const width = 2 ** bits;
  const out = new Uint32Array(length);
  let acc = 0;
  let accBits = 0;
  let at = 0;
  for (let i = 0; i < length; i++) {
    while (accBits < bits) {
      acc += bytes[at++]! * 2 ** accBits;
      accBits += 8;
    }
    const v = acc % width;
    out[i] = v;
    acc = (acc - v) / width;
    accBits -= bits;
  }
  if (acc !== 0) throw new SecAggError("bad-message", "a packed vector's padding bits are not zero");
  return out;
}

function packedBytes(length: number, bits: number): number {
  return Math.ceil((length * bits) / 8);
}
