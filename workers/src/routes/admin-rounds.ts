/**
 * @module
 * Admin endpoints for rounds, for the aggregator (its Ed25519 request signature) or an operator (admin token); the
 * public API key is never enough: open (with the task parameters), list, status, close now, list accepted updates
 * (paginated, with each device's public key), fetch one update's signed bytes, stream a page of them as one
 * `application/vnd.fedge.update-stream`, mark aggregated, publish (link the model version uploaded with
 * `POST /v1/admin/models/:name/versions`); record what the aggregator released for a finished DP round (its noised
 * counts, C and z, for the dashboard); and for a distributed round, its secure aggregation: the stage, close the
 * current stage (the driver calls it at each stage's deadline), and the modular sum once finished — all the aggregator
 * ever receives of the devices' updates. Devices and quotas are in admin-devices.ts, aggregator keys in
 * admin-aggregator-keys.ts.
 */
import { createRoute, z } from "@hono/zod-openapi";
import {
  AcceptedUpdatePage,
  DeviceId,
  FedgeError,
  MAX_COORDINATOR_SHARDS,
  MarkAggregatedRequest,
  ModelName,
  OpenRoundRequest,
  PublishRoundRequest,
  RoundList,
  RoundRelease,
  RoundStatus,
  SecAggOutcome,
  SecAggDeviceStage,
  SecAggStatus,
  UPDATE_STREAM_FRAME_HEADER_BYTES,
  UPDATE_STREAM_MEDIA_TYPE,
  encodeUpdateStreamFrameHeader,
  fromBase64Url,
  parseRoundId,
  type AcceptedUpdate,
} from "@fedge/protocol";
import { UPDATE_MEDIA_TYPE } from "@fedge/protocol";
import { adminAuth } from "../middleware/auth/index.ts";
import {
  ADMIN_AUTH_ERRORS,
  createRouter,
  errorResponses,
  jsonResponse as json,
  readBody,
} from "../middleware/validation/index.ts";
import {
  roundsStub,
  shardStub,
  splitCursor,
  type PayloadLocation,
} from "../durable-objects/round-coordinator/index.ts";
import { secAggStub } from "../durable-objects/secagg-round.ts";
import { updateStorageKey, updateStoreFor } from "../durable-objects/update-store.ts";
import { unwrap } from "../training/index.ts";
import type { Bindings } from "../env.ts";

const security: Record<string, string[]>[] = [{ adminToken: [] }, { aggregatorSignature: [] }];
const RoundParam = z.object({ id: z.string().max(128) });
const Page = z.object({
  after: z.coerce.number().int().nonnegative().optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  /**
   * A sharded round (`shards` > 1 in its status): list only this shard's updates, so an aggregator can read every shard
   * at once. Without it the pages walk the shards in order; either way `seq` and the cursor are shard × 2³² + order.
   */
  shard: z.coerce
    .number()
    .int()
    .min(0)
    .max(MAX_COORDINATOR_SHARDS - 1)
    .optional(),
});
const binary = z.string().openapi({ type: "string", format: "binary" });

function coordinatorFor(env: Bindings, roundId: string) {
  const parsed = parseRoundId(roundId);
  if (!parsed) throw new FedgeError("round_not_found", 404, `no round ${roundId}`);
  return roundsStub(env, parsed.model);
}

// ── routes ───────────────────────────────────────────────────────────────────────────────────────────────────────

const openRound = createRoute({
  method: "post",
  path: "/v1/admin/rounds",
  tags: ["training-admin"],
  summary: "Open the population's next round with its task parameters, charged to the population's privacy budget",
  description:
    "A DP round (privacy mode central, local or distributed) carries its `mechanism` (noise multiplier z, clip rule, " +
    "σ_b) and is charged (q, z, σ_b, mode, clip rule) in the same transaction that opens it; a charge that would pass " +
    "the budget is refused with 409 `budget_exceeded` and changes nothing. Charges are never taken back. DP rounds " +
    "take no `max_reports` and `min_reports` is 1.",
  security,
  middleware: [readBody({ types: ["application/json"] })] as const,
  request: { body: { required: true, content: { "application/json": { schema: OpenRoundRequest } } } },
  responses: {
    201: json(RoundStatus, "The new round"),
    ...errorResponses(ADMIN_AUTH_ERRORS, {
      409:
        "Another round of this population is still collecting or the population belongs to another tenant (`conflict`), or the charge would pass the population's privacy budget, " +
        "it has none, or a round in mode none would spend an unbounded ε (`budget_exceeded`)",
    }),
  },
});

