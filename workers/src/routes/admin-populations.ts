/**
 * @module
 * `PUT /v1/admin/populations/:name/privacy-budget` (admin token only: the aggregator's signature cannot raise the
 * budget it spends): sets or changes a population's (ε_max, δ) and accountant. Every DP round of the population is
 * charged against it when it opens (`POST /v1/admin/rounds`); without one, no DP round opens.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { ModelName, PopulationPrivacyStatus, PrivacyBudgetRequest } from "@fedge/protocol";
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

const router = createRouter();
router.use("/v1/admin/populations/*", adminAuth(), requireAdminToken);

export const adminPopulations = router.openapi(putBudget, async (c) => {
  const { name } = c.req.valid("param");
  const budget = c.req.valid("json");
  const set = unwrap(await roundsStub(c.env, name).setPrivacyBudget({ model: name, budget, now: Date.now() }));
  return c.json(set.status, 200);
});
