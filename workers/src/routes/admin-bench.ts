/**
 * @module
 * Benchmark routes, admin only:
 * - `POST /v1/admin/bench/models/{name}/infer?n=N&version=V&path=v1|tensors`: runs N single-example inferences on a
 *   fixed input in one request and returns the count. Benchmarks time it from the client (inside a request
 *   `performance.now()` does not advance without I/O) and subtract the same request with `n=0`, leaving the compute
 *   per inference. `path=v1` (the default for models v1 `/predict` serves) runs the v1 fast path (`runBatch`, one
 *   float32 input); `path=tensors` (the default otherwise) runs named tensors as `/v2` infer does (`runTensors`) on
 *   `benchInputs` (@fedge/protocol: dynamic dims 1 on the first axis and 16 elsewhere, fixed values), which
 *   benchmarks feed onnxruntime-node too.
 * - `POST /v1/admin/bench/rounds/{model}/checkins?n=N&prefix=P&rpc=checkin|batch|read`: N first check-ins of devices
 *   `P0 … P(N−1)` into the population's collecting round (it writes them: use a bench population). `rpc=checkin`: one
 *   `RoundCoordinator.checkin` RPC after the other (a CSPRNG coin and a SQLite transaction each, each request committed
 *   to local storage); `rpc=batch`: all N inside one RPC per shard (`benchCheckins`: one commit each), so against `n=0`
 *   the difference is the objects' own work per check-in; `rpc=read`: N read-only RPCs to the population's object, the
 *   cost of a round trip to an object. A sharded population's devices go to their own shards (`shardOf` with the S of
 *   its newest round), as the check-in route sends them; the answer names that S. The
 *   clock advances at every RPC's completion (I/O), so the elapsed time is measured here, inside workerd
 *   (docs/SCALE.md sizes coordinator shards with it).
 */
import { createRoute, z } from "@hono/zod-openapi";
import { benchInputs, DEFAULT_TENANT, FedgeError, ModelName, ModelVersion } from "@fedge/protocol";
import { roundsStub, shardStub } from "../durable-objects/round-coordinator/index.ts";
import { shardOf } from "../training/shard-of.ts";
import { unwrap } from "../training/index.ts";
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

/** Most check-ins one bench request may run. */
export const MAX_BENCH_CHECKINS = 20_000;
/** A syntactically valid Ed25519 public key (32 zero bytes, base64url): the coordinator only records it. */
const BENCH_PUBLIC_KEY = "A".repeat(43);

const checkinsRoute = createRoute({
  method: "post",
  path: "/v1/admin/bench/rounds/{model}/checkins",
  tags: ["admin"],
  summary:
    "Benchmark: N first check-ins (or N read-only RPCs) against the population's coordinator, timed inside the edge runtime",
  security: [{ adminToken: [] }],
  middleware: [adminAuth()] as const,
  request: {
    params: z.object({ model: ModelName }),
    query: z.object({
      n: z.coerce.number().int().min(0).max(MAX_BENCH_CHECKINS),
      prefix: z.string().regex(/^dev_[A-Za-z0-9_-]{4,40}$/),
      rpc: z.enum(["checkin", "batch", "read"]).default("checkin"),
    }),
  },
  responses: {
    200: {
      description: "RPCs run and the wall time they took inside the edge runtime",
      content: {
        "application/json": {
          schema: z.object({
            runs: z.number().int(),
            selected: z.number().int(),
            shards: z.number().int(),
            elapsed_ms: z.number(),
          }),
        },
      },
    },
    ...errorResponses(400, 401, 403, 404, 409),
  },
});

adminBench.openapi(checkinsRoute, async (c) => {
  const { model } = c.req.valid("param");
  const { n, prefix, rpc } = c.req.valid("query");
  const population = roundsStub(c.env, model);
  // The S of the population's newest round: each device goes to its own shard, as the check-in route sends it.
  const { shards } = await population.routing();
  const ids = Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  let selected = 0;
  if (rpc === "batch") {
    // One RPC per shard with the devices that shard serves (S RPCs for n = 0: the baseline subtracts them).
    const byShard: string[][] = Array.from({ length: shards }, () => []);
    for (const id of ids) byShard[await shardOf(c.env, id, shards)]!.push(id);
    const t0 = Date.now();
    for (let i = 0; i < shards; i++) {
      const stub = shardStub(c.env, model, i, shards);
      selected += unwrap(await stub.benchCheckins(byShard[i]!, Date.now(), shards)).selected;
    }
    return c.json({ runs: n, selected, shards, elapsed_ms: Date.now() - t0 }, 200);
  }
  const t0 = Date.now();
  for (const id of ids) {
    if (rpc === "read") {
      await population.listRounds(1, Date.now());
      continue;
    }
    // The device's shard is computed per check-in, as the check-in route does (HMAC-SHA-256 of the id).
    const stub = shardStub(c.env, model, await shardOf(c.env, id, shards), shards);
    const { answer } = unwrap(await stub.checkin(id, BENCH_PUBLIC_KEY, "bench", Date.now(), DEFAULT_TENANT, shards));
    if (answer.selected) selected++;
  }
  return c.json({ runs: n, selected, shards, elapsed_ms: Date.now() - t0 }, 200);
});
