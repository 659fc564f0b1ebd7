/**
 * @module
 * `POST /v1/admin/bench/models/{name}/infer?n=N&version=V`: runs N single-example inferences on a fixed input in one
 * request and returns the count. Benchmarks time it from the client (inside a request `performance.now()` does not
 * advance without I/O) and subtract the same request with `n=0`, leaving the compute per inference. Admin only.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { FedgeError, ModelName, ModelVersion } from "@fedge/protocol";
import { adminAuth } from "../middleware/auth/index.ts";
import { createRouter, errorResponses } from "../middleware/validation/index.ts";
import { readManifest, readOnnxBytes, requireIndex, requireVersion, servableShape } from "../registry/index.ts";
import { runBatch, sessions } from "../inference/index.ts";
import { sessionKey } from "./predict/index.ts";

/** Most inferences one bench request may run. */
export const MAX_BENCH_INFERENCES = 20_000;

const route = createRoute({
  method: "post",
  path: "/v1/admin/bench/models/{name}/infer",
  tags: ["admin"],
  summary: "Benchmark: run N single-example inferences in one request (timed by the caller)",
  security: [{ adminToken: [] }],
  middleware: [adminAuth()] as const,
  request: {
    params: z.object({ name: ModelName }),
    query: z.object({
      n: z.coerce.number().int().min(0).max(MAX_BENCH_INFERENCES),
      version: z.coerce.number().pipe(ModelVersion).optional(),
    }),
  },
  responses: {
    200: {
      description: "Inferences run",
      content: { "application/json": { schema: z.object({ runs: z.number().int(), checksum: z.number() }) } },
    },
    ...errorResponses(400, 401, 403, 404),
  },
});

export const adminBench = createRouter().openapi(route, async (c) => {
  const { name } = c.req.valid("param");
  const { n, version: pinned } = c.req.valid("query");
  const index = await requireIndex(c.env, name);
  const version = pinned ?? index.serving_version;
  if (version === null) throw new FedgeError("version_not_found", 404, `model ${name} has no serving version`);
  const summary = requireVersion(index, version);
  const manifest = await readManifest(c.env, name, version);
  if (!manifest) throw new FedgeError("version_not_found", 404, `model ${name} has no version ${version}`);
  const { featureShape, features } = servableShape(manifest);
  const model = await sessions.get(sessionKey(name, version, summary.sha256), () =>
    readOnnxBytes(c.env, name, version),
  );
  const input = new Float32Array(features).fill(0.5);
  let checksum = 0;
  for (let i = 0; i < n; i++) {
    const out = await runBatch(model, input, [1, ...featureShape]);
    checksum += out.data[0]!;
  }
  return c.json({ runs: n, checksum }, 200);
});
