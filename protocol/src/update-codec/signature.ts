/**
 * @module
 * What an update's Ed25519 signature covers (format version 3) and how to check it.
 *
 * Version 3 signs a digest, not the body: the device computes d = SHA-256(every byte before the signature) with
 * WebCrypto (`crypto.subtle.digest`, native code in browsers, Node, workerd and Deno) and signs the 48-byte message
 * `UPDATE_SIGNING_CONTEXT ‖ d` (pure Ed25519, RFC 8032 §5.1.6, over that message). Versions 1 and 2 signed the whole
 * body, so Ed25519 hashed a 400 KB update twice with SHA-512 in JavaScript (tweetnacl) on the device; with the digest
 * the body is hashed once, natively, and Ed25519 only ever sees 48 bytes (`npm run bench`, update-codec suite).
 * Security: forging an update now needs a forgery of Ed25519 or a second preimage / collision of SHA-256 (128-bit
 * collision resistance); the context string keeps the message apart from every other fedge signature (check-in
 * `fedge-checkin-v1\n…`, admin `fedge-admin-v1\n…`, manifests) made with a key of the same kind.
 *
 * Verification refuses signatures whose S is not below the group order L (RFC 8032 §5.1.7), so each body has exactly
 * one valid signature and every verifier agrees; tweetnacl alone would also accept S + L.
 */
import nacl from "tweetnacl";
import type { DecodedUpdate } from "./update-codec.ts";

const SIGNATURE_BYTES = 64;
const PUBLIC_KEY_BYTES = 32;
/** Bytes of the SHA-256 digest the signature covers. */
export const UPDATE_DIGEST_BYTES = 32;

/** ASCII `fedge-update-v3\n`: the prefix of every version 3 signing message (domain separation). */
export const UPDATE_SIGNING_CONTEXT: Readonly<Uint8Array> = new TextEncoder().encode("fedge-update-v3\n");

/** Ed25519 group order L = 2^252 + 27742317777372353535851937790883648493, little-endian. */
const ED25519_L = new Uint8Array([
  0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0x10,
]);

export interface UpdateCryptoOptions {
  /**
   * The WebCrypto implementation: SHA-256 always comes from it; Ed25519 verification too where it can import Ed25519
   * keys (tweetnacl otherwise). Pass `null` to force tweetnacl for the Ed25519 part (the digest still needs WebCrypto).
   * React Native has no `crypto.subtle`: inject a WebCrypto polyfill here.
   * @default globalThis.crypto.subtle
   */
  subtle?: SubtleCrypto | null;
}

/** The SubtleCrypto that computes digests, or a `TypeError` saying the runtime has none. */
function digestSubtle(options: UpdateCryptoOptions, fn: string): SubtleCrypto {
  const subtle =
    options.subtle === undefined || options.subtle === null
      ? (globalThis as { crypto?: Crypto }).crypto?.subtle
      : options.subtle;
  if (!subtle || typeof subtle.digest !== "function") {
    throw new TypeError(
      `${fn}: this runtime has no crypto.subtle.digest; update format version 3 signs a SHA-256 digest (React Native: pass a WebCrypto polyfill as options.subtle)`,
    );
  }
  return subtle;
}

/** SHA-256 of the bytes an update's signature covers (everything before the signature), from WebCrypto. */
export async function updateDigest(signedBytes: Uint8Array, options: UpdateCryptoOptions = {}): Promise<Uint8Array> {
  if (!(signedBytes instanceof Uint8Array)) throw new TypeError("updateDigest: signedBytes must be a Uint8Array");
  const subtle = digestSubtle(options, "updateDigest");
  return new Uint8Array(await subtle.digest("SHA-256", copyOf(signedBytes)));
}

/**
 * How an accepted update is named (the `sha256` of its receipt and listing, and its storage key): the lowercase hex of
 * its signed digest, SHA-256(every byte before the signature), the very hash the version 3 signature covers. The edge
 * hashes each body once and uses the digest both to verify and to name it. It leaves the signature out, so it names
 * the signed content (round, device, nonce, payload) whatever valid signature carries it.
 */
