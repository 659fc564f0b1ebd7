/**
 * @module
 * The device side of a round:
 * - `POST /v1/rounds/checkin` (API key + Ed25519 signature by the device key over `checkinSigningBytes` + fresh timestamp):
 *   the population's RoundCoordinator answers with the device's recorded Poisson coin, and a selected device gets the task
 *   with its single-use nonce. In a DP round every answer (selected or not) carries a receipt signed with the edge key
 *   (`training/edge-key.ts`): the device accounts its own privacy loss from these.
 * - `POST /v1/rounds/:id/updates` (`application/vnd.fedge.update`, API key): the signed update authenticates the device
 *   (its registered key, the nonce issued to it for this round), and the API key the SDK already holds authenticates
 *   the caller, so an anonymous client never reaches a Durable Object. Checks, in order, the first ones without any
 *   Durable Object call: media type, round id shape, declared length (≤ 16 MiB), the client address's upload budget
 *   (ip-rate-limit.ts), the API key and its rate limit; then round exists (before reading the body, which is then
 *   capped at the largest encoding of the round's update; a round's parameters are immutable, so an isolate caches
 *   them), codec (version 3 only: a retired version is a 400 naming it), round id in the body, signature (over the
 *   SHA-256 digest of the header and payload) under the key the device checked in with (held by the coordinator; a
 *   device unknown there is looked up in its registry), device not revoked, dtype/shape/finite/L2 norm against the
 *   task, nonce unused and issued to this device for this round; then the coordinator commits it with its payload in
 *   one SQLite transaction (dedupe, index, payload, receipt; the payload's name is round, device and the signed
 *   digest, hashed once and both verified and used as the update's name). A refusal, a commit lost to a race
 *   included, writes nothing.
 *   An upload to the isolate that answered the device's check-in skips the preflight (`checkin-grants.ts`): the
 *   signature is checked under the key from the check-in, and the commit checks the rest (tenant, the key it holds,
 *   revocation, nonce, duplicates), so an accepted upload costs one Durable Object call. If that commit refuses
 *   (revoked or closed since the check-in, another key held), nothing was written and the upload is checked again the
 *   ordered way above, so every refusal keeps its code.
 */
import { createRoute, z } from "@hono/zod-openapi";
import {
  CHECKIN_MAX_SKEW_MS,
  CheckinRequest,
  checkinSigningBytes,
  CheckinResponse,
  FedgeError,
  UpdateReceipt,
  fromBase64Url,
  parseRoundId,
  toBase64Url,
} from "@fedge/protocol";
import {
  UPDATE_MEDIA_TYPE,
  decodeUpdate,
  digestHex,
  updateDigest,
  updateSigningMessage,
  type DecodedUpdate,
} from "@fedge/protocol";
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../env.ts";
import { createRouter, errorResponses, readBody } from "../middleware/validation/index.ts";
import { readCapped } from "../middleware/body-limit.ts";
import { uploadIpLimit } from "../middleware/ip-rate-limit.ts";
import { apiKeyAuth, keyStatus, ledgerFor, type KeyStatus } from "../middleware/auth/index.ts";
import { deviceStub, MAX_POPULATIONS_PER_DEVICE, type DeviceRecord } from "../durable-objects/device-registry.ts";
import { roundsStub, shardStub } from "../durable-objects/round-coordinator/index.ts";
import { updateStorageKey } from "../durable-objects/update-store.ts";
import {
  assertPlainUploadsAllowed,
  checkUpdateAgainstTask,
  maxEncodedUpdateBytes,
  signedReceipt,
  unwrap,
  verifyEd25519,
  type UpdateLimits,
  shardOf,
  grantFor,
  rememberGrant,
  forgetGrant,
  type CheckinGrant,
  rememberVerifiedCheckin,
  verifiedDeviceFor,
  forgetVerifiedDevice,
  type VerifiedDevice,
} from "../training/index.ts";

