/**
 * @module
 * The exact bytes that are signed, hashed or bound into ciphertexts. Every field is length-prefixed (u32 big-endian)
 * after a domain label, so no two different field lists encode to the same bytes and no signature or ciphertext made
 * for one stage, round, sender or receiver is accepted for another.
 */
import nacl from "tweetnacl";

const LABEL = "fedge-secagg-v1";
const utf8 = new TextEncoder();

/** Stages whose messages are bound into signatures and device-to-device ciphertexts. */
export type SecAggStage = "advertise" | "share-keys" | "consistency";

/** label ‖ (len ‖ field)*, fields as UTF-8 text or raw bytes. */
export function framed(
  stage: SecAggStage | "graph" | "pair-seed",
  fields: readonly (string | Uint8Array)[],
): Uint8Array {
  const parts = [LABEL, stage, ...fields].map((f) => (typeof f === "string" ? utf8.encode(f) : f));
  const out = new Uint8Array(parts.reduce((n, p) => n + 4 + p.length, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const p of parts) {
    view.setUint32(at, p.length);
    out.set(p, at + 4);
    at += 4 + p.length;
  }
  return out;
}

/** What a device signs with its Ed25519 identity when it advertises its round keys. */
export function advertiseBytes(
  roundId: string,
  deviceId: string,
  encryptionKey: Uint8Array,
  maskingKey: Uint8Array,
): Uint8Array {
  return framed("advertise", [roundId, deviceId, encryptionKey, maskingKey]);
}

/** What a device signs in the consistency check: the survivors U3 the edge announced. */
export function consistencyBytes(roundId: string, deviceId: string, survivors: readonly string[]): Uint8Array {
  return framed("consistency", [roundId, deviceId, ...survivors]);
}

/**
 * {@link consistencyBytes} for many signers of the same U3: the fields before and after the device id are framed
 * once, so checking k neighbours' signatures encodes the survivors once rather than k times.
 */
export function consistencyBytesOf(roundId: string, survivors: readonly string[]): (deviceId: string) => Uint8Array {
  const before = framed("consistency", [roundId]);
  const after = framed("consistency", survivors).subarray(framed("consistency", []).length);
  return (deviceId) => {
    const id = utf8.encode(deviceId);
    const out = new Uint8Array(before.length + 4 + id.length + after.length);
    out.set(before);
    new DataView(out.buffer).setUint32(before.length, id.length);
    out.set(id, before.length + 4);
    out.set(after, before.length + 4 + id.length);
    return out;
  };
}

/** The header sealed inside every share ciphertext and compared on opening. */
export function shareHeader(roundId: string, from: string, to: string): Uint8Array {
  return framed("share-keys", [roundId, from, to]);
}

/**
 * The seed of the round's graph labelling: SHA-512 over the round id and every roster signature (each over fresh
 * keys), so the edge cannot pick the graph apart from picking the roster.
 */
export function graphSeed(roundId: string, signatures: readonly Uint8Array[]): Uint8Array {
  return nacl.hash(framed("graph", [roundId, ...signatures])).subarray(0, 32);
}