export async function updateDigestHex(body: Uint8Array, options: UpdateCryptoOptions = {}): Promise<string> {
  if (!(body instanceof Uint8Array) || body.length < SIGNATURE_BYTES) {
    throw new RangeError(`updateDigestHex: body must be an encoded update (at least ${SIGNATURE_BYTES} bytes)`);
  }
  return digestHex(await updateDigest(body.subarray(0, body.length - SIGNATURE_BYTES), options));
}

/** Lowercase hex of a digest. */
export function digestHex(digest: Uint8Array): string {
  let hex = "";
  for (let i = 0; i < digest.length; i++) hex += digest[i]!.toString(16).padStart(2, "0");
  return hex;
}

/** The 48 bytes Ed25519 signs in format version 3: `UPDATE_SIGNING_CONTEXT ‖ digest`. */
export function updateSigningMessage(digest: Uint8Array): Uint8Array<ArrayBuffer> {
  if (!(digest instanceof Uint8Array) || digest.length !== UPDATE_DIGEST_BYTES) {
    throw new RangeError(`updateSigningMessage: digest must be ${UPDATE_DIGEST_BYTES} bytes`);
  }
  const out = new Uint8Array(UPDATE_SIGNING_CONTEXT.length + UPDATE_DIGEST_BYTES);
  out.set(UPDATE_SIGNING_CONTEXT, 0);
  out.set(digest, UPDATE_SIGNING_CONTEXT.length);
  return out;
}

/** Signs a version 3 update's covered bytes with a 64-byte tweetnacl secret key: the 64-byte signature. */
export async function signUpdateBytes(
  signedBytes: Uint8Array,
  secretKey: Uint8Array,
  options: UpdateCryptoOptions = {},
): Promise<Uint8Array> {
  const message = updateSigningMessage(await updateDigest(signedBytes, options));
  return nacl.sign.detached(message, secretKey);
}

/**
 * Whether the update's signature verifies under a 32-byte Ed25519 public key: SHA-256 of `signedBytes`, then Ed25519
 * over the signing message, with WebCrypto where the runtime has Ed25519 (workerd, Node ≥ 20, current browsers) and
 * tweetnacl otherwise. Throws `RangeError` for a malformed key; answers false for a malformed signature.
 */
export async function verifyUpdateSignature(
  update: Pick<DecodedUpdate, "signature" | "signedBytes">,
  publicKey: Uint8Array,
  options: UpdateCryptoOptions = {},
): Promise<boolean> {
  checkPublicKey(publicKey, "verifyUpdateSignature");
  if (!isWellFormed(update)) return false;
  const message = updateSigningMessage(await updateDigest(update.signedBytes, options));
  return verifyEd25519Message(publicKey, update.signature, message, options);
}

/** Ed25519 over a short message, WebCrypto first (see {@link verifyUpdateSignature}). */
async function verifyEd25519Message(
  publicKey: Uint8Array,
  signature: Uint8Array,
  message: Uint8Array<ArrayBuffer>,
  options: UpdateCryptoOptions,
): Promise<boolean> {
  const subtle = options.subtle === undefined ? (globalThis as { crypto?: Crypto }).crypto?.subtle : options.subtle;
  if (subtle) {
    let key: CryptoKey | undefined;
    try {
      key = await subtle.importKey("raw", copyOf(publicKey), { name: "Ed25519" }, false, ["verify"]);
    } catch {
      key = undefined; // no Ed25519 in this runtime (or a key WebCrypto refuses): fall back to tweetnacl below
    }
    if (key) return subtle.verify({ name: "Ed25519" }, key, copyOf(signature), message);
  }
  return nacl.sign.detached.verify(message, signature, publicKey);
}

/** A 64-byte signature whose S (bytes 32..63, little-endian) is below L, over a byte array. */
function isWellFormed(update: Pick<DecodedUpdate, "signature" | "signedBytes">): boolean {
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
