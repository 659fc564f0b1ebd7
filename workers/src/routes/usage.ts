/**
 * @module
 * The key owner's own usage: `GET /v1/usage` with the API key.
 */
import { createRoute } from "@hono/zod-openapi";
import { ErrorEnvelope, FedgeError, UsageQuery, UsageReport } from "@fedge/schemas";
import { createRouter } from "../middleware/validation/index.ts";
import { apiKeyAuth, ledgerFor } from "../middleware/auth/index.ts";
import { settleUsage } from "../middleware/metering.ts";

const route = createRoute({
  method: "get",
  path: "/v1/usage",
  tags: ["keys"],
  summary: "Usage of the calling API key per UTC day",
  security: [{ apiKey: [] }],
  middleware: [apiKeyAuth()] as const,
  request: { query: UsageQuery },
  responses: {
    200: { description: "Usage per day", content: { "application/json": { schema: UsageReport } } },
    400: { description: "Invalid query", content: { "application/json": { schema: ErrorEnvelope } } },
    401: { description: "Missing or unknown key", content: { "application/json": { schema: ErrorEnvelope } } },
    403: { description: "Revoked key", content: { "application/json": { schema: ErrorEnvelope } } },
    429: { description: "Rate limited", content: { "application/json": { schema: ErrorEnvelope } } },
  },
});

export const usage = createRouter().openapi(route, async (c) => {
  const key = c.get("apiKey");
  // Usage buffered in this isolate is written first (metering.ts: other isolates lag ≤ METER_FLUSH_MS).
  await settleUsage(c.env);
  const report = await ledgerFor(c.env, key.id).usage(c.req.valid("query"));
  if (!report) throw new FedgeError("unauthorized", 401, "unknown API key");
  return c.json(report, 200);
});
