/**
 * @module
 * The fedge edge app: one Hono app, one error hook, one OpenAPI document.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import { swaggerUI } from "@hono/swagger-ui";
import { cors } from "hono/cors";
import type { ErrorEnvelope, V2Error } from "@fedge/protocol";
import type { AppEnv } from "./env.ts";
import { edgeError } from "./errors.ts";
import { validationHook } from "./middleware/validation/index.ts";
import { bodyLimit } from "./middleware/body-limit.ts";
import { health } from "./routes/health.ts";
import { adminKeys } from "./routes/admin-keys.ts";
import { usage } from "./routes/usage.ts";
import { models } from "./routes/models.ts";
import { predict } from "./routes/predict/index.ts";
import { adminModels } from "./routes/admin-models.ts";
import { adminBench } from "./routes/admin-bench.ts";
import { devices } from "./routes/devices.ts";
import { rounds } from "./routes/rounds.ts";
import { secagg } from "./routes/secagg.ts";
import { adminRounds } from "./routes/admin-rounds.ts";
import { adminDevices } from "./routes/admin-devices.ts";
import { adminAggregatorKeys } from "./routes/admin-aggregator-keys.ts";
import { populations } from "./routes/populations.ts";
import { adminPopulations } from "./routes/admin-populations.ts";
import { v2 } from "./routes/v2/index.ts";
import { edgeKeys } from "./routes/edge-key.ts";
import { dashboard } from "./dashboard/index.tsx";

export function createApp() {
  // zod validation failures become the standard envelope, never zod's raw issue list (the routers use the same hook).
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  // A declared body over the route's cap is refused before anything else (middleware/body-limit.ts).
  app.use("*", bodyLimit());

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
      "x-fedge-timestamp",
      "x-fedge-signature",
      "inference-header-content-length",
    ],
    exposeHeaders: ["etag", "retry-after", "x-request-id", "inference-header-content-length"],
    maxAge: 86400,
  });
  app.use("/v1/*", async (c, next) => (c.req.path.startsWith("/v1/admin/") ? next() : publicCors(c, next)));
  app.use("/v2/*", publicCors);
  app.use("/v2", publicCors);
  // The SDK reads the edge's receipt key from a web app's origin too.
  app.use("/.well-known/*", publicCors);

  app.route("/", health);
  app.route("/", adminKeys);
  app.route("/", usage);
  app.route("/", models);
  app.route("/", predict);
  app.route("/", adminModels);
  app.route("/", adminBench);
  app.route("/", devices);
  app.route("/", rounds);
  app.route("/", secagg);
  app.route("/", adminRounds);
  app.route("/", adminDevices);
  app.route("/", adminAggregatorKeys);
  app.route("/", populations);
  app.route("/", adminPopulations);
  app.route("/", edgeKeys);
  app.route("/", v2);
  // The operator dashboard (HTML; its own error pages, never the JSON envelope).
  app.route("/", dashboard);

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
  // Protocol's paths (`/v2…`) its form `{"error": message}` with fedge's `code` beside it. errors.ts says what each
  // kind of error maps to.
  const errorBody = (path: string, code: string, message: string): ErrorEnvelope | V2Error =>
    path === "/v2" || path.startsWith("/v2/") ? { error: message, code } : { error: { code, message } };

  app.notFound((c) => c.json(errorBody(c.req.path, "not_found", `no route for ${c.req.method} ${c.req.path}`), 404));

  app.onError((err, c) => {
    const mapped = edgeError(err);
    if (mapped) return c.json(errorBody(c.req.path, mapped.code, mapped.message), mapped.status as 400);
    console.error("unhandled error", err);
    return c.json(errorBody(c.req.path, "internal", "internal error"), 500);
  });

  return app;
}
