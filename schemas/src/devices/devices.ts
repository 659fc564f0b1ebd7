/**
 * @module
 * Device identity: a device registers its Ed25519 public key (tweetnacl) and signs check-ins and updates with it.
 */
import { z } from "zod";
import { Base64Url, IsoDateTime } from "../common/common.ts";

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
