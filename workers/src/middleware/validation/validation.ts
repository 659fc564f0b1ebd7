/**
 * @module
 * Every sub-app needs the same zod failure hook as the root app: `@hono/zod-openapi` uses the hook of the app a
 * route was registered on, not the app it is mounted into. `createRouter()` returns a sub-app wired that way.
 */
import { OpenAPIHono, type Hook } from "@hono/zod-openapi";
import { FedgeError } from "@fedge/protocol";
import type { AppEnv } from "../../env.ts";

/** zod validation failures become `FedgeError("validation_failed", 400)`, never zod's raw issue list. */
export const validationHook: Hook<any, AppEnv, any, any> = (result) => {
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue && issue.path.length > 0 ? `${issue.path.join(".")}: ` : "";
    throw new FedgeError("validation_failed", 400, `${where}${issue?.message ?? "invalid request"}`);
  }
};

/**
 * A route group with the envelope-producing validation hook and fedge's security schemes (`apiKey`, `adminToken`,
 * `aggregatorSignature`) registered for `security: [...]` in its routes. Mount it with `app.route("/", router)`.
 */
export function createRouter(): OpenAPIHono<AppEnv> {
  const router = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  router.openAPIRegistry.registerComponent("securitySchemes", "apiKey", {
    type: "http",
    scheme: "bearer",
    description: "An API key `fk_<id>_<secret>` (created by an admin with POST /v1/admin/keys)",
  });
  router.openAPIRegistry.registerComponent("securitySchemes", "adminToken", {
    type: "http",
    scheme: "bearer",
    description: "The edge's admin token (FEDGE_ADMIN_TOKEN)",
  });
  router.openAPIRegistry.registerComponent("securitySchemes", "aggregatorSignature", {
    type: "apiKey",
    in: "header",
    name: "x-fedge-signature",
    description:
      "The aggregator's Ed25519 request signature (with x-fedge-aggregator-key, x-fedge-timestamp and x-fedge-nonce; single use; round and publish routes only; contract in @fedge/protocol admin-auth)",
  });
  return router;
}