const checkin = createRoute({
  method: "post",
  path: "/v1/rounds/checkin",
  tags: ["training"],
  summary: "Check in for the population's current round (Poisson-sampled once per device per round)",
  security: [{ apiKey: [] }],
  middleware: [apiKeyAuth(), readBody({ types: ["application/json"] })] as const,
  request: { body: { required: true, content: { "application/json": { schema: CheckinRequest } } } },
  responses: {
    200: {
      description: "Selected (with the task) or not; in a DP round with the edge's signed receipt",
      content: { "application/json": { schema: CheckinResponse } },
    },
    ...errorResponses({
      400: "Invalid request",
      401: "No API key, bad device signature (bad_signature) or stale timestamp (stale_timestamp)",
      403: "Revoked API key or device (device_revoked), or the population belongs to another tenant (forbidden)",
      404: "Unknown device (device_not_found)",
      409:
        `The device already joined ${MAX_POPULATIONS_PER_DEVICE} populations (conflict), or the round's checked-in ` +
        "cohort already holds secure_aggregation.max_devices devices (round_full: no coin, no receipt)",
    }),
  },
});

/** What an upload must get right before anything is looked up: media type and round id shape (no Durable Object). */
const uploadPrecheck: MiddlewareHandler<AppEnv> = async (c, next) => {
  const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== UPDATE_MEDIA_TYPE) {
    throw new FedgeError("unsupported_media_type", 415, `updates are uploaded as ${UPDATE_MEDIA_TYPE}`);
  }
  const roundId = c.req.param("id") ?? "";
  if (!parseRoundId(roundId)) throw new FedgeError("round_not_found", 404, `no round ${roundId}`);
  return next();
};

const upload = createRoute({
  method: "post",
  path: "/v1/rounds/{id}/updates",
  tags: ["training"],
  summary: "Upload a signed model update (application/vnd.fedge.update)",
  security: [{ apiKey: [] }],
  middleware: [uploadPrecheck, uploadIpLimit(), apiKeyAuth()] as const,
  request: {
    params: z.object({ id: z.string().max(128) }),
    body: {
      required: true,
      content: { [UPDATE_MEDIA_TYPE]: { schema: z.string().openapi({ type: "string", format: "binary" }) } },
    },
  },
  responses: {
    200: {
      description: "Already accepted: the first receipt, duplicate: true",
      content: { "application/json": { schema: UpdateReceipt } },
    },
    201: { description: "Accepted", content: { "application/json": { schema: UpdateReceipt } } },
    ...errorResponses({
      400: "malformed_update, non_finite, invalid_shape, norm_exceeded",
      401: "No or unknown API key (unauthorized), bad_signature",
      403: "device_revoked, nonce_invalid (not issued to this device for this round), forbidden (the API key the device checked in under was revoked, or the population belongs to another tenant)",
      404: "round_not_found, device_not_found",
      409: "round_closed, nonce_used",
      413: "payload_too_large",
      415: "unsupported_media_type",
      429: "Over the API key's or the client address's upload rate (rate_limited, with Retry-After)",
    }),
  },
});

/**
 * A round's parameters and shard count never change once it is open, so each isolate remembers them (bounded) and asks
 * the coordinator only for rounds it has not seen; whether the round still accepts is decided by the device's shard at
 * preflight and commit.
 */
const limitsCache = new Map<string, { limits: UpdateLimits; shards: number }>();
const LIMITS_CACHE_MAX = 256;

async function roundLimits(
  coordinator: ReturnType<typeof roundsStub>,
  roundId: string,
): Promise<{ limits: UpdateLimits; shards: number }> {
  const cached = limitsCache.get(roundId);
  if (cached) return cached;
  const target = unwrap(await coordinator.uploadTarget(roundId, Date.now()));
  if (limitsCache.size >= LIMITS_CACHE_MAX) limitsCache.clear();
  const entry = { limits: target.limits, shards: target.shards };
  limitsCache.set(roundId, entry);
  return entry;
}

