/**
 * @module
 * Ed25519 verification of the identity signatures in a round (advertised keys, consistency checks): WebCrypto where the
 * runtime has Ed25519 (Node ≥ 20, workerd, current browsers; native and far faster than JavaScript), tweetnacl
 * otherwise. Signatures whose S is not below the group order L are refused (RFC 8032 §5.1.7), so both paths agree.
 */
import nacl from "tweetnacl";

/** L = 2^252 + 27742317777372353535851937790883648493, little-endian. */
const ED25519_L = new Uint8Array([
  0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0x10,
]);

let webCryptoEd25519: boolean | undefined;
/** Imported verification keys by key bytes: a device checks each neighbour's signatures twice in a round. */
const importedKeys = new Map<string, Promise<CryptoKey>>();
const MAX_IMPORTED_KEYS = 4096;

function importVerifyKey(publicKey: Uint8Array): Promise<CryptoKey> {
  const id = String.fromCharCode(...publicKey);
  let key = importedKeys.get(id);
  if (!key) {
    if (importedKeys.size >= MAX_IMPORTED_KEYS) importedKeys.clear();
    key = crypto.subtle.importKey("raw", own(publicKey), { name: "Ed25519" }, false, ["verify"]);
    importedKeys.set(id, key);
    key.catch(() => importedKeys.delete(id));
  }
  return key;
}

export async function verifyEd25519(
  message: Uint8Array,
  signature: Uint8Array,
  publicKey: Uint8Array,
): Promise<boolean> {
  if (signature.length !== 64 || publicKey.length !== 32 || !canonicalS(signature)) return false;
  if (webCryptoEd25519 !== false) {
    try {
      const key = await importVerifyKey(publicKey);
      webCryptoEd25519 = true;
      return await crypto.subtle.verify({ name: "Ed25519" }, key, own(signature), own(message));
    } catch {
      // A runtime without Ed25519 fails every import; a key it refuses fails once (tweetnacl then decides).
      webCryptoEd25519 ??= false;
    }
  }
  return nacl.sign.detached.verify(message, signature, publicKey);
}

function canonicalS(signature: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    const s = signature[32 + i]!;
    const l = ED25519_L[i]!;
    if (s !== l) return s < l;
  }
  return false;
}

function own(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : new Uint8Array(bytes);
}
