/**
 * @module
 * Ed25519 verification of a decoded update: `verifyUpdateSignature` (tweetnacl, synchronous) and
 * `verifyUpdateSignatureAsync` (WebCrypto where the runtime has Ed25519, about 20× faster on a 400 KB body; tweetnacl
 * otherwise). Both refuse signatures whose S is not below the group order L (RFC 8032 §5.1.7), so each body has exactly one
 * valid signature and both verifiers agree; tweetnacl alone would also accept S + L.
 */
import nacl from "tweetnacl";
import type { DecodedUpdate } from "./update-codec.ts";

const SIGNATURE_BYTES = 64;
const PUBLIC_KEY_BYTES = 32;

/** Ed25519 group order L = 2^252 + 27742317777372353535851937790883648493, little-endian. */
const ED25519_L = new Uint8Array([
  0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0x10,
]);

type Signed = Pick<DecodedUpdate, "signature" | "signedBytes">;

/** Whether the update's signature verifies over its `signedBytes` under a 32-byte Ed25519 public key (tweetnacl). */
export function verifyUpdateSignature(update: DecodedUpdate, publicKey: Uint8Array): boolean {
  checkPublicKey(publicKey, "verifyUpdateSignature");
  if (!isWellFormed(update)) return false;
  return nacl.sign.detached.verify(update.signedBytes, update.signature, publicKey);
}

export interface VerifyUpdateSignatureAsyncOptions {
  /**
   * The WebCrypto implementation to use; `null` forces tweetnacl. When it cannot import Ed25519 keys, tweetnacl is used.
   * @default globalThis.crypto.subtle
   */
  subtle?: SubtleCrypto | null;
}

/**
 * Same answer as `verifyUpdateSignature`, computed with WebCrypto Ed25519 when available (workerd, Node ≥ 20, current
 * browsers), which is native code and much faster on large bodies. Use it on the edge, where CPU time is metered.
 */
export async function verifyUpdateSignatureAsync(
  update: DecodedUpdate,
  publicKey: Uint8Array,
  options: VerifyUpdateSignatureAsyncOptions = {},
): Promise<boolean> {
  checkPublicKey(publicKey, "verifyUpdateSignatureAsync");
  if (!isWellFormed(update)) return false;
  const subtle = options.subtle === undefined ? (globalThis as { crypto?: Crypto }).crypto?.subtle : options.subtle;
  if (subtle) {
    let key: CryptoKey | undefined;
    try {
      key = await subtle.importKey("raw", copyOf(publicKey), { name: "Ed25519" }, false, ["verify"]);
    } catch {
      key = undefined; // no Ed25519 in this runtime (or a key WebCrypto refuses): fall back to tweetnacl below
    }
    if (key) return subtle.verify({ name: "Ed25519" }, key, copyOf(update.signature), copyOf(update.signedBytes));
  }
  return nacl.sign.detached.verify(update.signedBytes, update.signature, publicKey);
}

/** A 64-byte signature whose S (bytes 32..63, little-endian) is below L, over a byte array. */
function isWellFormed(update: Signed): boolean {
  const { signature, signedBytes } = update;
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_BYTES) return false;
  if (!(signedBytes instanceof Uint8Array)) return false;
  for (let i = 31; i >= 0; i--) {
    const s = signature[32 + i]!;
    const l = ED25519_L[i]!;
    if (s !== l) return s < l;
  }
  return false; // S = L
}

/** WebCrypto wants ArrayBuffer-backed views; copy only when the view is over a SharedArrayBuffer. */
function copyOf(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : new Uint8Array(bytes);
}

/** Throws `RangeError` unless `publicKey` is a 32-byte Uint8Array. */
export function checkPublicKey(publicKey: unknown, fn: string): void {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== PUBLIC_KEY_BYTES) {
    throw new RangeError(`${fn}: publicKey must be a ${PUBLIC_KEY_BYTES}-byte Ed25519 public key`);
  }
}
