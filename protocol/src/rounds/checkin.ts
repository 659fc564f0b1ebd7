/**
 * @module
 * Check-in: a registered device asks whether it takes part in the population's current round. The edge flips a
 * CSPRNG coin with probability q once per device per round (Poisson sampling, what the accountant assumes) and
 * answers the same on every repeat within that round.
 */
import { z } from "zod";
import { Base64Url, IsoDateTime, ModelName } from "../common.ts";
import { DeviceId } from "../devices.ts";
import { DistributedNoise, RoundTask } from "./task.ts";
import { ClipRule } from "./privacy.ts";
import { EDGE_KEY_ALG } from "./receipt.ts";

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

/**
 * The edge's signed statement that the device's coin was flipped in a DP round (see `receipt.ts` for the signed bytes):
 * the device's privacy loss accrues for this round whether or not it was selected.
 */
export const CheckinReceipt = z
  .object({
    model: ModelName,
    round_id: z.string(),
    device_id: DeviceId,
    sampling_rate: z.number(),
    noise_multiplier: z.number(),
    count_noise_std: z.number().nullable(),
    privacy_mode: z.enum(["central", "local", "distributed"]),
    clip_rule: ClipRule,
    delta: z.number(),
    checked_in_at: IsoDateTime,
    /** Mode `distributed` only: the discrete noise the round was charged for (signed). */
    distributed_noise: z
      .object({
        dimension: z.number(),
        noise_shares: z.number(),
        share_variance: z.number(),
        sensitivity_bound: z.number(),
        corrupt_devices: z.number().optional(),
        cohort: z.enum(["sampled", "checked-in"]).optional(),
      })
      .strict()
      .optional(),
    alg: z.literal(EDGE_KEY_ALG),
    /** Ed25519 signature (base64url) by the edge key over `checkinReceiptSigningBytes`. */
    signature: Base64Url.length(86),
  })
  .meta({ id: "CheckinReceipt" });
export type CheckinReceipt = z.infer<typeof CheckinReceipt>;

/** `GET /.well-known/fedge-edge-key`: the public key that signs check-in receipts. */
export const EdgeKeyResponse = z
  .object({ public_key: Base64Url.length(43), alg: z.literal(EDGE_KEY_ALG) })
  .meta({ id: "EdgeKeyResponse" });
export type EdgeKeyResponse = z.infer<typeof EdgeKeyResponse>;

export const CheckinResponse = z
  .discriminatedUnion("selected", [
    z.object({
      selected: z.literal(true),
      task: RoundTask,
      /**
       * What the device inputs. Absent or `update`: its trained update (the coin selected it). `noise-only`: a
       * distributed round whose cohort is every checked-in device (`DistributedNoise.cohort` = `checked-in`) and
       * whose coin left this device out: it joins the secure aggregation with a zero update and its noise share, and
       * does not train.
       */
      input: z.enum(["update", "noise-only"]).optional(),
      /** Present for DP rounds: the signed record of this check-in. */
      receipt: CheckinReceipt.optional(),
    }),
    z.object({
      selected: z.literal(false),
      /** `not_sampled`: the coin said no this round; `no_open_round`: nothing is collecting. */
      reason: z.enum(["not_sampled", "no_open_round", "already_reported"]),
      round_id: z.string().optional(),
      /** When to check in again. */
      retry_after_s: z.number().int().nonnegative(),
      /** Present when the device's coin was flipped in a DP round (`not_sampled`, `already_reported`). */
      receipt: CheckinReceipt.optional(),
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
    /**
     * The update's name: lowercase hex SHA-256 of its signed bytes (every byte before the signature), the digest its
     * version 3 signature covers (`updateDigestHex`). The same signed content answers with the same name.
     */
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    received_at: IsoDateTime,
    duplicate: z.boolean(),
  })
  .meta({ id: "UpdateReceipt" });
export type UpdateReceipt = z.infer<typeof UpdateReceipt>;

/**
 * The noise that protected a device in a distributed round: the round's charged `DistributedNoise` and what it
 * guarantees. A released sum holds at least `noise_shares` inputs; besides the device's own share, at least
 * `guaranteed_shares` = noise_shares − 1 − corrupt_devices shares of honest devices, whose sum has standard deviation
 * `guaranteed_noise_std` = √(guaranteed_shares · share_variance)/scale per coordinate in the update's units
 * (comparable with z·C of central mode). The charge compares the sum with the device (its update and share on top of
 * those) against those shares alone (add/remove); against the edge, zero-out with the device's share in both.
 */
export const DeviceDistributedNoise = DistributedNoise.extend({
  guaranteed_shares: z.number().int().positive(),
  guaranteed_noise_std: z.number().positive(),
})
  .strict()
  .meta({ id: "DeviceDistributedNoise" });
export type DeviceDistributedNoise = z.infer<typeof DeviceDistributedNoise>;

/** One round the edge recorded a device's check-in for, with what that round was charged. */
export const DeviceCheckedInRound = z
  .object({
    round_id: z.string(),
    checked_in_at: IsoDateTime,
    sampling_rate: z.number(),
    noise_multiplier: z.number(),
    count_noise_std: z.number().nullable(),
    privacy_mode: z.enum(["central", "local", "distributed"]),
    clip_rule: ClipRule,
    /** Mode `distributed`: the noise that protected the device (null in the other modes). */
    distributed: DeviceDistributedNoise.nullable(),
    /**
     * Whether the device's update went into the round: its coin selected it (a `noise-only` device of a checked-in
     * cohort, or one the coin left out, input none). Only such rounds count against the edge, which flips the coins.
     */
    update_included: z.boolean(),
  })
  .meta({ id: "DeviceCheckedInRound" });
export type DeviceCheckedInRound = z.infer<typeof DeviceCheckedInRound>;

/**
 * `GET /v1/devices/:id/privacy` (API key + the device's signature over `devicePrivacySigningBytes` in
 * `x-fedge-signature`, with `x-fedge-timestamp`): every DP round the device checked in for, per population, oldest
 * first.
 */
export const DevicePrivacyRecord = z
  .object({
    device_id: DeviceId,
    populations: z.array(
      z.object({
        model: ModelName,
        rounds: z.array(DeviceCheckedInRound),
        /**
         * ε of exactly these rounds for this device at `delta`, by the RDP accountant of `@fedge/privacy` (what the
         * SDK's `client.privacy()` computes from its receipts; the population's ε when it checked in for every round).
         * null while the population has no budget (no δ).
         */
        epsilon: z.number().nullable(),
        /**
         * ε of these rounds for this device at `delta` against the edge, which flips the coins: only the rounds
         * whose coin put the device's update in (`update_included`; the others are independent of its data for a
         * party that knows the coins), without amplification by sampling, distributed rounds for zero-out neighbours
         * with the device's own share (PrivacyLedger `spentAgainstEdge`). null without a budget, or when one of them
         * was a central round (the edge saw the clipped update: no bound).
         */
        epsilon_against_edge: z.number().nullable(),
        /** The population budget's δ (null without a budget). */
        delta: z.number().nullable(),
      }),
    ),
  })
  .meta({ id: "DevicePrivacyRecord" });
export type DevicePrivacyRecord = z.infer<typeof DevicePrivacyRecord>;
