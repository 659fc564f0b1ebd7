/**
 * @module
 * `POST /v1/devices`: a device registers its Ed25519 public key under the caller's API key and gets a device id.
 * The key's device quota (active devices) is enforced by its `owner:<key id>` DeviceRegistry instance.
 */
import { createRoute } from "@hono/zod-openapi";
import {
  DEFAULT_DEVICE_QUOTA_PER_KEY,
  FedgeError,
  RegisterDeviceRequest,
  RegisterDeviceResponse,
  canonicalKey32,
  toBase64Url,
} from "@fedge/protocol";
import { createRouter, errorResponses, readBody } from "../middleware/validation/index.ts";
import { apiKeyAuth } from "../middleware/auth/index.ts";
import { deviceStub, ownerStub } from "../durable-objects/device-registry.ts";
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

export const devices = createRouter().openapi(register, async (c) => {
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
