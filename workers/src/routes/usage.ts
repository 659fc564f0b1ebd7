/**
 * @module
 * The key owner's own usage: `GET /v1/usage` with the API key.
 */
import { createRoute } from "@hono/zod-openapi";
import { FedgeError, UsageQuery, UsageReport } from "@fedge/protocol";
import { createRouter, errorResponses } from "../middleware/validation/index.ts";
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
    ...errorResponses({
      400: "Invalid query",
      401: "Missing or unknown key",
      403: "Revoked key",
      429: "Rate limited",
    }),
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
