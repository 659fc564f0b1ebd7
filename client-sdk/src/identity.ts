/**
 * @module
 * The device's identity: an Ed25519 key pair and the device id the edge assigned to its public key, persisted in storage
 * under `device/identity`. The key pair is written before registration is attempted, so a crash or a lost response
 * never creates a second key: the next `register()` re-sends the same public key.
 *
 * Two kinds of key:
 * - where the storage keeps WebCrypto key pairs (IndexedDB in browsers) and the platform has WebCrypto Ed25519, the
 *   private key is a **non-extractable** `CryptoKey` stored by structured clone (`device/signing-key`): script on the
 *   page can sign with it while it runs, but cannot read it out, and it never exists as bytes;
 * - elsewhere (Node files, React Native, memory) a tweetnacl key pair stored as bytes (Node's file storage keeps them
 *   0600). Signatures are the same Ed25519 either way; the edge cannot tell them apart.
 */
import nacl from "tweetnacl";
import { UPDATE_SIGNATURE_BYTES, updateDigest, updateSigningMessage } from "@fedge/protocol";
import { fromBase64Url, toBase64Url } from "./internal/encoding.ts";
import type { FedgeStorage } from "./storage/storage.ts";
import { getJson, hasKeyStore, setJson } from "./storage/storage.ts";

export const IDENTITY_KEY = "device/identity";
/** Where a non-extractable WebCrypto key pair is kept (storages with a key store only). */
export const SIGNING_KEY = "device/signing-key";

export interface DeviceKeys {
  /** 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
  /** 64-byte tweetnacl signing secret key (seed ‖ public key). */
  secretKey: Uint8Array;
}

export interface StoredIdentity {
  /** 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
  /** The tweetnacl secret key, for a byte-stored identity. */
  secretKey?: Uint8Array | undefined;
  /** The non-extractable WebCrypto private key, for an identity kept in a key store. */
  privateKey?: CryptoKey | undefined;
  /** Set once the edge accepted the public key. */
  deviceId: string | undefined;
  /** The edge the device id belongs to. */
  baseUrl: string;
}

type IdentityJson =
  | { v: 1; base_url: string; public_key: string; secret_key: string; device_id?: string }
  | { v: 2; base_url: string; public_key: string; key: "webcrypto"; device_id?: string };

/**
 * A new key pair: `nacl.sign.keyPair.fromSeed` on 32 bytes from the CSPRNG (the same as `nacl.sign.keyPair()`, but
 * using the client's injectable random source instead of tweetnacl's global one).
 */
export function generateDeviceKeys(random: (buf: Uint8Array) => void): DeviceKeys {
  const seed = new Uint8Array(32);
  random(seed);
  const kp = nacl.sign.keyPair.fromSeed(seed);
  seed.fill(0);
  return { publicKey: kp.publicKey, secretKey: kp.secretKey };
}

/** A non-extractable WebCrypto Ed25519 key pair, or undefined where the platform has none. */
async function webCryptoKeys(): Promise<CryptoKeyPair | undefined> {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) return undefined;
  try {
    const pair = (await subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"])) as CryptoKeyPair;
    return pair.privateKey.extractable ? undefined : pair;
  } catch {
    return undefined; // no Ed25519 in this WebCrypto
  }
}

/**
 * A fresh identity for `baseUrl`, persisted before it is used: a non-extractable WebCrypto key where the storage keeps
 * key pairs and the platform has Ed25519, else tweetnacl bytes.
 */
export async function createIdentity(
  storage: FedgeStorage,
  random: (buf: Uint8Array) => void,
  baseUrl: string,
): Promise<StoredIdentity> {
  if (hasKeyStore(storage)) {
    const pair = await webCryptoKeys();
    if (pair) {
      const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
      await storage.setKeyPair(SIGNING_KEY, pair);
      const id: StoredIdentity = { publicKey, privateKey: pair.privateKey, deviceId: undefined, baseUrl };
      await saveIdentity(storage, id);
      return id;
    }
  }
  const id: StoredIdentity = { ...generateDeviceKeys(random), deviceId: undefined, baseUrl };
  await saveIdentity(storage, id);
  return id;
}

