/**
 * @module
 * The messages of secure aggregation in `distributed` rounds (SecAgg+, Bell et al. CCS 2020, on the stages of
 * Bonawitz et al. CCS 2017): advertise keys → roster, share keys → relay, masked input → consistency request,
 * consistency check → unmask request, unmask shares → the modular sum. Devices are named by id; keys, signatures,
 * ciphertexts and vectors travel as unpadded base64url. The edge relays device-to-device ciphertexts without reading
 * them (nacl.secretbox under keys from the devices' advertised X25519 keys).
 */
import { z } from "zod";
import { Base64Url, IsoDateTime } from "../common.ts";
import { DeviceId } from "../devices.ts";
import { RoundId } from "./admin.ts";
import { SECAGG_DEVICE_STAGES } from "./task.ts";

/** Largest roster of one secure-aggregation round (share points are 16-bit). */
export const SECAGG_MAX_DEVICES = 65_535;

const key32 = Base64Url.length(43, "a 32-byte key is 43 base64url characters");
const signature64 = Base64Url.length(86, "a 64-byte Ed25519 signature is 86 base64url characters");
/** A Shamir share value: 33 bytes (format byte 2, then 16 values of GF(2^16); `@fedge/secagg` shamir.ts). */
const share33 = Base64Url.length(44, "a share is 44 base64url characters");
/** nacl.secretbox(two shares): 16 + 66 bytes; the bound refuses anything larger early. */
const ciphertext = Base64Url.min(1).max(256);
const deviceList = z.array(DeviceId).max(SECAGG_MAX_DEVICES);

/** Stage 0, device → edge: fresh X25519 keys for this round, signed with the device's registered Ed25519 identity. */
export const SecAggAdvertiseKeys = z.strictObject({
  round_id: RoundId,
  device_id: DeviceId,
  /** X25519 public key that device-to-device ciphertexts to this device are boxed to. */
  encryption_key: key32,
  /** X25519 public key from which pairwise mask seeds are agreed. */
  masking_key: key32,
  /** Ed25519 over `secAggAdvertiseBytes` (in @fedge/secagg). */
  signature: signature64,
});
export type SecAggAdvertiseKeys = z.infer<typeof SecAggAdvertiseKeys>;

export const SecAggParametersWire = z.strictObject({
  /** n: devices in the roster. */
  devices: z.number().int().min(3).max(SECAGG_MAX_DEVICES),
  /** k: graph neighbours per device (n − 1 means the complete graph). */
  neighbours: z.number().int().min(2).max(SECAGG_MAX_DEVICES),
  /** t: shares that recover a device's secret. */
  threshold: z.number().int().min(2).max(SECAGG_MAX_DEVICES),
  /** Fewest devices that may remain at any stage before the round aborts. */
  min_survivors: z.number().int().min(2).max(SECAGG_MAX_DEVICES),
  /** b: values live in Z_{2^b}. */
  bits: z.number().int().min(1).max(32),
  /** d': values per input vector. */
  length: z
    .number()
    .int()
    .min(1)
    .max(1 << 26),
});
export type SecAggParametersWire = z.infer<typeof SecAggParametersWire>;

/** Stage 0, edge → device: the roster, sorted by device id (a device's position + 1 is its share point). */
export const SecAggRoster = z.strictObject({
  round_id: RoundId,
  parameters: SecAggParametersWire,
  devices: z
    .array(
      z.strictObject({
        device_id: DeviceId,
        /** The device's registered Ed25519 identity key, which `signature` verifies under. */
        identity_key: key32,
        encryption_key: key32,
        masking_key: key32,
        signature: signature64,
      }),
    )
    .min(3)
    .max(SECAGG_MAX_DEVICES),
});
export type SecAggRoster = z.infer<typeof SecAggRoster>;

/** Stage 1, device → edge: one sealed pair of shares per graph neighbour. */
export const SecAggShareKeys = z.strictObject({
  round_id: RoundId,
  device_id: DeviceId,
  shares: z.array(z.strictObject({ to: DeviceId, ciphertext })).max(SECAGG_MAX_DEVICES),
});
export type SecAggShareKeys = z.infer<typeof SecAggShareKeys>;

/** Stage 1, edge → device: who shared (U2) and the ciphertexts addressed to this device. */
export const SecAggShareRelay = z.strictObject({
  round_id: RoundId,
  senders: deviceList,
  shares: z.array(z.strictObject({ from: DeviceId, ciphertext })).max(SECAGG_MAX_DEVICES),
});
export type SecAggShareRelay = z.infer<typeof SecAggShareRelay>;

/** Stage 2, device → edge: the masked input, d' little-endian 32-bit words in Z_{2^b}. */
export const SecAggMaskedInput = z.strictObject({
  round_id: RoundId,
  device_id: DeviceId,
  masked: Base64Url.max(Math.ceil(((1 << 26) * 4 * 4) / 3)),
});
export type SecAggMaskedInput = z.infer<typeof SecAggMaskedInput>;

