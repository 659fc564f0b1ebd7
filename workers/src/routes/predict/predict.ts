/**
 * @module
 * `POST /v1/models/{name}/predict`: one float32 batch through the model's serving version (or `?version=`), run by
 * onnxruntime-web in this isolate (one cached session per model version). API key required; rate limited; the
 * call and its input elements are metered once the prediction succeeded. This is the fast path for models with one
 * float32 input `[batch, ...fixed]` (an MLP, a CNN); every model is served by `/v2/models/{name}/infer`.
 */
import { createRoute, z } from "@hono/zod-openapi";
import {
  MAX_PREDICT_BODY_BYTES,
  ModelName,
  PredictQuery,
  PredictRequest,
  PredictResponse,
  PREDICT_SHAPE_HEADER,
} from "@fedge/protocol";
import { apiKeyAuth } from "../../middleware/auth/index.ts";
import { meter } from "../../middleware/metering.ts";
import { createRouter, errorResponses, parseJsonBytes, readBody } from "../../middleware/validation/index.ts";
import { servableShape } from "../../registry/index.ts";
import { runBatch } from "../../inference/index.ts";
import { resolveVersion, servedSession } from "../../inference/served-model.ts";
import { checkJsonBody, decodeBinaryBatch, decodeJsonBody, parseShapeHeader, type DecodedBatch } from "./decode.ts";
import { readJsonRows } from "./json-rows.ts";

const route = createRoute({
  method: "post",
  path: "/v1/models/{name}/predict",
  tags: ["inference"],
  summary: "Run the model on a batch",
  description:
    'Body: `application/json` `{"inputs": number[][]}` (one row per example), or `{"inputs_b64", "shape"}` ' +
    "(little-endian float32 bytes in base64), or `application/octet-stream` raw little-endian float32 bytes with an " +
    "optional `x-fedge-shape: n,784` header. At most 128 examples and 2 MiB per call.",
  security: [{ apiKey: [] }],
  middleware: [
    apiKeyAuth(),
    readBody({
      types: ["application/json", "application/octet-stream"],
      maxBytes: MAX_PREDICT_BODY_BYTES,
      parseJson: false,
    }),
  ] as const,
  request: {
    params: z.object({ name: ModelName }),
    query: PredictQuery,
    body: {
      required: false,
      content: {
        "application/json": { schema: PredictRequest },
        "application/octet-stream": { schema: z.string().openapi({ type: "string", format: "binary" }) },
      },
    },
  },
  responses: {
    200: { description: "One output row per example", content: { "application/json": { schema: PredictResponse } } },
    ...errorResponses(400, 401, 403, 404, 413, 415, 429),
  },
});

/**
 * What runs: the documented route minus its body schema. A `{"inputs": number[][]}` body is read straight from its
 * bytes into the float32 batch (`readJsonRows`); anything else is parsed with `JSON.parse` and validated against
 * `PredictRequest` by `checkJsonBody` (a hand-written loop that also builds the batch; zod over 25,000 numbers cost
 * about as much as the parse itself), so every body is read once and gets the same answer either way.
 */
const { middleware: _middleware, ...documented } = route;
const runtime = { ...route, request: { params: route.request.params, query: route.request.query }, hide: true };

export const predict = createRouter();
predict.openAPIRegistry.registerPath(documented);
predict.openapi(runtime, async (c) => {
  const { name } = c.req.valid("param");
  const query = c.req.valid("query");
  const isBinary = c.req.header("content-type")?.toLowerCase().startsWith("application/octet-stream") ?? false;
  // Body structure first (400 before 404), as a validator would; shape against the model after the lookup.
  let json = null;
  if (!isBinary) {
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    json = readJsonRows(bytes) ?? checkJsonBody(parseJsonBytes(bytes));
  }
  const served = await resolveVersion(c.env, name, query.version);
  const { version, manifest } = served;
  const { featureShape, features } = servableShape(manifest);

  let batch: DecodedBatch;
  if (json) {
    batch = decodeJsonBody(json, featureShape, features);
  } else {
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    batch = decodeBinaryBatch(bytes, parseShapeHeader(c.req.header(PREDICT_SHAPE_HEADER)), featureShape, features);
  }

  const model = await servedSession(c.env, served);
  const result = await runBatch(model, batch.data, batch.shape);
  const outputs: number[][] = [];
  for (let i = 0; i < result.batch; i++) {
    outputs.push(Array.from(result.data.subarray(i * result.perExample, (i + 1) * result.perExample)));
  }
  // Metered once the prediction succeeded, buffered per isolate and written in one ledger call per key and day at
  // most METER_FLUSH_MS later (middleware/metering): no Durable Object round trip per request.
  c.executionCtx.waitUntil(meter(c, { inputElements: batch.data.length }));
  return c.json({ outputs, model: name, version }, 200);
});
