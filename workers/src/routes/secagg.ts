/**
 * @module
 * The device side of secure aggregation in a `distributed` round (SecAgg+, `@fedge/secagg`; the server stages run in
 * the round's `SecAggRound` Durable Object):
 * - `GET /v1/rounds/{id}/secagg`: the stage devices answer now.
 * - `GET /v1/rounds/{id}/secagg/{stage}`: what the device needs to answer `stage` (share-keys: the roster; masked-input:
 *   its relay of envelopes; consistency: the survivors; unmask: the survivors and its neighbours' signatures).
 * - `POST /v1/rounds/{id}/secagg/{stage}`: the device's message of `stage`.
 *
 * Every request carries the API key the device checked in under and an Ed25519 signature by the device's registered key
 * over `secAggRequestSigningBytes` (method, path, device, timestamp within 5 minutes, SHA-256 of the body). In order,
 * before any Durable Object: API key, round id shape, headers, timestamp; then the RoundCoordinator says whether the
 * device is a member (distributed round, the population's tenant, selected by the coin, not revoked) and under which
 * key it checked in, and the signature is verified under that key. Only then does the round's SecAggRound see the
 * message; it opens with the first advertisement, while the round still collects.
 */
import { createRoute, z } from "@hono/zod-openapi";
import {
  CHECKIN_MAX_SKEW_MS,
  FedgeError,
  SECAGG_DEVICE_HEADER,
  SECAGG_SIGNATURE_HEADER,
  SECAGG_TIMESTAMP_HEADER,
  SecAggAccepted,
  SecAggAdvertiseKeys,
  SecAggConsistencyCheck,
  SecAggConsistencyRequest,
  SecAggDeviceStage,
  SecAggMaskedInput,
  SecAggRoster,
  SecAggShareKeys,
  SecAggShareRelay,
  SecAggStatus,
  SecAggUnmaskRequest,
  SecAggUnmaskShares,
  DeviceId,
  fromBase64Url,
  parseRoundId,
  secAggRequestSigningBytes,
  sha256Hex,
} from "@fedge/protocol";
import type { Context } from "hono";
import type { AppEnv } from "../env.ts";
import { apiKeyAuth } from "../middleware/auth/index.ts";
import { bodyOf, MAX_SECAGG_BODY_BYTES } from "../middleware/body-limit.ts";
import { createRouter, errorResponses, jsonResponse as json, readBody } from "../middleware/validation/index.ts";
import { roundsStub, shardStub } from "../durable-objects/round-coordinator/index.ts";
import { shardOf } from "../training/shard-of.ts";
import { secAggStub } from "../durable-objects/secagg-round.ts";
import { unwrap, verifyEd25519 } from "../training/index.ts";

const security = [{ apiKey: [] }];
const StatusParam = z.object({ id: z.string().max(128) });
const StageParam = z.object({ id: z.string().max(128), stage: SecAggDeviceStage });
const SignedHeaders = z.object({
  [SECAGG_DEVICE_HEADER]: DeviceId,
  [SECAGG_TIMESTAMP_HEADER]: z.iso.datetime({ offset: true }),
  [SECAGG_SIGNATURE_HEADER]: z.string().regex(/^[A-Za-z0-9_-]{86}$/, "base64url Ed25519 signature"),
});
const DEVICE_ERRORS = {
  400: "Invalid request, or a message the stage refuses (bad_request, validation_failed)",
  401: "No API key, bad device signature (bad_signature) or stale timestamp (stale_timestamp)",
  403: "The device was not selected for this round (forbidden), is revoked (device_revoked), or is of another tenant",
  404: "No such round (round_not_found)",
  409: "Not a distributed round, a stage not reached yet, a message already given (conflict), a stage past its deadline (stage_closed), or the round aborted (round_closed)",
} as const;

/** What a device receives before answering each stage. */
const StageInput = z.union([SecAggRoster, SecAggShareRelay, SecAggConsistencyRequest, SecAggUnmaskRequest]);

