/**
 * @module
 * Device-to-device share envelopes: nacl.box (X25519 + XSalsa20-Poly1305) from the sender's to the receiver's advertised
 * encryption key, with a random 24-byte nonce in front. The plaintext starts with the header (round, stage, sender,
 * receiver), checked on opening: a ciphertext altered in transit fails Poly1305, and one replayed into another round,
 * stage or mailbox fails the header check.
 */
import nacl from "tweetnacl";
import { SecAggError } from "./errors.ts";
import { cryptoRandomBytes, type RandomBytes } from "./shamir.ts";

/** Seals `payload` behind `header` for the receiver. */
export function sealEnvelope(
  header: Uint8Array,
  payload: Uint8Array,
  receiverPublicKey: Uint8Array,
  senderSecretKey: Uint8Array,
  random: RandomBytes = cryptoRandomBytes,
): Uint8Array {
  const nonce = random(nacl.box.nonceLength);
  const plain = new Uint8Array(header.length + payload.length);
  plain.set(header);
  plain.set(payload, header.length);
  const boxed = nacl.box(plain, nonce, receiverPublicKey, senderSecretKey);
  const out = new Uint8Array(nonce.length + boxed.length);
  out.set(nonce);
  out.set(boxed, nonce.length);
  return out;
}

/** Opens an envelope and returns its payload; throws `SecAggError("tampered")` unless it authenticates with `header`. */
export function openEnvelope(
  header: Uint8Array,
  sealed: Uint8Array,
  senderPublicKey: Uint8Array,
  receiverSecretKey: Uint8Array,
): Uint8Array {
  if (sealed.length < nacl.box.nonceLength + nacl.box.overheadLength + header.length) {
    throw new SecAggError("tampered", "a share envelope is too short");
  }
  const plain = nacl.box.open(
    sealed.subarray(nacl.box.nonceLength),
    sealed.subarray(0, nacl.box.nonceLength),
    senderPublicKey,
    receiverSecretKey,
  );
  if (!plain) throw new SecAggError("tampered", "a share envelope does not authenticate");
  const got = plain.subarray(0, header.length);
  if (!got.every((b, i) => b === header[i])) {
    throw new SecAggError("tampered", "a share envelope is bound to another round, stage, sender or receiver");
  }
  return plain.subarray(header.length);
}
