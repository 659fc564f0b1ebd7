/**
 * @module
 * What this isolate learned from a device's registry at a check-in the registry verified: the device's public key and
 * the API key it was registered under (both fixed for the device's life), and the populations the registry recorded it
 * in (never removed). A later check-in of the same device to one of those populations is checked here (API key, then
 * the Ed25519 signature under the remembered key) and goes straight to the population's coordinator, one Durable Object
 * call instead of two. The registry call was most of a check-in's cost: the device's own object is cold by the next
 * round and is constructed again for it (docs/SCALE.md, "Where a check-in's time goes").
 *
 * Revocation still refuses the very next check-in: the registry recorded the population before that population's
 * coordinator first learned the device, so a revocation is pushed there (and to every shard) before the admin's revoke
 * call answers, and the coordinator refuses the device's check-ins and uploads from then on, as uploads already relied
 * on. A push that fails stays in the registry's outbox and is retried every few seconds (device-registry.ts); until
 * every push has landed the revoke answers 503 `revocation_pending`, never success (routes/admin-devices.ts).
 * A first check-in to a population, or any check-in of a device this isolate has not seen, takes the registry path.
 * So does every check-in to an audit shadow: a deleted shadow keeps no storage, not even a revocation pushed to it,
 * and its name may be given to a new shadow.
 *
 * Only a check-in the registry verified adds an entry, so an unauthenticated or forged request adds nothing. Bounded:
 * the least recently used device goes first.
 */

import { isAuditShadowName } from "@fedge/protocol";

/** A device as its registry verified it. */
export interface VerifiedDevice {
  device_id: string;
  /** base64url Ed25519 public key. */
  public_key: string;
  /** The API key the device was registered under. */
  api_key_id: string;
}

interface Entry {
  device: VerifiedDevice;
  /** Populations the device's registry recorded it in. */
  populations: Set<string>;
}

/** Devices kept per isolate (a few hundred bytes each: ≈ 6 MB when full). */
export const VERIFIED_DEVICES_MAX = 16_384;

const devices = new Map<string, Entry>();

/** Remembers that `device`'s registry verified its check-in to `model` and recorded the population. */
export function rememberVerifiedCheckin(device: VerifiedDevice, model: string): void {
  if (isAuditShadowName(model)) return;
  const known = devices.get(device.device_id);
  devices.delete(device.device_id);
  if (devices.size >= VERIFIED_DEVICES_MAX) devices.delete(devices.keys().next().value!);
  const entry: Entry =
    known && known.device.public_key === device.public_key && known.device.api_key_id === device.api_key_id
      ? known
      : {
          device: { device_id: device.device_id, public_key: device.public_key, api_key_id: device.api_key_id },
          populations: new Set(),
        };
  entry.populations.add(model);
  devices.set(device.device_id, entry);
}

/**
 * The device, when its registry already recorded it in `model` and it belongs to `apiKeyId`; null otherwise (the
 * caller then asks the registry, which names what is wrong).
 */
export function verifiedDeviceFor(deviceId: string, model: string, apiKeyId: string): VerifiedDevice | null {
  const entry = devices.get(deviceId);
  if (!entry || entry.device.api_key_id !== apiKeyId || !entry.populations.has(model)) return null;
  // Most recently used last, so the oldest is evicted first.
  devices.delete(deviceId);
  devices.set(deviceId, entry);
  return entry.device;
}

/** Drops the device (revoked: its check-ins take the registry path again, which names the revocation first). */
export function forgetVerifiedDevice(deviceId: string): void {
  devices.delete(deviceId);
}