/**
 * Population → owning tenant and the S its devices check in with, per isolate. An owner never changes (a population
 * without one is asked again); S only grows, and a check-in routed with an old S is told the new one by the object it
 * reached (`Misrouted`), so the cache is corrected on first use.
 */
const routingCache = new Map<string, { owner: string; shards: number }>();
const ROUTING_CACHE_MAX = 1024;

async function populationRouting(
  coordinator: ReturnType<typeof roundsStub>,
  model: string,
): Promise<{ owner: string | null; shards: number }> {
  const cached = routingCache.get(model);
  if (cached !== undefined) return cached;
  const routing = await coordinator.routing();
  if (routing.owner !== null) rememberRouting(model, { owner: routing.owner, shards: routing.shards });
  return routing;
}

function rememberRouting(model: string, routing: { owner: string; shards: number }): void {
  if (routingCache.size >= ROUTING_CACHE_MAX) routingCache.delete(routingCache.keys().next().value!);
  routingCache.set(model, routing);
}

async function lookupDevice(env: Parameters<typeof deviceStub>[0], deviceId: string): Promise<DeviceRecord> {
  const device = await deviceStub(env, deviceId).getDevice();
  if (!device) throw new FedgeError("device_not_found", 404, `no device ${deviceId}`);
  return device;
}

function apiKeyStatus(env: Parameters<typeof ledgerFor>[0], keyId: string): Promise<KeyStatus> {
  return keyStatus.status(keyId, () => ledgerFor(env, keyId).status());
}

/**
 * The device's registry instance checks the check-in (device of this API key, signature, not revoked) and records the
 * population before the coordinator learns the device's key (see DeviceRegistry), in one call.
 */
async function checkinAtRegistry(
  env: Parameters<typeof deviceStub>[0],
  body: { model: string; device_id: string; timestamp: string; signature: string },
  apiKeyId: string,
): Promise<DeviceRecord> {
  const found = await deviceStub(env, body.device_id).checkinDevice({
    model: body.model,
    apiKeyId,
    timestamp: body.timestamp,
    signature: body.signature,
  });
  if (found.ok) return found.device;
  switch (found.code) {
    case "device_not_found":
      throw new FedgeError("device_not_found", 404, `no device ${body.device_id} under this API key`);
    case "bad_signature":
      throw new FedgeError("bad_signature", 401, "the check-in signature does not verify under the device's key");
    case "device_revoked":
      throw new FedgeError("device_revoked", 403, `device ${body.device_id} is revoked`);
    case "too_many_populations":
      throw new FedgeError(
        "conflict",
        409,
        `device ${body.device_id} already joined ${MAX_POPULATIONS_PER_DEVICE} populations`,
      );
  }
}

/** The check-in at the object serving the device when the population runs `shards` shards. */
async function checkinAtShard(
  env: Parameters<typeof shardStub>[0],
  model: string,
  device: VerifiedDevice,
  now: number,
  tenant: string,
  shards: number,
) {
  const target = shardStub(env, model, await shardOf(env, device.device_id, shards), shards);
  return target.checkin(device.device_id, device.public_key, device.api_key_id, now, tenant, shards);
}

/**
 * An upload from a device whose check-in this isolate answered: verified under the key it checked in with, checked
 * against the task, then committed with the preflight's checks folded into the commit (tenant, the key held by
 * the coordinator, revocation, nonce, duplicates) and the payload stored in the same transaction: one Durable Object
 * call. Null when anything is refused (nothing written): the caller checks the upload the ordered way, which names
 * the refusal exactly as for any other upload. The grant is spent either way.
 */