const listRounds = createRoute({
  method: "get",
  path: "/v1/admin/rounds",
  tags: ["training-admin"],
  summary: "A population's rounds, newest first",
  security,
  request: { query: z.object({ model: ModelName, limit: z.coerce.number().int().min(1).max(100).optional() }) },
  responses: { 200: json(RoundList, "Rounds"), ...errorResponses(ADMIN_AUTH_ERRORS) },
});

const roundStatus = createRoute({
  method: "get",
  path: "/v1/admin/rounds/{id}",
  tags: ["training-admin"],
  summary: "Round status",
  security,
  request: { params: RoundParam },
  responses: { 200: json(RoundStatus, "The round"), ...errorResponses(ADMIN_AUTH_ERRORS, { 404: "No such round" }) },
});

const closeRound = createRoute({
  method: "post",
  path: "/v1/admin/rounds/{id}/close",
  tags: ["training-admin"],
  summary: "Stop collecting now (idempotent)",
  security,
  request: { params: RoundParam },
  responses: {
    200: json(RoundStatus, "The closed round"),
    ...errorResponses(ADMIN_AUTH_ERRORS, { 404: "No such round" }),
  },
});

const listUpdates = createRoute({
  method: "get",
  path: "/v1/admin/rounds/{id}/updates",
  tags: ["training-admin"],
  summary: "Accepted updates of a closed round, in acceptance order (paginated)",
  security,
  request: { params: RoundParam, query: Page },
  responses: {
    200: json(AcceptedUpdatePage, "One page"),
    ...errorResponses(ADMIN_AUTH_ERRORS, {
      400: "A shard the round does not have",
      404: "No such round",
      409: "The round is still collecting",
    }),
  },
});

const getUpdate = createRoute({
  method: "get",
  path: "/v1/admin/rounds/{id}/updates/{device_id}",
  tags: ["training-admin"],
  summary: "One accepted update's signed bytes, as the device uploaded them",
  security,
  request: { params: RoundParam.extend({ device_id: DeviceId }) },
  responses: {
    200: { description: "The update", content: { [UPDATE_MEDIA_TYPE]: { schema: binary } } },
    ...errorResponses(ADMIN_AUTH_ERRORS, {
      404: "No such round or update, or its payload was deleted after the retention period",
    }),
  },
});

const streamUpdates = createRoute({
  method: "get",
  path: "/v1/admin/rounds/{id}/update-stream",
  tags: ["training-admin"],
  summary: "A page of accepted updates as one stream of frames (public key ‖ u32 LE length ‖ update)",
  description: "The response header x-fedge-next-cursor carries the next page's `after` (absent on the last page).",
  security,
  request: { params: RoundParam, query: Page },
  responses: {
    200: { description: "Frames", content: { [UPDATE_STREAM_MEDIA_TYPE]: { schema: binary } } },
    ...errorResponses(ADMIN_AUTH_ERRORS, {
      400: "A shard the round does not have",
      404: "No such round, or its payloads were deleted after the retention period",
      409: "The round is still collecting",
    }),
  },
});

const markAggregated = createRoute({
  method: "post",
  path: "/v1/admin/rounds/{id}/aggregated",
  tags: ["training-admin"],
  summary: "Mark a closed round aggregated (idempotent)",
  security,
  middleware: [readBody({ types: ["application/json"], optional: true })] as const,
  request: {
    params: RoundParam,
    body: { required: false, content: { "application/json": { schema: MarkAggregatedRequest } } },
  },
  responses: {
    200: json(RoundStatus, "The aggregated round"),
    ...errorResponses(ADMIN_AUTH_ERRORS, {
      404: "No such round",
      409: "Still collecting, fewer than min_reports updates, or linked to another version",
    }),
  },
});

