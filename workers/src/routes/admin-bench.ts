/**
 * @module
 * `POST /v1/admin/bench/models/{name}/infer?n=N&version=V&path=v1|tensors`: runs N single-example inferences on a
 * fixed input in one request and returns the count. Benchmarks time it from the client (inside a request
 * `performance.now()` does not advance without I/O) and subtract the same request with `n=0`, leaving the compute
 * per inference. Admin only.
 *
 * `path=v1` (the default for models v1 `/predict` serves) runs the v1 fast path (`runBatch`, one float32 input);
 * `path=tensors` (the default otherwise) runs named tensors as `/v2` infer does (`runTensors`) on `benchInputs`
 * (@fedge/protocol: dynamic dims 1 on the first axis and 16 elsewhere, fixed values), which benchmarks feed
 * onnxruntime-node too.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { benchInputs, FedgeError, ModelName, ModelVersion } from "@fedge/protocol";
import { adminAuth } from "../middleware/auth/index.ts";
import { createRouter, errorResponses } from "../middleware/validation/index.ts";
import { servableShape } from "../registry/index.ts";
import { runBatch, runTensors } from "../inference/index.ts";
import { modelSignatures, resolveVersion, servedSession } from "../inference/served-model.ts";

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
      path: z.enum(["v1", "tensors"]).optional(),
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

function v1Shape(manifest: Parameters<typeof servableShape>[0]): ReturnType<typeof servableShape> | null {
  try {
    return servableShape(manifest);
  } catch {
    return null;
  }
}

export const adminBench = createRouter().openapi(route, async (c) => {
  const { name } = c.req.valid("param");
  const { n, version, path } = c.req.valid("query");
  const served = await resolveVersion(c.env, name, version);
  const model = await servedSession(c.env, served);
  const v1 = v1Shape(served.manifest);
  let checksum = 0;
  if ((path ?? (v1 ? "v1" : "tensors")) === "v1") {
    if (!v1) throw new FedgeError("invalid_model", 400, `model ${name} has no v1 /predict path`);
    const input = new Float32Array(v1.features).fill(0.5);
    for (let i = 0; i < n; i++) {
      const out = await runBatch(model, input, [1, ...v1.featureShape]);
      checksum += out.data[0]!;
    }
  } else {
    const { inputs, outputs } = modelSignatures(model, served.manifest);
    const feeds = benchInputs(inputs);
    const first = outputs[0]!.name;
    for (let i = 0; i < n; i++) {
      const out = await runTensors(model, feeds, [first]);
      checksum += Number(out[first]!.data[0]);
    }
  }
  return c.json({ runs: n, checksum }, 200);
});
