/**
 * @module
 * Admin endpoints for aggregator keys (admin token only: an aggregator cannot register or remove signers itself):
 * register or remove an aggregator Ed25519 public key. Keys live in KV, so a removal propagates within a minute.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { AggregatorKeyInfo, Base64Url, FedgeError, canonicalKey32 } from "@fedge/protocol";
import type { MiddlewareHandler } from "hono";
import { adminAuth } from "../middleware/auth/index.ts";
import { aggregatorKeyKvKey } from "../middleware/aggregator-signature.ts";
import { ADMIN_AUTH_ERRORS, createRouter, errorResponses, jsonResponse } from "../middleware/validation/index.ts";
import type { AppEnv } from "../env.ts";

const security = [{ adminToken: [] }];
const AggregatorKeyParam = z.object({ public_key: Base64Url.length(43) });

/**
 * After `adminAuth()`: an aggregator's signature is an admin credential, but not for managing aggregator keys (nor for
 * anything else that governs the aggregator itself, such as a population's privacy budget).
 */
export const requireAdminToken: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.get("admin").via !== "token") {
    throw new FedgeError("forbidden", 403, "only the admin token manages aggregator keys");
  }
  return next();
};

const putAggregatorKey = createRoute({
  method: "put",
  path: "/v1/admin/aggregator-keys/{public_key}",
  tags: ["training-admin"],
  summary: "Register an aggregator Ed25519 public key (admin token only)",
  security,
  request: { params: AggregatorKeyParam },
  responses: { 201: jsonResponse(AggregatorKeyInfo, "Registered"), ...errorResponses(ADMIN_AUTH_ERRORS) },
});

const deleteAggregatorKey = createRoute({
  method: "delete",
  path: "/v1/admin/aggregator-keys/{public_key}",
  tags: ["training-admin"],
  summary: "Remove a registered aggregator key (admin token only; KV propagation can take up to a minute)",
  security,
  request: { params: AggregatorKeyParam },
  responses: { 204: { description: "Removed" }, ...errorResponses(ADMIN_AUTH_ERRORS) },
});

const router = createRouter();
router.use("/v1/admin/aggregator-keys/*", adminAuth(), requireAdminToken);

export const adminAggregatorKeys = router
  .openapi(putAggregatorKey, async (c) => {
    const public_key = canonicalKey32(c.req.valid("param").public_key);
    if (public_key === null) throw new FedgeError("validation_failed", 400, "public_key: must be 32 bytes");
    const created_at = new Date().toISOString();
    await c.env.REGISTRY.put(aggregatorKeyKvKey(public_key), JSON.stringify({ created_at }));
    return c.json({ public_key, created_at }, 201);
  })
  .openapi(deleteAggregatorKey, async (c) => {
    const public_key = canonicalKey32(c.req.valid("param").public_key);
    if (public_key === null) throw new FedgeError("validation_failed", 400, "public_key: must be 32 bytes");
    await c.env.REGISTRY.delete(aggregatorKeyKvKey(public_key));
    return c.body(null, 204);
  });