const publishRound = createRoute({
  method: "post",
  path: "/v1/admin/rounds/{id}/publish",
  tags: ["training-admin"],
  summary: "Link the model version this round produced (marks it aggregated)",
  security,
  middleware: [readBody({ types: ["application/json"] })] as const,
  request: {
    params: RoundParam,
    body: { required: true, content: { "application/json": { schema: PublishRoundRequest } } },
  },
  responses: {
    200: json(RoundStatus, "The round"),
    ...errorResponses(ADMIN_AUTH_ERRORS, {
      404: "No such round",
      409: "Still collecting, fewer than min_reports updates, or linked to another version",
    }),
  },
});

const reportRelease = createRoute({
  method: "post",
  path: "/v1/admin/rounds/{id}/release",
  tags: ["training-admin"],
  summary: "Record what the aggregator released for a finished DP round (noised values only, once)",
  description:
    "The clip norm C used and the next one, the charged z, and under adaptive clipping the noised unclipped count " +
    "(b̃ and m·b̃, with σ_b): post-processing of the round's charged mechanism, shown on the dashboard instead of the " +
    "exact counts the edge holds. Refused, with nothing stored, unless the round is a closed DP round that was " +
    "aggregated (at least min_reports accepted), every number is the round's own (C, z, σ_b), a fixed-clip round " +
    "reports no count, and no release was recorded before.",
  security,
  middleware: [readBody({ types: ["application/json"] })] as const,
  request: {
    params: RoundParam,
    body: { required: true, content: { "application/json": { schema: RoundRelease } } },
  },
  responses: {
    200: json(RoundStatus, "The round, with its release"),
    ...errorResponses(ADMIN_AUTH_ERRORS, {
      400: "A number a release of this round cannot have: another C, z or σ_b, a count under a fixed clip norm, none under an adaptive one",
      404: "No such round",
      409: "Not a DP round, still collecting, not aggregated (fewer than min_reports updates), or already reported",
    }),
  },
});

/**
 * The bytes at a payload's location: handed over by the coordinator (pending in its SQLite), a range of the R2 segment
 * it was sealed into, or (null location: accepted before the coordinator stored payloads) the round's UpdateStore
 * shard. Null when nothing is there.
 */
async function payloadAt(
  env: Bindings,
  roundId: string,
  deviceId: string,
  storageKey: string,
  location: PayloadLocation | null,
): Promise<Uint8Array | null> {
  if (location === null) return updateStoreFor(env, roundId, deviceId).read(storageKey);
  if (location.at === "sqlite") return location.bytes;
  const object = await env.UPDATES.get(location.key, { range: { offset: location.offset, length: location.length } });
  return object ? new Uint8Array(await object.arrayBuffer()) : null;
}

/** The signed bytes of an accepted update, from the coordinator (or its shard, named by the item's cursor) that took it. */
async function readPayload(env: Bindings, roundId: string, shards: number, item: AcceptedUpdate): Promise<Uint8Array> {
  const model = parseRoundId(roundId)!.model;
  const holder = shards > 1 ? shardStub(env, model, splitCursor(item.seq).shard, shards) : roundsStub(env, model);
  const { payload } = unwrap(await holder.payloadOf(roundId, item.device_id, Date.now()));
  const bytes = await payloadAt(
    env,
    roundId,
    item.device_id,
    updateStorageKey(roundId, item.device_id, item.sha256),
    payload,
  );
  if (!bytes || bytes.length !== item.byte_length) {
    throw new FedgeError("internal", 500, `the payload of ${item.device_id} is missing from storage`);
  }
  return bytes;
}

/**
 * Streams frames for `items`, one payload at a time (backpressure from the reader); the next payload is fetched while the
 * current one is being read.
 */
