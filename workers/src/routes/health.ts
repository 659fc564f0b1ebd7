/**
 * @module
 * Liveness: answers without touching storage, so it doubles as the no-op baseline in benchmarks.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { AppEnv } from "../env.ts";

const Health = z.object({ status: z.literal("ok"), service: z.literal("fedge"), time: z.string() }).openapi("Health");

const route = createRoute({
  method: "get",
  path: "/v1/health",
  tags: ["meta"],
  summary: "Liveness probe",
  responses: { 200: { description: "The edge is up", content: { "application/json": { schema: Health } } } },
});

export const health = new OpenAPIHono<AppEnv>().openapi(route, (c) =>
  c.json({ status: "ok" as const, service: "fedge" as const, time: new Date().toISOString() }, 200),
);