async function uploadWithGrant(
  env: Parameters<typeof shardStub>[0],
  coordinator: ReturnType<typeof shardStub>,
  upload: {
    decoded: DecodedUpdate;
    bytes: Uint8Array;
    claim: { roundId: string; deviceId: string; nonce: string; sha256: string };
    /** The 48 bytes the device signed (`updateSigningMessage` of the digest that names the update). */
    message: Uint8Array;
    limits: UpdateLimits;
    grant: CheckinGrant;
    tenant: string;
  },
): Promise<UpdateReceipt | null> {
  const { decoded, bytes, claim, message, limits, grant } = upload;
  forgetGrant(claim.roundId, claim.deviceId);
  const keyState = apiKeyStatus(env, grant.apiKeyId);
  keyState.catch(() => undefined);
  if (!(await verifyEd25519(fromBase64Url(grant.publicKey), decoded.signature, message, grant.publicKey))) return null;
  try {
    checkUpdateAgainstTask(decoded, limits);
  } catch {
    return null;
  }
  if ((await keyState.catch(() => "revoked" as const)) === "revoked") return null;
  const commit = await coordinator.commitUpload({
    ...claim,
    publicKey: grant.publicKey,
    storageKey: updateStorageKey(claim.roundId, claim.deviceId, claim.sha256),
    payload: bytes,
    now: Date.now(),
    unchecked: { tenant: upload.tenant },
  });
  // Refused (revoked since, round closed, spent nonce, another key held...): nothing was written.
  return commit.ok ? commit.receipt : null;
}

