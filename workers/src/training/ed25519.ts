/**
 * @module
 * Ed25519 signature verification with WebCrypto (native in workerd), imported keys cached per isolate. Signatures are the
 * same as tweetnacl's `sign.detached` (RFC 8032 pure Ed25519). An update (codec v3) signs a 48-byte message holding the
 * SHA-256 of its header and payload, so the edge hashes the body once natively and Ed25519 never sees the 400 KB.
 */
const keyCache = new Map<string, Promise<CryptoKey>>();
const KEY_CACHE_MAX = 4096;

function importKey(publicKey: Uint8Array, cacheKey: string): Promise<CryptoKey> {
  let key = keyCache.get(cacheKey);
  if (!key) {
    key = crypto.subtle.importKey("raw", publicKey as Uint8Array<ArrayBuffer>, { name: "Ed25519" }, false, ["verify"]);
    if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear();
    keyCache.set(cacheKey, key);
    key.catch(() => keyCache.delete(cacheKey));
  }
  return key;
}

/** Whether `signature` (64 bytes) over `message` verifies under `publicKey` (32 bytes); never throws for bad input. */
export async function verifyEd25519(
  publicKey: Uint8Array,
  signature: Uint8Array,
  message: Uint8Array,
  cacheKey?: string,
): Promise<boolean> {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    const key = await importKey(publicKey, cacheKey ?? Array.from(publicKey).join(","));
    return await crypto.subtle.verify(
      "Ed25519",
      key,
      signature as Uint8Array<ArrayBuffer>,
      message as Uint8Array<ArrayBuffer>,
    );
  } catch {
    return false;
  }
}
