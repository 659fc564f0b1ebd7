/**
 * @module
 * Admin key management: create (the secret is returned once), revoke, and read a key's usage. A revocation takes
 * effect at once in the isolate that performs it and within `AUTH_CACHE_TTL_MS` everywhere else (key-cache.ts).
 */
import { createRoute, z } from "@hono/zod-openapi";
import {
  ApiKeyId,
  ApiKeyInfo,
  CreateApiKeyRequest,
  CreatedApiKey,
  DEFAULT_RATE_LIMIT_PER_MINUTE,
  FedgeError,
  UsageQuery,
  UsageReport,
} from "@fedge/protocol";
import type { Bindings } from "../env.ts";
import { createRouter, errorResponses, readBody } from "../middleware/validation/index.ts";
import { settleUsage } from "../middleware/metering.ts";
import {
  adminAuth,
  generateApiKey,
  hashApiKey,
  keyCache,
  keyStatus,
  ledgerFor,
  recordKeyId,
} from "../middleware/auth/index.ts";

const errors = errorResponses({
  400: "Invalid request",
  401: "No admin credential",
  403: "Not an admin credential",
});
const notFound = errorResponses({ 404: "No such key" });

const IdParam = z.object({ id: ApiKeyId });
const security = [{ adminToken: [] }];

const createKey = createRoute({
  method: "post",
  path: "/v1/admin/keys",
  tags: ["admin"],
  summary: "Create an API key (the secret is shown once; the edge stores its SHA-256)",
  security,
  middleware: [adminAuth(), readBody({ types: ["application/json"] })] as const,
  request: { body: { required: true, content: { "application/json": { schema: CreateApiKeyRequest } } } },
  responses: {
    201: { description: "The new key", content: { "application/json": { schema: CreatedApiKey } } },
    ...errors,
  },
});

const revokeKey = createRoute({
  method: "delete",
  path: "/v1/admin/keys/{id}",
  tags: ["admin"],
  summary: "Revoke an API key (idempotent)",
  security,
  middleware: [adminAuth()] as const,
  request: { params: IdParam },
  responses: {
    200: { description: "The revoked key", content: { "application/json": { schema: ApiKeyInfo } } },
    ...errors,
    ...notFound,
  },
});

const keyUsage = createRoute({
  method: "get",
  path: "/v1/admin/keys/{id}/usage",
  tags: ["admin"],
  summary: "Usage of one key per UTC day",
  security,
  middleware: [adminAuth()] as const,
  request: { params: IdParam, query: UsageQuery },
  responses: {
    200: { description: "Usage per day", content: { "application/json": { schema: UsageReport } } },
    ...errors,
    ...notFound,
  },
});

/** Revokes key `id` (idempotent; also the dashboard's revoke button). 404 `not_found` for an unknown key. */
export async function revokeApiKey(env: Bindings, id: string, now: number): Promise<ApiKeyInfo> {
  const info = await ledgerFor(env, id).revoke(now);
  // This isolate refuses the key from now on; other isolates within AUTH_CACHE_TTL_MS (see key-cache.ts).
  keyCache.forget(id);
  keyStatus.markRevoked(id);
  if (!info) throw new FedgeError("not_found", 404, `no API key ${id}`);
  return info;
}

export const adminKeys = createRouter()
  .openapi(createKey, async (c) => {
    const body = c.req.valid("json");
    const { id, key } = generateApiKey();
    const info = await ledgerFor(c.env, id).create({
      id,
      name: body.name,
      hash: await hashApiKey(key),
      rateLimitPerMinute: body.rate_limit_per_minute ?? DEFAULT_RATE_LIMIT_PER_MINUTE,
      ...(body.tenant !== undefined ? { tenant: body.tenant } : {}),
      now: Date.now(),
    });
    if (!info) throw new FedgeError("conflict", 409, "key id collision; retry");
    // The operator dashboard lists keys from this directory (key-directory.ts).
    await recordKeyId(c.env, id);
    return c.json({ ...info, key }, 201);
  })
  .openapi(revokeKey, async (c) => {
    const { id } = c.req.valid("param");
    return c.json(await revokeApiKey(c.env, id, Date.now()), 200);
  })
  .openapi(keyUsage, async (c) => {
    const { id } = c.req.valid("param");
    await settleUsage(c.env);
    const report = await ledgerFor(c.env, id).usage(c.req.valid("query"));
    if (!report) throw new FedgeError("not_found", 404, `no API key ${id}`);
    return c.json(report, 200);
  });
