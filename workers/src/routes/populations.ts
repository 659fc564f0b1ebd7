/**
 * @module
 * `GET /v1/populations/:name/privacy`: a population's privacy budget and spend, as the edge's ledger keeps them: the
 * budget (ε_max, δ) and accountant, ε spent and left, and every charged round (id, q, z, σ_b, mode, clip rule, time).
 *
 * Public, no credential: the guarantee is a statement to the people whose devices train the model and to everyone who
 * uses the models it publishes (their manifests already carry ε), and devices should be able to check it before they
 * take part. It holds no device counts and nothing about any device: only what the aggregator was allowed to release.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { ModelName, PopulationPrivacyStatus } from "@fedge/protocol";
import { createRouter, errorResponses, jsonResponse } from "../middleware/validation/index.ts";
import { roundsStub } from "../durable-objects/round-coordinator/index.ts";

const privacy = createRoute({
  method: "get",
  path: "/v1/populations/{name}/privacy",
  tags: ["training"],
  summary: "A population's privacy budget, ε spent and left, and its charged rounds (public, no device counts)",
  request: { params: z.object({ name: ModelName }) },
  responses: {
    200: jsonResponse(PopulationPrivacyStatus, "The population's ledger"),
    ...errorResponses(400),
  },
});

export const populations = createRouter().openapi(privacy, async (c) => {
  const { name } = c.req.valid("param");
  return c.json(await roundsStub(c.env, name).privacyStatus(name), 200);
});
