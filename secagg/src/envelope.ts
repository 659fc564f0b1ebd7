/**
 * @module
 * Device-to-device share envelopes: XSalsa20-Poly1305 (nacl.secretbox) under a key of one direction between two
 * devices, K_{u→v} = SHA-512(label ‖ round ‖ u ‖ v ‖ X25519(c_u, c_v))[0..32], from their advertised encryption keys.
 * Round, stage, sender and receiver are bound into the key rather than sent inside the plaintext: an envelope altered
 * in transit, or replayed into another round or mailbox, or from another sender, fails Poly1305 alike, and the
 * envelope carries only the 16-byte tag besides its payload.
 *
 * The nonce is all zeros: a key seals exactly one envelope. The encryption keys are fresh each round, the key names its
 * direction, and a device seals to each neighbour once (`SecAggClient` answers the share-keys stage once), so no
 * (key, nonce) pair repeats — the argument that lets libsodium's sealed boxes derive their nonce rather than draw it.
 */
import nacl from "tweetnacl";
import { SecAggError } from "./errors.ts";
import { shareHeader } from "./transcript.ts";

const ZERO_NONCE = new Uint8Array(nacl.secretbox.nonceLength);

/** Bytes an envelope adds to its payload (the Poly1305 tag). */
export const ENVELOPE_OVERHEAD = nacl.secretbox.overheadLength;

/** K_{from→to} of a round, from the two devices' X25519 agreement on their encryption keys. */
export function envelopeKey(roundId: string, from: string, to: string, shared: Uint8Array): Uint8Array {
  return nacl.hash(concat(shareHeader(roundId, from, to), shared)).subarray(0, nacl.secretbox.keyLength);
}

/** Seals `payload` under a one-direction `envelopeKey` (used for this one envelope only). */
export function sealEnvelope(payload: Uint8Array, key: Uint8Array): Uint8Array {
  return nacl.secretbox(payload, ZERO_NONCE, key);
}

/** Opens an envelope and returns its payload; throws `SecAggError("tampered")` unless it authenticates under `key`. */
export function openEnvelope(sealed: Uint8Array, key: Uint8Array): Uint8Array {
  if (sealed.length < ENVELOPE_OVERHEAD) throw new SecAggError("tampered", "a share envelope is too short");
  const plain = nacl.secretbox.open(sealed, ZERO_NONCE, key);
  if (!plain) {
    throw new SecAggError(
      "tampered",
      "a share envelope does not authenticate (altered, or bound to another round, sender or receiver)",
    );
  }
  return plain;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
