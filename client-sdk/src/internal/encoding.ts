/**
 * @module
 * Unpadded base64url (RFC 4648 §5) and the check-in signing bytes. These are byte-for-byte the contracts defined in
 * @fedge/protocol (`toBase64Url`, `fromBase64Url` in common/, `checkinSigningBytes` in rounds/checkin.ts); they are
 * repeated here only because those schema files also build zod schemas at import time, which would put zod (~60 kB
 * gzip) into the SDK core. `encoding.test.ts` pins both copies to the same outputs.
 */

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

export function toBase64Url(bytes: Uint8Array): string {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += ALPHABET[n >>> 18]! + ALPHABET[(n >>> 12) & 63]! + ALPHABET[(n >>> 6) & 63]! + ALPHABET[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += ALPHABET[n >>> 18]! + ALPHABET[(n >>> 12) & 63]!;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += ALPHABET[n >>> 18]! + ALPHABET[(n >>> 12) & 63]! + ALPHABET[(n >>> 6) & 63]!;
  }
  return out;
}

const LOOKUP = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) LOOKUP[ALPHABET.charCodeAt(i)] = i;

/** Decodes unpadded base64url; throws a TypeError on any other character or an impossible length. */
export function fromBase64Url(text: string): Uint8Array {
  if (typeof text !== "string" || text.length % 4 === 1) throw new TypeError("invalid base64url string");
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? LOOKUP[c]! : -1;
    if (v < 0) throw new TypeError(`invalid base64url character at ${i}`);
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >>> bits) & 0xff;
    }
  }
  return out;
}

/** The bytes a device signs to check in (contract: @fedge/protocol `checkinSigningBytes`). */
export function checkinSigningBytes(model: string, deviceId: string, timestamp: string): Uint8Array {
  return new TextEncoder().encode(`fedge-checkin-v1\n${model}\n${deviceId}\n${timestamp}`);
}
