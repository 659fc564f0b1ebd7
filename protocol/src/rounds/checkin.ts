/**
 * @module
 * Check-in: a registered device asks whether it takes part in the population's current round. The edge flips a
 * CSPRNG coin with probability q once per device per round (Poisson sampling, what the accountant assumes) and
 * answers the same on every repeat within that round.
 */
import { z } from "zod";
import { Base64Url, IsoDateTime, ModelName } from "../common.ts";
import { DeviceId } from "../devices.ts";
import { RoundTask } from "./task.ts";

/** How far a check-in timestamp may be from the edge's clock. */
export const CHECKIN_MAX_SKEW_MS = 5 * 60 * 1000;

export const CheckinRequest = z
  .object({
    model: ModelName,
    device_id: DeviceId,
    /** The device's clock; must be within CHECKIN_MAX_SKEW_MS of the edge's. */
    timestamp: IsoDateTime,
    /** Ed25519 detached signature (base64url) over `checkinSigningBytes(model, device_id, timestamp)`. */
    signature: Base64Url.length(86),
  })
  .meta({ id: "CheckinRequest" });
export type CheckinRequest = z.infer<typeof CheckinRequest>;

export const CheckinResponse = z
  .discriminatedUnion("selected", [
    z.object({ selected: z.literal(true), task: RoundTask }),
    z.object({
      selected: z.literal(false),
      /** `not_sampled`: the coin said no this round; `no_open_round`: nothing is collecting. */
      reason: z.enum(["not_sampled", "no_open_round", "already_reported"]),
      round_id: z.string().optional(),
      /** When to check in again. */
      retry_after_s: z.number().int().nonnegative(),
    }),
  ])
  .meta({ id: "CheckinResponse" });
export type CheckinResponse = z.infer<typeof CheckinResponse>;

/** The bytes a device signs to check in: a domain-separated, newline-joined string. */
export function checkinSigningBytes(model: string, deviceId: string, timestamp: string): Uint8Array {
  return new TextEncoder().encode(`fedge-checkin-v1\n${model}\n${deviceId}\n${timestamp}`);
}

/** What the edge returns for an accepted update (the same receipt again for an idempotent resubmission). */
export const UpdateReceipt = z
  .object({
    round_id: z.string(),
    device_id: DeviceId,
    /** Lowercase hex SHA-256 of the whole signed update. */
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    received_at: IsoDateTime,
    duplicate: z.boolean(),
  })
  .meta({ id: "UpdateReceipt" });
export type UpdateReceipt = z.infer<typeof UpdateReceipt>;