const status = createRoute({
  method: "get",
  path: "/v1/rounds/{id}/secagg",
  tags: ["training"],
  summary: "The secure-aggregation stage of a distributed round",
  security,
  middleware: [apiKeyAuth()] as const,
  request: { params: StatusParam, headers: SignedHeaders },
  responses: { 200: json(SecAggStatus, "The stage"), ...errorResponses(DEVICE_ERRORS) },
});

const stageInput = createRoute({
  method: "get",
  path: "/v1/rounds/{id}/secagg/{stage}",
  tags: ["training"],
  summary: "What the device needs to answer a secure-aggregation stage",
  security,
  middleware: [apiKeyAuth()] as const,
  request: { params: StageParam, headers: SignedHeaders },
  responses: { 200: json(StageInput, "The roster, relay or request of the stage"), ...errorResponses(DEVICE_ERRORS) },
});

const stageAnswer = createRoute({
  method: "post",
  path: "/v1/rounds/{id}/secagg/{stage}",
  tags: ["training"],
  summary: "The device's message of a secure-aggregation stage",
  security,
  middleware: [apiKeyAuth(), readBody({ types: ["application/json"], maxBytes: MAX_SECAGG_BODY_BYTES })] as const,
  request: {
    params: StageParam,
    headers: SignedHeaders,
    body: { required: true, content: { "application/json": { schema: z.record(z.string(), z.unknown()) } } },
  },
  responses: {
    200: json(SecAggAccepted, "The same message was already recorded (a retry): nothing changed"),
    202: json(SecAggAccepted, "Recorded"),
    ...errorResponses(DEVICE_ERRORS),
  },
});

const ANSWERS = {
  advertise: SecAggAdvertiseKeys,
  "share-keys": SecAggShareKeys,
  "masked-input": SecAggMaskedInput,
  consistency: SecAggConsistencyCheck,
  unmask: SecAggUnmaskShares,
} as const;

/** Round → its coordinator shards S (fixed when the round opens), per isolate. */
const shardsCache = new Map<string, number>();
const SHARDS_CACHE_MAX = 1024;

/**
 * The device's membership of distributed round `roundId`. Its check-in lives on the coordinator shard that selected it
 * (`shardOf`, as for uploads); the population's own object answers the tenancy when the round runs on several shards.
 */
async function membership(c: Context<AppEnv>, model: string, roundId: string, deviceId: string) {
  const tenant = c.get("apiKey").tenant;
  const primary = roundsStub(c.env, model);
  let shards = shardsCache.get(roundId);
  if (shards === undefined) {
    shards = unwrap(await primary.uploadTarget(roundId, Date.now())).shards;
    if (shardsCache.size >= SHARDS_CACHE_MAX) shardsCache.delete(shardsCache.keys().next().value!);
    shardsCache.set(roundId, shards);
  }
  if (shards === 1) return unwrap(await primary.secAggMember(roundId, deviceId, Date.now(), tenant));
  const { owner } = await primary.routing();
  if (owner !== null && owner !== tenant) {
    throw new FedgeError("forbidden", 403, `population ${model} does not take devices of this API key's tenant`);
  }
  const shard = shardStub(c.env, model, await shardOf(c.env, deviceId, shards), shards);
  return unwrap(await shard.secAggMember(roundId, deviceId, Date.now(), tenant));
}

/**
 * Authenticates a device's request to round `roundId` (see the module comment) and returns its membership. Nothing is
 * asked of a Durable Object before the API key, the headers and the timestamp passed.
 */
async function authenticateDevice(c: Context<AppEnv>, roundId: string, body: Uint8Array) {
  const parsed = parseRoundId(roundId);
  if (!parsed) throw new FedgeError("round_not_found", 404, `no round ${roundId}`);
  const deviceId = c.req.header(SECAGG_DEVICE_HEADER)!;
  const timestamp = c.req.header(SECAGG_TIMESTAMP_HEADER)!;
  const signature = fromBase64Url(c.req.header(SECAGG_SIGNATURE_HEADER)!);
  if (!(Math.abs(Date.now() - Date.parse(timestamp)) <= CHECKIN_MAX_SKEW_MS)) {
    throw new FedgeError(
      "stale_timestamp",
      401,
      `timestamp is more than ${CHECKIN_MAX_SKEW_MS / 1000} s from the edge's clock`,
    );
  }
  const member = await membership(c, parsed.model, roundId, deviceId);
  const signed = secAggRequestSigningBytes(c.req.method, c.req.path, deviceId, timestamp, await sha256Hex(body));
  if (!(await verifyEd25519(fromBase64Url(member.publicKey), signature, signed, member.publicKey))) {
    throw new FedgeError("bad_signature", 401, "the request signature does not verify under the device's key");
  }
  return { deviceId, member };
}

