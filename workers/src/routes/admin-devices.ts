/**
 * @module
 * Admin endpoints for devices, for an operator (admin token only: the aggregator's signature is refused here):
 * read a device, revoke it (effective on its next check-in or upload), and read or set an API key's device quota.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { ApiKeyId, DeviceId, DeviceInfo, DeviceQuota, DeviceQuotaStatus, FedgeError } from "@fedge/protocol";
import { adminAuth } from "../middleware/auth/index.ts";
import {
  ADMIN_AUTH_ERRORS,
  createRouter,
  errorResponses,
  jsonResponse,
  readBody,
} from "../middleware/validation/index.ts";
import { deviceStub, ownerStub, type DeviceRecord } from "../durable-objects/device-registry.ts";
import { forgetVerifiedDevice } from "../training/index.ts";
import { defaultDeviceQuota } from "./devices.ts";

const security: Record<string, string[]>[] = [{ adminToken: [] }];
const DeviceParam = z.object({ id: DeviceId });
const KeyParam = z.object({ key_id: ApiKeyId });

/** A device record as the admin API shows it. */
export function deviceInfo(d: DeviceRecord): DeviceInfo {
  return {
    device_id: d.device_id,
    public_key: d.public_key,
    api_key_id: d.api_key_id,
    platform: d.platform,
    created_at: new Date(d.created_at).toISOString(),
    revoked_at: d.revoked_at === null ? null : new Date(d.revoked_at).toISOString(),
  };
}

const getDevice = createRoute({
  method: "get",
  path: "/v1/admin/devices/{id}",
  tags: ["training-admin"],
  summary: "A registered device",
  security,
  request: { params: DeviceParam },
  responses: {
    200: jsonResponse(DeviceInfo, "The device"),
    ...errorResponses(ADMIN_AUTH_ERRORS, { 404: "No such device" }),
  },
});

const revokeDevice = createRoute({
  method: "post",
  path: "/v1/admin/devices/{id}/revoke",
  tags: ["training-admin"],
  summary: "Revoke a device key (idempotent; its next check-in or upload is refused)",
  security,
  request: { params: DeviceParam },
  responses: {
    200: jsonResponse(DeviceInfo, "The revoked device"),
    ...errorResponses(ADMIN_AUTH_ERRORS, { 404: "No such device" }),
  },
});

const putQuota = createRoute({
  method: "put",
  path: "/v1/admin/device-quotas/{key_id}",
  tags: ["training-admin"],
  summary: "Set how many active devices an API key may register",
  security,
  middleware: [readBody({ types: ["application/json"] })] as const,
  request: {
    params: KeyParam,
    body: { required: true, content: { "application/json": { schema: DeviceQuota } } },
  },
  responses: { 200: jsonResponse(DeviceQuotaStatus, "The quota"), ...errorResponses(ADMIN_AUTH_ERRORS) },
});

const getQuota = createRoute({
  method: "get",
  path: "/v1/admin/device-quotas/{key_id}",
  tags: ["training-admin"],
  summary: "An API key's device quota and active device count",
  security,
  request: { params: KeyParam },
  responses: { 200: jsonResponse(DeviceQuotaStatus, "The quota"), ...errorResponses(ADMIN_AUTH_ERRORS) },
});

const router = createRouter();
router.use("/v1/admin/devices/*", adminAuth());
router.use("/v1/admin/device-quotas/*", adminAuth());

export const adminDevices = router
  .openapi(getDevice, async (c) => {
    const { id } = c.req.valid("param");
    const device = await deviceStub(c.env, id).getDevice();
    if (!device) throw new FedgeError("device_not_found", 404, `no device ${id}`);
    return c.json(deviceInfo(device), 200);
  })
  .openapi(revokeDevice, async (c) => {
    const { id } = c.req.valid("param");
    // One call: the device's registry records the revocation together with what it still owes (the populations to
    // tell, the quota slot to release) and delivers that itself, retrying from its alarm.
    const device = await deviceStub(c.env, id).revokeDevice(Date.now());
    // This isolate sends the device's next check-in to its registry again (other isolates learn it from the coordinators
    // the revocation was pushed to: verified-devices.ts).
    forgetVerifiedDevice(id);
    if (!device) throw new FedgeError("device_not_found", 404, `no device ${id}`);
    return c.json(deviceInfo(device), 200);
  })
  .openapi(putQuota, async (c) => {
    const { key_id } = c.req.valid("param");
    const { max_devices } = c.req.valid("json");
    const q = await ownerStub(c.env, key_id).setQuota(max_devices);
    return c.json({ api_key_id: key_id, ...q }, 200);
  })
  .openapi(getQuota, async (c) => {
    const { key_id } = c.req.valid("param");
    const q = await ownerStub(c.env, key_id).getQuota(defaultDeviceQuota(c.env));
    return c.json({ api_key_id: key_id, ...q }, 200);
  });