function updateFrames(
  env: Bindings,
  roundId: string,
  shards: number,
  items: AcceptedUpdate[],
): ReadableStream<Uint8Array> {
  let index = 0;
  let next: Promise<Uint8Array> | null = items.length > 0 ? readPayload(env, roundId, shards, items[0]!) : null;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const item = items[index];
      if (!item || !next) {
        controller.close();
        return;
      }
      const payload = await next;
      index += 1;
      next = index < items.length ? readPayload(env, roundId, shards, items[index]!) : null;
      // Fetched ahead: a failure surfaces when its turn comes, not as an unhandled rejection.
      next?.catch(() => undefined);
      controller.enqueue(encodeUpdateStreamFrameHeader(fromBase64Url(item.public_key), item.byte_length));
      controller.enqueue(payload);
    },
  });
}

const secAggStatus = createRoute({
  method: "get",
  path: "/v1/admin/rounds/{id}/secagg",
  tags: ["training-admin"],
  summary: "The secure-aggregation stage of a distributed round",
  security,
  request: { params: RoundParam },
  responses: { 200: json(SecAggStatus, "The stage"), ...errorResponses(ADMIN_AUTH_ERRORS, { 404: "No such round" }) },
});

const secAggClose = createRoute({
  method: "post",
  path: "/v1/admin/rounds/{id}/secagg/close",
  tags: ["training-admin"],
  summary: "Close a secure-aggregation stage before its deadline (after unmask: finish the round)",
  description:
    "Ends the stage with the devices that answered, before the deadline at which the edge closes it anyway. With " +
    "`stage`, a stage that has already closed is left as it is (the answer is the stage now), so a close racing the " +
    "deadline never closes the next stage. Fewer than the round's threshold aborts the round for good (409 " +
    "`round_closed`); the round is still charged.",
  security,
  request: { params: RoundParam, query: z.object({ stage: SecAggDeviceStage.optional() }) },
  responses: {
    200: json(SecAggStatus, "The stage now"),
    ...errorResponses(ADMIN_AUTH_ERRORS, { 404: "No such round", 409: "The round aborted (round_closed)" }),
  },
});

const secAggSum = createRoute({
  method: "get",
  path: "/v1/admin/rounds/{id}/secagg/sum",
  tags: ["training-admin"],
  summary: "The modular sum of a finished distributed round",
  security,
  request: { params: RoundParam },
  responses: {
    200: json(SecAggOutcome, "Σ of the survivors' encoded updates mod 2^b"),
    ...errorResponses(ADMIN_AUTH_ERRORS, { 404: "No such round", 409: "Not finished, or aborted (round_closed)" }),
  },
});

/** The secure aggregation of round `id`, after checking the id names a round shape. */
function secAggFor(env: Bindings, roundId: string) {
  if (!parseRoundId(roundId)) throw new FedgeError("round_not_found", 404, `no round ${roundId}`);
  return secAggStub(env, roundId);
}

const router = createRouter();
router.use("/v1/admin/rounds/*", adminAuth({ aggregator: true }));

