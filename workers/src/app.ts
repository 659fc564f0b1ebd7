/**
 * @module
 * The fedge edge app: one Hono app, one error hook, one OpenAPI document.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import { swaggerUI } from "@hono/swagger-ui";
import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import { FedgeError, type ErrorEnvelope, type V2Error } from "@fedge/schemas";
import type { AppEnv } from "./env.ts";
import { health } from "./routes/health/index.ts";
import { adminKeys } from "./routes/admin-keys/index.ts";
import { usage } from "./routes/usage/index.ts";
import { models } from "./routes/models/index.ts";
import { predict } from "./routes/predict/index.ts";
import { adminModels } from "./routes/admin-models/index.ts";
import { adminBench } from "./routes/admin-bench/index.ts";
import { devices } from "./routes/devices/index.ts";
import { rounds } from "./routes/rounds/index.ts";
import { adminRounds } from "./routes/admin-rounds/index.ts";
import { v2 } from "./routes/v2/index.ts";

export function createApp() {
  const app = new OpenAPIHono<AppEnv>({
    // zod validation failures become the standard envelope, never zod's raw issue list.
    defaultHook: (result) => {
      if (!result.success) {
        const issue = result.error.issues[0];
        const where = issue && issue.path.length > 0 ? `${issue.path.join(".")}: ` : "";
        throw new FedgeError("validation_failed", 400, `${where}${issue?.message ?? "invalid request"}`);
      }
    },
  });

  // Web apps call the public API from their own origins (the SDK in a browser). Admin routes stay same-origin only:
  // operators and the aggregator call them from servers, so no browser page can drive them with a stolen token.
  const publicCors = cors({
    origin: "*",
    allowMethods: ["GET", "POST", "OPTIONS"],
    allowHeaders: [
      "authorization",
      "content-type",
      "if-none-match",
      "x-fedge-shape",
      "inference-header-content-length",
    ],
    exposeHeaders: ["etag", "retry-after", "x-request-id", "inference-header-content-length"],
    maxAge: 86400,
  });
  app.use("/v1/*", async (c, next) => (c.req.path.startsWith("/v1/admin/") ? next() : publicCors(c, next)));
  app.use("/v2/*", publicCors);
  app.use("/v2", publicCors);

  app.route("/", health);
  app.route("/", adminKeys);
  app.route("/", usage);
  app.route("/", models);
  app.route("/", predict);
  app.route("/", adminModels);
  app.route("/", adminBench);
  app.route("/", devices);
  app.route("/", rounds);
  app.route("/", adminRounds);
  app.route("/", v2);

  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "fedge edge API",
      version: "0.1.0",
      description:
        "ONNX inference at the edge (v1 predict and the Open Inference Protocol under /v2) and the edge half of " +
        "federated, differentially private training.",
    },
  });
  app.get("/docs", swaggerUI({ url: "/openapi.json" }));

  // The only place that writes the error envelope: `{"error":{"code","message"}}`, or on the Open Inference
  // Protocol's paths (`/v2…`) its form `{"error": message}` with fedge's `code` beside it.
  const errorBody = (path: string, code: string, message: string): ErrorEnvelope | V2Error =>
    path === "/v2" || path.startsWith("/v2/") ? { error: message, code } : { error: { code, message } };

  app.notFound((c) => c.json(errorBody(c.req.path, "not_found", `no route for ${c.req.method} ${c.req.path}`), 404));

  app.onError((err, c) => {
    if (err instanceof FedgeError) {
      return c.json(errorBody(c.req.path, err.code, err.message), err.status as 400);
    }
    if (err instanceof HTTPException) {
      const status = err.status;
      const code = status === 401 ? "unauthorized" : status === 403 ? "forbidden" : "bad_request";
      return c.json(errorBody(c.req.path, code, err.message || "request rejected"), status);
    }
    console.error("unhandled error", err);
    return c.json(errorBody(c.req.path, "internal", "internal error"), 500);
  });

  return app;
}