/** Stage 3, edge → device: the devices whose masked input arrived (U3). */
export const SecAggConsistencyRequest = z.strictObject({ round_id: RoundId, survivors: deviceList });
export type SecAggConsistencyRequest = z.infer<typeof SecAggConsistencyRequest>;

/** Stage 3, device → edge: the device's Ed25519 signature over U3, so the edge cannot tell devices different stories. */
export const SecAggConsistencyCheck = z.strictObject({
  round_id: RoundId,
  device_id: DeviceId,
  signature: signature64,
});
export type SecAggConsistencyCheck = z.infer<typeof SecAggConsistencyCheck>;

/** Stage 4, edge → device: U3 again and the consistency signatures collected (from U4). */
export const SecAggUnmaskRequest = z.strictObject({
  round_id: RoundId,
  survivors: deviceList,
  signatures: z.array(z.strictObject({ device_id: DeviceId, signature: signature64 })).max(SECAGG_MAX_DEVICES),
});
export type SecAggUnmaskRequest = z.infer<typeof SecAggUnmaskRequest>;

/**
 * Stage 4, device → edge: for each neighbour that survived, its self-mask seed share; for each that dropped after
 * sharing, its masking-key share. Never both for one neighbour.
 */
export const SecAggUnmaskShares = z.strictObject({
  round_id: RoundId,
  device_id: DeviceId,
  self_mask_shares: z.array(z.strictObject({ of: DeviceId, share: share33 })).max(SECAGG_MAX_DEVICES),
  key_shares: z.array(z.strictObject({ of: DeviceId, share: share33 })).max(SECAGG_MAX_DEVICES),
});
export type SecAggUnmaskShares = z.infer<typeof SecAggUnmaskShares>;

export const SecAggDeviceStage = z.enum(SECAGG_DEVICE_STAGES);
export type SecAggDeviceStage = z.infer<typeof SecAggDeviceStage>;

/** Where a round's secure aggregation stands: the stage devices answer now, or how it ended. */
export const SecAggStatus = z
  .object({
    round_id: RoundId,
    stage: z.enum([...SECAGG_DEVICE_STAGES, "finished", "aborted", "not_open"]),
    /** When the current stage closes at the latest (its deadline, fixed when the round opened). */
    deadline: IsoDateTime.optional(),
    /** Admin answers only: how many devices answered the current stage so far. */
    answered: z.number().int().nonnegative().optional(),
    /**
     * Admin answers only: how many devices may still answer the current stage (those that answered the one before);
     * absent in the advertise stage, where the round's selected devices are.
     */
    expected: z.number().int().nonnegative().optional(),
  })
  .meta({ id: "SecAggStatus" });
export type SecAggStatus = z.infer<typeof SecAggStatus>;

/** The edge's answer to a device's stage message: 202 when recorded, 200 `duplicate` for the very same message again. */
export const SecAggAccepted = z
  .object({ round_id: RoundId, stage: SecAggDeviceStage, duplicate: z.boolean() })
  .meta({ id: "SecAggAccepted" });
export type SecAggAccepted = z.infer<typeof SecAggAccepted>;

/** A finished round's result, all the aggregator ever receives: Σ x_u mod 2^b over the survivors. */
export const SecAggOutcome = z
  .object({
    round_id: RoundId,
    modulus_bits: z.number().int().min(1).max(32),
    encoded_length: z.number().int().positive(),
    /** The devices whose encoded updates are in the sum (U3). */
    survivors: deviceList,
    /** d' little-endian 32-bit words, base64url. */
    sum: Base64Url,
  })
  .meta({ id: "SecAggOutcome" });
export type SecAggOutcome = z.infer<typeof SecAggOutcome>;

/** Headers of a device's secure-aggregation request (besides its API key). */
export const SECAGG_DEVICE_HEADER = "x-fedge-device-id";
export const SECAGG_TIMESTAMP_HEADER = "x-fedge-timestamp";
export const SECAGG_SIGNATURE_HEADER = "x-fedge-device-signature";

/**
 * What a device signs with its registered Ed25519 key for every secure-aggregation request: method, path, device, an
 * ISO timestamp (within 5 minutes of the edge's clock) and the SHA-256 of the body (of nothing for a GET). Replaying a
 * POST gets 409 from the stage, which takes one message per device.
 */
export function secAggRequestSigningBytes(
  method: string,
  path: string,
  deviceId: string,
  timestamp: string,
  bodySha256Hex: string,
): Uint8Array {
  return new TextEncoder().encode(
    `fedge-secagg-request-v1\n${method.toUpperCase()}\n${path}\n${deviceId}\n${timestamp}\n${bodySha256Hex}`,
  );
}
