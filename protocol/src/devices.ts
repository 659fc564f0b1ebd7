/**
 * @module
 * Device identity: a device registers its Ed25519 public key (tweetnacl) and signs check-ins and updates with it.
 */
import { z } from "zod";
import { Base64Url, IsoDateTime } from "./common.ts";

export const DeviceId = z.string().regex(/^dev_[A-Za-z0-9_-]{8,64}$/);

export const RegisterDeviceRequest = z
  .object({
    /** Ed25519 public key, 32 bytes, base64url. */
    public_key: Base64Url.length(43),
    /** Free-form platform tag for operators, e.g. `browser`, `node`, `react-native`. */
    platform: z.string().max(32).optional(),
  })
  .meta({ id: "RegisterDeviceRequest" });
export type RegisterDeviceRequest = z.infer<typeof RegisterDeviceRequest>;

export const RegisterDeviceResponse = z
  .object({ device_id: DeviceId, created_at: IsoDateTime })
  .meta({ id: "RegisterDeviceResponse" });
export type RegisterDeviceResponse = z.infer<typeof RegisterDeviceResponse>;

/**
 * Default number of active (unrevoked) devices one API key may register. Each device is a Durable Object, so a key
 * gets a modest number until an admin raises its quota (`PUT /v1/admin/device-quotas/:key_id`).
 */
export const DEFAULT_DEVICE_QUOTA_PER_KEY = 1_000;

/** A registered device as admins see it. */
export const DeviceInfo = z
  .object({
    device_id: DeviceId,
    /** Ed25519 public key, base64url. */
    public_key: Base64Url.length(43),
    /** Id of the API key that registered it. */
    api_key_id: z.string(),
    platform: z.string().nullable(),
    created_at: IsoDateTime,
    revoked_at: IsoDateTime.nullable(),
  })
  .meta({ id: "DeviceInfo" });
export type DeviceInfo = z.infer<typeof DeviceInfo>;

/** `PUT /v1/admin/device-quotas/:key_id`: how many active devices the key may register. */
export const DeviceQuota = z
  .object({ max_devices: z.number().int().min(0).max(100_000_000) })
  .strict()
  .meta({ id: "DeviceQuota" });
export type DeviceQuota = z.infer<typeof DeviceQuota>;

export const DeviceQuotaStatus = z
  .object({ api_key_id: z.string(), max_devices: z.number().int().nonnegative(), active_devices: z.number().int() })
  .meta({ id: "DeviceQuotaStatus" });
export type DeviceQuotaStatus = z.infer<typeof DeviceQuotaStatus>;

/** An aggregator signing key registered by an admin (`PUT /v1/admin/aggregator-keys/:public_key`). */
export const AggregatorKeyInfo = z
  .object({ public_key: Base64Url.length(43), created_at: IsoDateTime })
  .meta({ id: "AggregatorKeyInfo" });
export type AggregatorKeyInfo = z.infer<typeof AggregatorKeyInfo>;
