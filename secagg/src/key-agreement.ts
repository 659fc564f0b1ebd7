/**
 * @module
 * X25519 (RFC 7748) through tweetnacl: a device's two key pairs of a round (one to receive ciphertexts, one to agree
 * pairwise mask seeds), and the pairwise seed s_uv = SHA-512(label ‖ round ‖ X25519(sk_u, pk_v))[0..32], the same for
 * u and v.
 */
import nacl from "tweetnacl";
import { SecAggError } from "./errors.ts";
import { cryptoRandomBytes, type RandomBytes } from "./shamir.ts";
import { framed } from "./transcript.ts";

export interface X25519KeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

export function generateX25519KeyPair(random: RandomBytes = cryptoRandomBytes): X25519KeyPair {
  return nacl.box.keyPair.fromSecretKey(random(32));
}

/** The public key of an X25519 secret key (to check a reconstructed secret against what was advertised). */
export function x25519PublicKey(secretKey: Uint8Array): Uint8Array {
  return nacl.scalarMult.base(secretKey);
}

/** The pairwise mask seed of a round; refuses a low-order public key (all-zero shared secret). */
export function pairwiseSeed(roundId: string, secretKey: Uint8Array, theirPublicKey: Uint8Array): Uint8Array {
  const shared = nacl.scalarMult(secretKey, theirPublicKey);
  if (shared.every((b) => b === 0)) throw new SecAggError("bad-message", "a masking key is a low-order point");
  return nacl.hash(framed("pair-seed", [roundId, shared])).subarray(0, 32);
}