export const rounds = createRouter()
  .openapi(checkin, async (c) => {
    const body = c.req.valid("json");
    const now = Date.now();
    const at = Date.parse(body.timestamp);
    if (!(Math.abs(now - at) <= CHECKIN_MAX_SKEW_MS)) {
      throw new FedgeError(
        "stale_timestamp",
        401,
        `timestamp is more than ${CHECKIN_MAX_SKEW_MS / 1000} s from the edge's clock`,
      );
    }
    // Only the population's tenant takes part: refused before the device's registry records anything (the owner never
    // changes, so an isolate remembers it; the coordinator checks again, for a population opened since).
    const tenant = c.get("apiKey").tenant;
    const coordinator = roundsStub(c.env, body.model);
    const { owner, shards } = await populationRouting(coordinator, body.model);
    if (owner !== null && owner !== tenant) {
      throw new FedgeError("forbidden", 403, `population ${body.model} does not take devices of this API key's tenant`);
    }
    const apiKeyId = c.get("apiKey").id;
    // A device whose registry already recorded this population (seen by this isolate, verified-devices.ts) is checked
    // here under its remembered key; its revocation is the coordinator's to refuse, which the registry told.
    let device = verifiedDeviceFor(body.device_id, body.model, apiKeyId);
    if (device) {
      const signed = checkinSigningBytes(body.model, body.device_id, body.timestamp);
      const signature = fromBase64Url(body.signature);
      if (!(await verifyEd25519(fromBase64Url(device.public_key), signature, signed, device.public_key))) {
        throw new FedgeError("bad_signature", 401, "the check-in signature does not verify under the device's key");
      }
    } else {
      device = await checkinAtRegistry(c.env, body, apiKeyId);
      rememberVerifiedCheckin(device, body.model);
    }
    // The device's shard for the collecting round (keyed hash, `shardOf`); an out-of-date S is corrected once.
    let answered = await checkinAtShard(c.env, body.model, device, now, tenant, shards);
    if (!answered.ok && "reshard" in answered) {
      if (owner !== null) rememberRouting(body.model, { owner, shards: answered.reshard });
      answered = await checkinAtShard(c.env, body.model, device, now, tenant, answered.reshard);
    }
    if (!answered.ok && answered.code === "device_revoked") forgetVerifiedDevice(device.device_id);
    const { answer, receipt } = unwrap(answered);
    // This isolate now knows what an upload from the device must carry, so that upload can skip the preflight.
    if (answer.selected) {
      rememberGrant(answer.task.round_id, device.device_id, {
        publicKey: device.public_key,
        apiKeyId: device.api_key_id,
        nonce: answer.task.nonce,
        tenant,
      });
    }
    // A DP round: the device's coin was flipped, so its loss accrues; it gets the edge's signed record of that.
    return c.json(receipt ? { ...answer, receipt: await signedReceipt(c.env, receipt) } : answer, 200);
  })
  .openapi(upload, async (c) => {
    const roundId = c.req.valid("param").id;
    const parsed = parseRoundId(roundId)!;
    const { limits, shards } = await roundLimits(roundsStub(c.env, parsed.model), roundId);
    assertPlainUploadsAllowed(roundId, limits);
    const cap = maxEncodedUpdateBytes(limits.update_length, limits.update_dtype);
    const bytes = await readCapped(c.req.raw, cap);

    // A malformed body throws UpdateCodecError, which app.onError answers with its own status and code.
    const decoded = decodeUpdate(bytes, { maxBytes: cap });
    if (decoded.roundId !== roundId) {
      throw new FedgeError("malformed_update", 400, `the update is for round ${decoded.roundId}, not ${roundId}`);
    }
    // One SHA-256 pass over the body: the digest the v3 signature covers (Ed25519 over `fedge-update-v3\n` ‖ digest)
    // also names the update (receipt, listing, storage key).
    const digest = await updateDigest(decoded.signedBytes);
    const sha256 = digestHex(digest);
    const message = updateSigningMessage(digest);
    // The shard that issued this device's nonce in this round (the round's S, fixed when it opened).
    const coordinator = shardStub(c.env, parsed.model, await shardOf(c.env, decoded.deviceId, shards), shards);
    const claim = { roundId, deviceId: decoded.deviceId, nonce: toBase64Url(decoded.nonce), sha256 };
    const tenant = c.get("apiKey").tenant;
    const grant = grantFor(roundId, decoded.deviceId, claim.nonce, tenant);
    if (grant) {
      const granted = await uploadWithGrant(c.env, coordinator, {
        decoded,
        bytes,
        claim,
        message,
        limits,
        grant,
        tenant,
      });
      if (granted) return c.json(granted, granted.duplicate ? 200 : 201);
    }
    const pre = unwrap(await coordinator.preflightUpload({ ...claim, now: Date.now(), tenant }));
    // The coordinator holds the key of every device that checked in to the round; anyone else (an unknown device, or one
    // that never checked in here) is looked up, so the answer names what is wrong in the same order as for the others.
    let publicKeyText = pre.publicKey;
    let revoked = pre.revoked;
    let apiKeyId = pre.apiKeyId;
    if (publicKeyText === null) {
      const device = await lookupDevice(c.env, decoded.deviceId);
      publicKeyText = device.public_key;
      revoked ||= device.revoked_at !== null;
      apiKeyId = device.api_key_id;
    }
    // Asked while the signature is checked; usually answered by this isolate's cache.
    const keyState = apiKeyId === null ? Promise.resolve("active" as const) : apiKeyStatus(c.env, apiKeyId);
    keyState.catch(() => undefined);
    // Codec v3: Ed25519 over `fedge-update-v3\n` ‖ SHA-256(header and payload), both native in workerd.
    if (!(await verifyEd25519(fromBase64Url(publicKeyText), decoded.signature, message, publicKeyText))) {
      throw new FedgeError("bad_signature", 401, "the update signature does not verify under the device's key");
    }
    if (revoked) throw new FedgeError("device_revoked", 403, `device ${decoded.deviceId} is revoked`);
    checkUpdateAgainstTask(decoded, limits);
    const admitted = unwrap(pre.admission);
    // An update accepted before its API key was revoked keeps its receipt.
    if (admitted.duplicate) return c.json(admitted.duplicate, 200);
    if ((await keyState) === "revoked") {
      throw new FedgeError("forbidden", 403, "the API key this device checked in under has been revoked");
    }

    // One call, one transaction: a commit lost to a race (round closed, device revoked, another upload from this
    // device first) is refused with nothing written.
    const commit = unwrap(
      await coordinator.commitUpload({
        ...claim,
        publicKey: publicKeyText,
        storageKey: updateStorageKey(roundId, decoded.deviceId, sha256),
        payload: bytes,
        now: Date.now(),
      }),
    );
    return c.json(commit.receipt, commit.receipt.duplicate ? 200 : 201);
  });
