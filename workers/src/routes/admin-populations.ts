/**
 * @module
 * `PUT /v1/admin/populations/:name/privacy-budget` (admin token only: the aggregator's signature cannot raise the
 * budget it spends): sets or changes a population's (ε_max, δ) and accountant. Every DP round of the population is
 * charged against it when it opens (`POST /v1/admin/rounds`); without one, no DP round opens.
 *
 * `POST /v1/admin/populations/:name/audit-shadows` (admin token only, since it sets a budget): creates the audit
 * shadow `<name>-audit-<id>` of a population (`@fedge/protocol` `rounds/audit-shadow.ts`): a copy of its serving
 * model that the registry never serves, with its own budget and ledger, for `fedge audit`'s canaries.
 * `DELETE /v1/admin/populations/:name/audit-shadows/:id` deletes one again (a failed audit's, or one no longer
 * needed): its rounds' payloads, its coordinator's state and ledger, then its registry record, so the id is free.
 *
 * `PUT /v1/admin/populations/:name/sharding` (admin token only): the number of coordinator shards S the population's
 * next round opens with, given directly or derived from the expected check-ins a round (`defaultShardCount`). S only
 * grows, and only between rounds (409 otherwise; nothing changes). `GET` reads it.
 */
import { createRoute, z } from "@hono/zod-openapi";
import {
  AuditShadow,
  AuditShadowRequest,
  AuditId,
  auditShadowName,
  FedgeError,
  ModelName,
  PopulationPrivacyStatus,
  PopulationSharding,
  PopulationShardingRequest,
  PrivacyBudgetRequest,
  defaultShardCount,
} from "@fedge/protocol";
import { adminAuth } from "../middleware/auth/index.ts";
import {
  ADMIN_AUTH_ERRORS,
  createRouter,
  errorResponses,
  jsonResponse,
  readBody,
} from "../middleware/validation/index.ts";
import { roundsStub } from "../durable-objects/round-coordinator/index.ts";
import { unwrap } from "../training/index.ts";
import { requireAdminToken } from "./admin-aggregator-keys.ts";
import { createAuditShadow, deleteAuditShadow, readIndexFresh, shadowSource } from "../registry/index.ts";

const putBudget = createRoute({
  method: "put",
  path: "/v1/admin/populations/{name}/privacy-budget",
  tags: ["training-admin"],
  summary: "Set a population's privacy budget (ε_max, δ) and accountant (admin token only)",
  description:
    "Refused (409) for a population that already ran rounds no budget charged (privacy mode none, or opened before " +
    "the edge kept ledgers), and for a change of accountant once a round was charged. ε_max and δ may change later.",
  security: [{ adminToken: [] }],
  // the body is read through the one capped reader (64 KiB), never whole
  middleware: [readBody({ types: ["application/json"] })] as const,
  request: {
    params: z.object({ name: ModelName }),
    body: { required: true, content: { "application/json": { schema: PrivacyBudgetRequest } } },
  },
  responses: {
    200: jsonResponse(PopulationPrivacyStatus, "The population's ledger under the new budget"),
    ...errorResponses(ADMIN_AUTH_ERRORS, {
      403: "Not the admin token (an aggregator's signature cannot set budgets)",
      409: "Uncharged rounds, or a change of accountant after charges",
    }),
  },
});

const postShadow = createRoute({
  method: "post",
  path: "/v1/admin/populations/{name}/audit-shadows",
  tags: ["training-admin"],
  summary: "Create an audit shadow of a population: a never-served copy of its serving model with its own budget",
  description:
    "The shadow `<name>-audit-<id>` gets the population's serving model as its version 1 (unsigned copy) and the " +
    "given budget on its own ledger. None of its versions is ever served: uploads are stored unpromoted and a " +
    "promote is refused (409 `audit_shadow`). Canaries of an empirical privacy audit train there, never in the " +
    "population itself.",
  security: [{ adminToken: [] }],
  middleware: [readBody({ types: ["application/json"] })] as const,
  request: {
    params: z.object({ name: ModelName }),
    body: { required: true, content: { "application/json": { schema: AuditShadowRequest } } },
  },
  responses: {
    201: jsonResponse(AuditShadow, "The shadow population"),
    ...errorResponses(ADMIN_AUTH_ERRORS, {
      403: "Not the admin token",
      404: "No such population",
      409: "The population serves nothing, is itself a shadow, or the shadow exists",
    }),
  },
});

