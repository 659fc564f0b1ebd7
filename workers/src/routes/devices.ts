/**
 * @module
 * - `POST /v1/devices`: a device registers its Ed25519 public key under the caller's API key and gets a device id.
 *   The key's device quota (active devices) is enforced by its `owner:<key id>` DeviceRegistry instance.
 * - `GET /v1/devices/:id/privacy` (API key + the device's own signature over `devicePrivacySigningBytes` with a fresh
 *   timestamp, in `x-fedge-signature` / `x-fedge-timestamp`): every DP round the edge recorded the device checking in
 *   for, per population, with the round's charge (q, z, σ_b, mode, clip rule). Only the device can read it: which
 *   rounds a device took part in is about that device.
 */
import { createRoute, z } from "@hono/zod-openapi";
import {
  Base64Url,
  CHECKIN_MAX_SKEW_MS,
  DEFAULT_DEVICE_QUOTA_PER_KEY,
  DeviceId,
  DevicePrivacyRecord,
  FedgeError,
  IsoDateTime,
  RegisterDeviceRequest,
  RegisterDeviceResponse,
  canonicalKey32,
  toBase64Url,
} from "@fedge/protocol";
import { createRouter, errorResponses, readBody } from "../middleware/validation/index.ts";
import { apiKeyAuth } from "../middleware/auth/index.ts";
import { deviceStub, ownerStub } from "../durable-objects/device-registry.ts";
import { roundsStub } from "../durable-objects/round-coordinator/index.ts";
import type { Bindings } from "../env.ts";

/** The device quota per API key from `FEDGE_DEVICE_QUOTA_PER_KEY`, else the default. */
export function defaultDeviceQuota(env: Bindings): number {
  const n = Number(env.FEDGE_DEVICE_QUOTA_PER_KEY ?? "");
  return Number.isInteger(n) && n >= 0 && env.FEDGE_DEVICE_QUOTA_PER_KEY ? n : DEFAULT_DEVICE_QUOTA_PER_KEY;
}

/** A fresh device id: `dev_` and 128 random bits, base64url. */
export function newDeviceId(): string {
  return `dev_${toBase64Url(crypto.getRandomValues(new Uint8Array(16)))}`;
}

const register = createRoute({
  method: "post",
  path: "/v1/devices",
  tags: ["training"],
  summary: "Register a device's Ed25519 public key",
  security: [{ apiKey: [] }],
  middleware: [apiKeyAuth(), readBody({ types: ["application/json"] })] as const,
  request: { body: { required: true, content: { "application/json": { schema: RegisterDeviceRequest } } } },
  responses: {
    201: { description: "The device id", content: { "application/json": { schema: RegisterDeviceResponse } } },
    200: {
      description: "This public key is already registered under the API key: its device id (idempotent retry)",
      content: { "application/json": { schema: RegisterDeviceResponse } },
    },
    ...errorResponses({
      400: "Invalid request",
      401: "No or unknown API key",
      403: "Revoked API key, revoked device key, or the key's device quota is used up",
    }),
  },
});

const privacy = createRoute({
  method: "get",
  path: "/v1/devices/{id}/privacy",
  tags: ["training"],
  summary:
    "Every DP round the edge recorded this device checking in for, with the round's charge (signed by the device)",
  security: [{ apiKey: [] }],
  middleware: [apiKeyAuth()] as const,
  request: {
    params: z.object({ id: DeviceId }),
    headers: z.object({
      "x-fedge-timestamp": IsoDateTime,
      /** Ed25519 signature (base64url) by the device key over `devicePrivacySigningBytes(id, timestamp)`. */
      "x-fedge-signature": Base64Url.length(86),
    }),
  },
  responses: {
    200: {
      description: "The device's check-ins of charged rounds, per population",
      content: { "application/json": { schema: DevicePrivacyRecord } },
    },
    ...errorResponses({
      400: "Invalid request",
      401: "No API key, bad device signature (bad_signature) or stale timestamp (stale_timestamp)",
      404: "Unknown device (device_not_found)",
    }),
  },
});

export const devices = createRouter()
  .openapi(privacy, async (c) => {
    const { id } = c.req.valid("param");
    const headers = c.req.valid("header");
    const timestamp = headers["x-fedge-timestamp"];
    if (!(Math.abs(Date.now() - Date.parse(timestamp)) <= CHECKIN_MAX_SKEW_MS)) {
      throw new FedgeError(
        "stale_timestamp",
        401,
        `timestamp is more than ${CHECKIN_MAX_SKEW_MS / 1000} s from the edge's clock`,
      );
    }
    const reader = await deviceStub(c.env, id).privacyReader({
      apiKeyId: c.get("apiKey").id,
      timestamp,
      signature: headers["x-fedge-signature"],
    });
    if (!reader.ok) {
      if (reader.code === "bad_signature") {
        throw new FedgeError("bad_signature", 401, "the signature does not verify under the device's key");
      }
      throw new FedgeError("device_not_found", 404, `no device ${id} under this API key`);
    }
    const populations = await Promise.all(
      reader.populations.map(async (model) => ({ model, ...(await roundsStub(c.env, model).devicePrivacy(id)) })),
    );
    return c.json({ device_id: id, populations: populations.filter((p) => p.rounds.length > 0) }, 200);
  })
  .openapi(register, async (c) => {
    const body = c.req.valid("json");
    // One key, one string: the spare bits of the last base64url character are not part of the key.
    const publicKey = canonicalKey32(body.public_key);
    if (publicKey === null) throw new FedgeError("validation_failed", 400, "public_key: must be 32 bytes");
    const apiKey = c.get("apiKey");
    const now = Date.now();
    const newId = newDeviceId();
    const owner = ownerStub(c.env, apiKey.id);
    const slot = await owner.reserveSlot(newId, publicKey, defaultDeviceQuota(c.env), now);
    if (!slot.ok) {
      if (slot.code === "device_revoked") {
        throw new FedgeError("device_revoked", 403, `this public key belongs to revoked device ${slot.deviceId}`);
      }
      throw new FedgeError(
        "quota_exceeded",
        403,
        `this API key already has ${slot.active} active devices (quota ${slot.max})`,
      );
    }
    let deviceId = newId;
    if (slot.existing) {
      // A retried registration (same key pair): the same device, not a second one.
      const record = await deviceStub(c.env, slot.existing).getDevice();
      if (record) {
        return c.json({ device_id: record.device_id, created_at: new Date(record.created_at).toISOString() }, 200);
      }
      // Reserved, but the device was never confirmed created (the answer of an earlier attempt was lost): finish it.
      deviceId = slot.existing;
    }
    // A failure here keeps the reservation: the client's retry with the same public key finishes this registration
    // (createDevice is idempotent), so a lost answer neither loses the slot nor makes a second device.
    const created = await deviceStub(c.env, deviceId).createDevice({
      device_id: deviceId,
      public_key: publicKey,
      api_key_id: apiKey.id,
      platform: body.platform ?? null,
      created_at: now,
    });
    if (!created) {
      await owner.cancelReservation(deviceId);
      throw new FedgeError("internal", 500, "device id collision; retry");
    }
    return c.json({ device_id: deviceId, created_at: new Date(now).toISOString() }, 201);
  });
