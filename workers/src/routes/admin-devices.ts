/**
 * @module
 * Admin endpoints for devices, for an operator (admin token only: the aggregator's signature is refused here):
 * read a device, revoke it (in force on its next check-in or upload once the revoke answers 200), delete it (its
 * identity; the population ledgers keep its privacy history), and read or set an API key's device quota.
 *
 * A revocation is in force once every population the device joined has it: the device's registry pushes it to each
 * coordinator before the call answers, because a repeat check-in may be answered without the registry
 * (verified-devices.ts). A push that fails answers 503 `revocation_pending` with `Retry-After`: the registry refuses
 * the device from then on and pushes again every few seconds, and the call answers 200 once every push has landed.
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
import {
  deviceStub,
  ownerStub,
  REVOCATION_RETRY_MS,
  type DeviceRecord,
  type RevocationState,
} from "../durable-objects/device-registry.ts";
import { forgetVerifiedDevice } from "../training/index.ts";
import { defaultDeviceQuota } from "./devices.ts";

const security: Record<string, string[]>[] = [{ adminToken: [] }];
const DeviceParam = z.object({ id: DeviceId });
const KeyParam = z.object({ key_id: ApiKeyId });

const REVOCATION_PENDING =
  "Not every population the device joined has acknowledged the revocation yet (`revocation_pending`, with " +
  "`Retry-After`): the device is revoked at its registry, which keeps pushing; repeat the call";

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
    200: jsonResponse(DeviceInfo, "The revoked device, refused by every population it joined"),
    ...errorResponses(ADMIN_AUTH_ERRORS, { 404: "No such device", 503: REVOCATION_PENDING }),
  },
});

const deleteDevice = createRoute({
  method: "delete",
  path: "/v1/admin/devices/{id}",
  tags: ["training-admin"],
  summary: "Delete a device: revoke it, then remove its identity (its privacy history on the ledgers stays)",
  description:
    "For devices that must not stay registered, such as the canaries of a failed `fedge audit`. The device is " +
    "revoked first and the call waits until every population it joined has the revocation (503 " +
    "`revocation_pending` until then, nothing deleted). Then each population drops the device's check-ins of rounds " +
    "that charged no privacy budget and stopped collecting (check-ins of charged rounds stay: the ledger is an audit " +
    "record), its quota slot is released and its record (public key, API key, platform, populations) is deleted. " +
    "Its public key stays refused under its API key. A failure half way answers 5xx: repeat the call.",
  security,
  request: { params: DeviceParam },
  responses: {
    204: { description: "Deleted" },
    ...errorResponses(ADMIN_AUTH_ERRORS, { 404: "No such device", 503: REVOCATION_PENDING }),
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
    const revoked = await deviceStub(c.env, id).revokeDevice(Date.now());
    // This isolate sends the device's next check-in to its registry again (other isolates learn it from the coordinators
    // the revocation was pushed to: verified-devices.ts).
    forgetVerifiedDevice(id);
    if (!revoked) throw new FedgeError("device_not_found", 404, `no device ${id}`);
    throwIfPending(c, id, revoked.unreached);
    return c.json(deviceInfo(revoked.device), 200);
  })
  .openapi(deleteDevice, async (c) => {
    const { id } = c.req.valid("param");
    const deleted = await deviceStub(c.env, id).deleteDevice(Date.now());
    forgetVerifiedDevice(id);
    if (!deleted.ok && deleted.code === "device_not_found") {
      throw new FedgeError("device_not_found", 404, `no device ${id}`);
    }
    if (!deleted.ok) throwIfPending(c, id, deleted.unreached);
    return c.body(null, 204);
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

/** Seconds a caller waits before repeating a call whose revocation is still being pushed (the registry's cadence). */
const REVOCATION_RETRY_AFTER_S = Math.ceil(REVOCATION_RETRY_MS / 1000);

/** 503 `revocation_pending` while the revocation of `id` has not reached every population it joined. */
export function throwIfPending(
  c: { header(name: string, value: string): void },
  id: string,
  unreached: RevocationState["unreached"],
): void {
  if (unreached.length === 0) return;
  c.header("Retry-After", String(REVOCATION_RETRY_AFTER_S));
  throw new FedgeError(
    "revocation_pending",
    503,
    `device ${id} is revoked at its registry, but ${unreached.length} population(s) have not acknowledged it yet ` +
      `(${unreached.slice(0, 3).join(", ")}${unreached.length > 3 ? ", …" : ""}); it is pushed again every ` +
      `${REVOCATION_RETRY_AFTER_S} s: repeat the call`,
  );
}