export const adminRounds = router
  .openapi(openRound, async (c) => {
    const body = c.req.valid("json");
    const now = Date.now();
    const deadline = body.deadline !== undefined ? Date.parse(body.deadline) : now + body.duration_s! * 1000;
    const { model, tenant, deadline: _d, duration_s: _s, ...params } = body;
    const opened = unwrap(
      await roundsStub(c.env, model).openRound({ model, params, deadline, now, ...(tenant ? { tenant } : {}) }),
    );
    return c.json(opened.status, 201);
  })
  .openapi(listRounds, async (c) => {
    const q = c.req.valid("query");
    return c.json({ rounds: await roundsStub(c.env, q.model).listRounds(q.limit ?? 20, Date.now()) }, 200);
  })
  .openapi(roundStatus, async (c) => {
    const { id } = c.req.valid("param");
    return c.json(unwrap(await coordinatorFor(c.env, id).status(id, Date.now())).status, 200);
  })
  .openapi(secAggStatus, async (c) => {
    const { id } = c.req.valid("param");
    return c.json({ round_id: id, ...(await secAggFor(c.env, id).progress()) }, 200);
  })
  .openapi(secAggClose, async (c) => {
    const { id } = c.req.valid("param");
    const { stage } = c.req.valid("query");
    const closed = unwrap(await secAggFor(c.env, id).closeStage(stage));
    return c.json({ round_id: id, stage: closed.stage }, 200);
  })
  .openapi(secAggSum, async (c) => {
    const { id } = c.req.valid("param");
    const { outcome } = unwrap(await secAggFor(c.env, id).outcome());
    return c.json(
      {
        round_id: id,
        modulus_bits: outcome.bits,
        encoded_length: outcome.length,
        survivors: outcome.survivors,
        sum: outcome.sum,
      },
      200,
    );
  })
  .openapi(closeRound, async (c) => {
    const { id } = c.req.valid("param");
    return c.json(unwrap(await coordinatorFor(c.env, id).closeRound(id, Date.now())).status, 200);
  })
  .openapi(listUpdates, async (c) => {
    const { id } = c.req.valid("param");
    const q = c.req.valid("query");
    const page = unwrap(
      await coordinatorFor(c.env, id).listUpdates(id, q.after ?? 0, q.limit ?? 100, Date.now(), false, q.shard),
    );
    return c.json({ round_id: id, items: page.items, next_cursor: page.next_cursor }, 200);
  })
  .openapi(getUpdate, async (c) => {
    const { id, device_id } = c.req.valid("param");
    const stored = unwrap(await coordinatorFor(c.env, id).getUpdate(id, device_id)).update;
    const payload = await payloadAt(c.env, id, device_id, stored.storage_key, stored.payload);
    if (!payload) throw new FedgeError("internal", 500, `the payload of ${device_id} is missing from storage`);
    return new Response(payload, {
      status: 200,
      headers: {
        "content-type": UPDATE_MEDIA_TYPE,
        "content-length": String(stored.byte_length),
        etag: `"${stored.sha256}"`,
        "x-fedge-sha256": stored.sha256,
        "x-fedge-device-public-key": stored.public_key,
      },
    }) as never;
  })
  .openapi(streamUpdates, async (c) => {
    const { id } = c.req.valid("param");
    const q = c.req.valid("query");
    const page = unwrap(
      await coordinatorFor(c.env, id).listUpdates(id, q.after ?? 0, q.limit ?? 100, Date.now(), true, q.shard),
    );
    const total = page.items.reduce((s, u) => s + UPDATE_STREAM_FRAME_HEADER_BYTES + u.byte_length, 0);
    const headers: Record<string, string> = {
      "content-type": UPDATE_STREAM_MEDIA_TYPE,
      "x-fedge-update-count": String(page.items.length),
    };
    if (page.next_cursor !== null) headers["x-fedge-next-cursor"] = page.next_cursor;
    const body = updateFrames(c.env, id, page.shards, page.items).pipeThrough(new FixedLengthStream(total));
    return new Response(body, { status: 200, headers }) as never;
  })
  .openapi(markAggregated, async (c) => {
    const { id } = c.req.valid("param");
    const body = (c.req.valid("json") ?? {}) as MarkAggregatedRequest;
    const now = Date.now();
    const reports = await securelyAggregated(c.env, id);
    return c.json(
      unwrap(await coordinatorFor(c.env, id).markAggregated(id, body.published_version, now, reports)).status,
      200,
    );
  })
  .openapi(reportRelease, async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const reports = await securelyAggregated(c.env, id);
    return c.json(unwrap(await coordinatorFor(c.env, id).reportRelease(id, body, Date.now(), reports)).status, 200);
  })
  .openapi(publishRound, async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const reports = await securelyAggregated(c.env, id);
    return c.json(
      unwrap(await coordinatorFor(c.env, id).markAggregated(id, body.model_version, Date.now(), reports)).status,
      200,
    );
  });

/** Inputs in round `roundId`'s released secure-aggregation sum; undefined when it has none (or is not distributed). */
async function securelyAggregated(env: Bindings, roundId: string): Promise<number | undefined> {
  const found = await secAggFor(env, roundId).outcome();
  return found.ok ? found.outcome.survivors.length : undefined;
}