const deleteShadow = createRoute({
  method: "delete",
  path: "/v1/admin/populations/{name}/audit-shadows/{id}",
  tags: ["training-admin"],
  summary: "Delete an audit shadow of a population: its rounds, payloads, ledger and versions (admin token only)",
  description:
    "For a failed audit's shadow, or one no longer needed. A collecting round is closed first; then every round's " +
    "update payloads, the shadow's coordinator state (rounds, check-ins, its own ledger) and its registry record " +
    "(versions, manifests, index last) are deleted, so the id can be used again. The population itself is never " +
    "touched. A failure half way answers 5xx and leaves the shadow listed: repeat the call.",
  security: [{ adminToken: [] }],
  request: { params: z.object({ name: ModelName, id: AuditId }) },
  responses: {
    204: { description: "Deleted" },
    ...errorResponses(ADMIN_AUTH_ERRORS, {
      403: "Not the admin token",
      404: "The population has no audit shadow with this id",
      409: "The shadow ran sharded rounds",
    }),
  },
});

const putSharding = createRoute({
  method: "put",
  path: "/v1/admin/populations/{name}/sharding",
  tags: ["training-admin"],
  summary: "Set how many coordinator shards a population's rounds run on (admin token only)",
  description:
    "Give `shards` (1–64) or `expected_devices` (check-ins a round; S = ⌈N / 50,000⌉, at most 64). Applies from the " +
    "next round. S only grows, and only while no round is collecting: a device's earlier rounds are found on the " +
    "shard it had under each round's S. Without a setting a population runs on one coordinator.",
  security: [{ adminToken: [] }],
  middleware: [readBody({ types: ["application/json"] })] as const,
  request: {
    params: z.object({ name: ModelName }),
    body: { required: true, content: { "application/json": { schema: PopulationShardingRequest } } },
  },
  responses: {
    200: jsonResponse(PopulationSharding, "The population's shard count for its next round"),
    ...errorResponses(ADMIN_AUTH_ERRORS, {
      400: "Neither or both of shards and expected_devices, or S out of 1–64",
      403: "Not the admin token",
      409: "Fewer shards than the population has, or a round is collecting",
    }),
  },
});

const getSharding = createRoute({
  method: "get",
  path: "/v1/admin/populations/{name}/sharding",
  tags: ["training-admin"],
  summary: "How many coordinator shards a population's next round runs on (admin token only)",
  security: [{ adminToken: [] }],
  request: { params: z.object({ name: ModelName }) },
  responses: {
    200: jsonResponse(PopulationSharding, "The population's shard count"),
    ...errorResponses(ADMIN_AUTH_ERRORS, { 403: "Not the admin token" }),
  },
});

/** The shadow of `name` for audit `id`; 400 when the name would not be a valid model name. */
function shadowNameOf(name: string, id: string): string {
  try {
    return auditShadowName(name, id);
  } catch (e) {
    throw new FedgeError("validation_failed", 400, `id: ${(e as Error).message}`);
  }
}

const router = createRouter();
router.use("/v1/admin/populations/*", adminAuth(), requireAdminToken);

export const adminPopulations = router
  .openapi(putBudget, async (c) => {
    const { name } = c.req.valid("param");
    const budget = c.req.valid("json");
    const set = unwrap(await roundsStub(c.env, name).setPrivacyBudget({ model: name, budget, now: Date.now() }));
    return c.json(set.status, 200);
  })
  .openapi(postShadow, async (c) => {
    const { name } = c.req.valid("param");
    const { id, budget } = c.req.valid("json");
    const shadow = shadowNameOf(name, id);
    const now = Date.now();
    // Every check reads before anything is written: a refused request leaves no budget and no copy behind.
    const source = await shadowSource(c.env, name, shadow);
    const set = unwrap(await roundsStub(c.env, shadow).setPrivacyBudget({ model: shadow, budget, now }));
    await createAuditShadow(c.env, source, shadow, now);
    const body: AuditShadow = {
      name: shadow,
      audit_of: name,
      source_version: source.version,
      model_version: 1,
      privacy: set.status,
    };
    return c.json(body, 201);
  })
  .openapi(deleteShadow, async (c) => {
    const { name, id } = c.req.valid("param");
    const shadow = shadowNameOf(name, id);
    const { index } = await readIndexFresh(c.env, shadow);
    if (!index || index.audit_of !== name) throw new FedgeError("not_found", 404, `${name} has no audit shadow ${id}`);
    // The coordinator first, the registry record last: until the end a repeated call finds the shadow again.
    unwrap(await roundsStub(c.env, shadow).retire(Date.now()));
    await deleteAuditShadow(c.env, shadow);
    return c.body(null, 204);
  })
  .openapi(putSharding, async (c) => {
    const { name } = c.req.valid("param");
    const body = c.req.valid("json");
    const shards = body.shards ?? defaultShardCount(body.expected_devices!);
    const set = unwrap(
      await roundsStub(c.env, name).setSharding({
        model: name,
        shards,
        expectedDevices: body.expected_devices ?? null,
        now: Date.now(),
      }),
    );
    return c.json(set.sharding, 200);
  })
  .openapi(getSharding, async (c) => {
    const { name } = c.req.valid("param");
    return c.json(await roundsStub(c.env, name).getSharding(name), 200);
  });
