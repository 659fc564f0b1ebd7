/**
 * @module
 * Device-to-device share envelopes: nacl.box (X25519 + XSalsa20-Poly1305) from the sender's to the receiver's advertised
 * encryption key, with a random 24-byte nonce in front. The X25519 step is `envelopeKey` (nacl.box.before), done once
 * per pair of devices: the same key seals the envelope to a neighbour and opens the one from it. The plaintext starts with the header (round, stage, sender,
 * receiver), checked on opening: a ciphertext altered in transit fails Poly1305, and one replayed into another round,
 * stage or mailbox fails the header check.
 */
import nacl from "tweetnacl";
import { SecAggError } from "./errors.ts";
import { cryptoRandomBytes, type RandomBytes } from "./shamir.ts";

/** The shared key of an envelope between two devices (either direction): X25519 + HSalsa20 (nacl.box.before). */
export function envelopeKey(theirPublicKey: Uint8Array, mySecretKey: Uint8Array): Uint8Array {
  return nacl.box.before(theirPublicKey, mySecretKey);
}

/** Seals `payload` behind `header` under the pair's `envelopeKey`. */
export function sealEnvelope(
  header: Uint8Array,
  payload: Uint8Array,
  sharedKey: Uint8Array,
  random: RandomBytes = cryptoRandomBytes,
): Uint8Array {
  const nonce = random(nacl.box.nonceLength);
  const plain = new Uint8Array(header.length + payload.length);
  plain.set(header);
  plain.set(payload, header.length);
  const boxed = nacl.box.after(plain, nonce, sharedKey);
  const out = new Uint8Array(nonce.length + boxed.length);
  out.set(nonce);
  out.set(boxed, nonce.length);
  return out;
}

/** Opens an envelope and returns its payload; throws `SecAggError("tampered")` unless it authenticates with `header`. */
export function openEnvelope(header: Uint8Array, sealed: Uint8Array, sharedKey: Uint8Array): Uint8Array {
  if (sealed.length < nacl.box.nonceLength + nacl.box.overheadLength + header.length) {
    throw new SecAggError("tampered", "a share envelope is too short");
  }
  const plain = nacl.box.open.after(
    sealed.subarray(nacl.box.nonceLength),
    sealed.subarray(0, nacl.box.nonceLength),
    sharedKey,
  );
  if (!plain) throw new SecAggError("tampered", "a share envelope does not authenticate");
  const got = plain.subarray(0, header.length);
  if (!got.every((b, i) => b === header[i])) {
    throw new SecAggError("tampered", "a share envelope is bound to another round, stage, sender or receiver");
  }
  return plain.subarray(header.length);
}
