/**
 * @module
 * The device's identity: an Ed25519 key pair (tweetnacl) and the device id the edge assigned to its public key,
 * persisted in storage under `device/identity`. The key pair is written before registration is attempted, so a
 * crash or a lost response never creates a second key: the next `register()` re-sends the same public key.
 */
import nacl from "tweetnacl";
import { fromBase64Url, toBase64Url } from "./internal/encoding.ts";
import type { FedgeStorage } from "./storage/storage.ts";
import { getJson, setJson } from "./storage/storage.ts";

export const IDENTITY_KEY = "device/identity";

export interface DeviceKeys {
  /** 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
  /** 64-byte tweetnacl signing secret key (seed ‖ public key). */
  secretKey: Uint8Array;
}

export interface StoredIdentity extends DeviceKeys {
  /** Set once the edge accepted the public key. */
  deviceId: string | undefined;
  /** The edge the device id belongs to. */
  baseUrl: string;
}

interface IdentityJson {
  v: 1;
  base_url: string;
  public_key: string;
  secret_key: string;
  device_id?: string;
}

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

export async function loadIdentity(storage: FedgeStorage): Promise<StoredIdentity | undefined> {
  const j = await getJson<IdentityJson>(storage, IDENTITY_KEY);
  if (!j || j.v !== 1) return undefined;
  return {
    baseUrl: j.base_url,
    publicKey: fromBase64Url(j.public_key),
    secretKey: fromBase64Url(j.secret_key),
    deviceId: j.device_id,
  };
}

export async function saveIdentity(storage: FedgeStorage, id: StoredIdentity): Promise<void> {
  const j: IdentityJson = {
    v: 1,
    base_url: id.baseUrl,
    public_key: toBase64Url(id.publicKey),
    secret_key: toBase64Url(id.secretKey),
  };
  if (id.deviceId !== undefined) j.device_id = id.deviceId;
  await setJson(storage, IDENTITY_KEY, j);
}

/** Detached Ed25519 signature. */
export function sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  return nacl.sign.detached(message, secretKey);
}