export async function loadIdentity(storage: FedgeStorage): Promise<StoredIdentity | undefined> {
  const j = await getJson<IdentityJson>(storage, IDENTITY_KEY);
  if (!j) return undefined;
  if (j.v === 1) {
    return {
      baseUrl: j.base_url,
      publicKey: fromBase64Url(j.public_key),
      secretKey: fromBase64Url(j.secret_key),
      deviceId: j.device_id,
    };
  }
  if (j.v === 2 && hasKeyStore(storage)) {
    const pair = await storage.getKeyPair(SIGNING_KEY);
    if (!pair) return undefined;
    return {
      baseUrl: j.base_url,
      publicKey: fromBase64Url(j.public_key),
      privateKey: pair.privateKey,
      deviceId: j.device_id,
    };
  }
  return undefined;
}

export async function saveIdentity(storage: FedgeStorage, id: StoredIdentity): Promise<void> {
  const j: IdentityJson = id.privateKey
    ? { v: 2, base_url: id.baseUrl, public_key: toBase64Url(id.publicKey), key: "webcrypto" }
    : { v: 1, base_url: id.baseUrl, public_key: toBase64Url(id.publicKey), secret_key: toBase64Url(id.secretKey!) };
  if (id.deviceId !== undefined) j.device_id = id.deviceId;
  await setJson(storage, IDENTITY_KEY, j);
}

/** Detached Ed25519 signature with a tweetnacl secret key. */
export function sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  return nacl.sign.detached(message, secretKey);
}

/** Detached Ed25519 signature with the identity's key, whichever kind it is. */
export async function signWith(id: StoredIdentity, message: Uint8Array): Promise<Uint8Array> {
  if (id.privateKey) {
    return new Uint8Array(await crypto.subtle.sign("Ed25519", id.privateKey, message as Uint8Array<ArrayBuffer>));
  }
  const key = await nativeSigningKey(id.secretKey!);
  if (key) {
    try {
      return new Uint8Array(await crypto.subtle.sign("Ed25519", key, message as Uint8Array<ArrayBuffer>));
    } catch {
      // this runtime imports Ed25519 keys but cannot sign with them: tweetnacl below
    }
  }
  return sign(message, id.secretKey!);
}

const nativeKeys = new WeakMap<Uint8Array, Promise<CryptoKey | null>>();

/**
 * A tweetnacl secret key imported once into WebCrypto, or `null` where the runtime has no Ed25519 there. A device signs
 * every check-in: tweetnacl takes milliseconds of the app's main thread per signature, WebCrypto microseconds, and
 * Ed25519 is deterministic (RFC 8032), so both give the same bytes.
 */
function nativeSigningKey(secretKey: Uint8Array): Promise<CryptoKey | null> {
  let key = nativeKeys.get(secretKey);
  if (!key) {
    const subtle = (globalThis as { crypto?: Crypto }).crypto?.subtle;
    const jwk = {
      kty: "OKP",
      crv: "Ed25519",
      d: toBase64Url(secretKey.subarray(0, 32)),
      x: toBase64Url(secretKey.subarray(32, 64)),
    };
    key = subtle?.importKey
      ? subtle.importKey("jwk", jwk, { name: "Ed25519" }, false, ["sign"]).catch(() => null)
      : Promise.resolve(null);
    nativeKeys.set(secretKey, key);
  }
  return key;
}

/**
 * Signs encoded update bytes with the identity's key, in place: an update built with a placeholder key gets the
 * device's real signature. Codec version 3 signs `updateSigningMessage(SHA-256(every byte but the trailing 64-byte
 * signature))`, so a WebCrypto key signs 48 bytes whatever the update's size.
 */
export async function resignUpdate(id: StoredIdentity, bytes: Uint8Array): Promise<Uint8Array> {
  const n = bytes.length - UPDATE_SIGNATURE_BYTES;
  const message = updateSigningMessage(await updateDigest(bytes.subarray(0, n)));
  bytes.set(await signWith(id, message), n);
  return bytes;
}

let placeholder: Uint8Array | undefined;
/** A fixed tweetnacl key for building an update whose signature `resignUpdate` then replaces. */
export function placeholderSecretKey(): Uint8Array {
  return (placeholder ??= nacl.sign.keyPair.fromSeed(new Uint8Array(32)).secretKey);
}