export const secagg = createRouter()
  .openapi(status, async (c) => {
    const { id } = c.req.valid("param");
    const { member } = await authenticateDevice(c, id, new Uint8Array(0));
    const { stage, deadline } = await secAggStub(c.env, id).progress();
    // Before the first advertisement the object holds nothing: the advertise deadline comes from the round itself.
    const until = stage === "not_open" ? new Date(member.stageDeadlines[0]!).toISOString() : deadline;
    return c.json({ round_id: id, stage, ...(until !== undefined ? { deadline: until } : {}) }, 200);
  })
  .openapi(stageInput, async (c) => {
    const { id, stage } = c.req.valid("param");
    const { deviceId } = await authenticateDevice(c, id, new Uint8Array(0));
    const stub = secAggStub(c.env, id);
    switch (stage) {
      case "advertise":
        throw new FedgeError("bad_request", 400, "the advertise stage needs no input: post the device's keys");
      case "share-keys":
        return c.json(unwrap(await stub.roster()).roster, 200);
      case "masked-input":
        return c.json(unwrap(await stub.relay(deviceId)).relay, 200);
      case "consistency":
        return c.json(unwrap(await stub.consistencyRequest()).request, 200);
      case "unmask":
        return c.json(unwrap(await stub.unmaskRequest(deviceId)).request, 200);
    }
  })
  .openapi(stageAnswer, async (c) => {
    const { id, stage } = c.req.valid("param");
    const body = await bodyOf(c, MAX_SECAGG_BODY_BYTES);
    const { deviceId, member } = await authenticateDevice(c, id, body);
    const parsed = ANSWERS[stage].safeParse(c.req.valid("json"));
    if (!parsed.success) {
      throw new FedgeError("validation_failed", 400, `not a ${stage} message: ${parsed.error.issues[0]?.message}`);
    }
    const message = parsed.data;
    if (message.device_id !== deviceId || message.round_id !== id) {
      throw new FedgeError("bad_request", 400, "the message names another device or round than the request");
    }
    const stub = secAggStub(c.env, id);
    const { modulus_bits: bits, encoded_length: length } = member.secureAggregation;
    let recorded: { duplicate: boolean };
    switch (stage) {
      case "advertise":
        if (!member.collecting) {
          // advertising ends with collecting: the advertise stage has closed, whether or not the object has seen it
          throw new FedgeError("stage_closed", 409, `round ${id} no longer collects: its advertise stage has closed`);
        }
        unwrap(
          await stub.open({
            roundId: id,
            bits,
            length,
            minInputs: member.minInputs,
            corruptDevices: member.corruptDevices,
            stageDeadlines: member.stageDeadlines,
          }),
        );
        recorded = unwrap(await stub.advertise(message as SecAggAdvertiseKeys, member.publicKey));
        break;
      case "share-keys":
        recorded = unwrap(await stub.shareKeys(message as SecAggShareKeys));
        break;
      case "masked-input":
        recorded = unwrap(await stub.maskedInput(message as SecAggMaskedInput));
        break;
      case "consistency":
        recorded = unwrap(await stub.consistency(message as SecAggConsistencyCheck));
        break;
      case "unmask":
        recorded = unwrap(await stub.unmask(message as SecAggUnmaskShares));
        break;
    }
    const duplicate = recorded.duplicate;
    return duplicate
      ? c.json({ round_id: id, stage, duplicate }, 200)
      : c.json({ round_id: id, stage, duplicate }, 202);
  });
