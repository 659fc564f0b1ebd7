/**
 * @module
 * The Open Inference Protocol (KServe v2 / Triton HTTP/REST) for every model in the registry:
 *
 * - `GET /v2`, `GET /v2/health/live`, `GET /v2/health/ready`: server metadata (extension `binary_tensor_data`) and
 *   health;
 * - `GET /v2/models/{name}[/versions/{version}]`: model metadata, inputs and outputs with datatype and shape;
 * - `POST /v2/models/{name}[/versions/{version}]/infer`: inference. JSON (`application/json`) or the binary tensor
 *   extension (`Inference-Header-Content-Length: n`, the JSON header then the raw tensors). Every input is checked
 *   against the model (`decodeV2Request`: names, datatypes, shapes, element counts, value ranges) before it runs.
 *   API key, rate limit and metering (input tensor elements) as v1 `/predict`.
 *
 * Errors on `/v2` paths take the protocol's form `{"error": "message"}` plus fedge's `code` (written by `app.onError`).
 */
import { createRoute, z } from "@hono/zod-openapi";
import {
  decodeV2Request,
  ModelName,
  parseHeaderLength,
  parseV2InferRequest,
  splitInferBody,
  INFERENCE_HEADER_LENGTH,
  MAX_INFER_BODY_BYTES,
  MAX_INFER_ELEMENTS,
  V2Error,
  V2InferRequest,
  V2InferResponse,
  V2ModelMetadata,
  V2ServerMetadata,
} from "@fedge/protocol";
import { apiKeyAuth } from "../../middleware/auth/index.ts";
import { meter } from "../../middleware/metering.ts";
import { createRouter, mediaType, readBody } from "../../middleware/validation/index.ts";
import { modelSignatures, resolveVersion, servedSession } from "../../inference/served-model.ts";
import { runTensors } from "../../inference/session-cache.ts";
import { encodeInferResponse, modelMetadata } from "./encode.ts";

const NameParam = z.object({ name: ModelName });
const VersionParams = z.object({
  name: ModelName,
  version: z.coerce.number().int().min(1).openapi({ type: "string", example: "1" }),
});

function v2Errors(...statuses: (400 | 401 | 403 | 404 | 413 | 415 | 429)[]) {
  const out: Record<number, { description: string; content: { "application/json": { schema: typeof V2Error } } }> = {};
  for (const s of statuses) {
    out[s] = {
      description: `Error in the v2 form {"error", "code"} (${s})`,
      content: { "application/json": { schema: V2Error } },
    };
  }
  return out;
}

const server = createRoute({
  method: "get",
  path: "/v2",
  tags: ["inference v2"],
  summary: "Server metadata",
  responses: { 200: { description: "Server", content: { "application/json": { schema: V2ServerMetadata } } } },
});

const live = createRoute({
  method: "get",
  path: "/v2/health/live",
  tags: ["inference v2"],
  summary: "Liveness",
  responses: { 200: { description: "Live" } },
});

const ready = createRoute({
  method: "get",
  path: "/v2/health/ready",
  tags: ["inference v2"],
  summary: "Readiness",
  responses: { 200: { description: "Ready" } },
});

const metadataRoute = (versioned: boolean) =>
  createRoute({
    method: "get",
    path: versioned ? "/v2/models/{name}/versions/{version}" : "/v2/models/{name}",
    tags: ["inference v2"],
    summary: versioned ? "Metadata of one model version" : "Metadata of the serving version of a model",
    request: { params: versioned ? VersionParams : NameParam },
    responses: {
      200: { description: "Model metadata", content: { "application/json": { schema: V2ModelMetadata } } },
      ...v2Errors(400, 404),
    },
  });

const inferRoute = (versioned: boolean) =>
  createRoute({
    method: "post",
    path: versioned ? "/v2/models/{name}/versions/{version}/infer" : "/v2/models/{name}/infer",
    tags: ["inference v2"],
    summary: versioned ? "Inference on one model version" : "Inference on the serving version",
    description:
      "`application/json` body `{inputs: [{name, shape, datatype, data}], outputs?: [{name}]}`; or the binary " +
      "tensor extension: `application/octet-stream` with `Inference-Header-Content-Length: n`, the n-byte JSON " +
      "header (inputs carry `parameters.binary_data_size` instead of `data`) followed by the raw little-endian " +
      "tensors in input order. Outputs come back as JSON `data` unless `parameters.binary_data_output` (request) or " +
      "`parameters.binary_data` (output) is true; then the response is binary the same way. Every input is " +
      "checked: name, datatype, shape (fixed dims, consistent symbolic dims), element count, value range. At most " +
      `${MAX_INFER_BODY_BYTES} bytes and ${MAX_INFER_ELEMENTS} input elements per call.`,
    security: [{ apiKey: [] }],
    middleware: [
      apiKeyAuth(),
      readBody({ types: ["application/json", "application/octet-stream"], maxBytes: MAX_INFER_BODY_BYTES }),
    ] as const,
    request: {
      params: versioned ? VersionParams : NameParam,
      headers: z.object({ [INFERENCE_HEADER_LENGTH]: z.string().optional() }),
      body: {
        required: true,
        content: {
          "application/json": { schema: V2InferRequest },
          "application/octet-stream": {
            schema: z.string().openapi({ type: "string", format: "binary", description: "JSON header + tensors" }),
          },
        },
      },
    },
    responses: {
      200: {
        description: "Outputs (JSON, or binary with Inference-Header-Content-Length)",
        content: {
          "application/json": { schema: V2InferResponse },
          "application/octet-stream": { schema: z.string().openapi({ type: "string", format: "binary" }) },
        },
      },
      ...v2Errors(400, 401, 403, 404, 413, 415, 429),
    },
  });

/** The documented infer routes run with the body taken by `readBody` and checked by `decodeV2Request`. */
function runtime<R extends ReturnType<typeof inferRoute>>(route: R) {
  return { ...route, request: { params: route.request.params }, hide: true };
}

export const v2 = createRouter();
for (const versioned of [false, true]) {
  const { middleware: _middleware, ...documented } = inferRoute(versioned);
  v2.openAPIRegistry.registerPath(documented);
}

v2.openapi(server, (c) => c.json({ name: "fedge", version: "0.1.0", extensions: ["binary_tensor_data"] }, 200));
v2.openapi(live, (c) => c.body(null, 200));
v2.openapi(ready, (c) => c.body(null, 200));

for (const versioned of [false, true]) {
  v2.openapi(metadataRoute(versioned), async (c) => {
    const params = c.req.valid("param") as { name: string; version?: number };
    const served = await resolveVersion(c.env, params.name, params.version);
    return c.json(modelMetadata(served.manifest, served.versions), 200);
  });

  v2.openapi(runtime(inferRoute(versioned)), async (c) => {
    const params = c.req.valid("param") as { name: string; version?: number };
    // Structure first (400 before 404), as v1 /predict does; then the model, then the tensors against it.
    const headerLength = parseHeaderLength(c.req.header(INFERENCE_HEADER_LENGTH));
    let json: unknown;
    let tail: Uint8Array = new Uint8Array(0);
    if (headerLength === null && mediaType(c.req.header("content-type")) === "application/json") {
      json = await c.req.json(); // parsed once, by readBody
    } else {
      ({ json, tail } = splitInferBody(new Uint8Array(await c.req.arrayBuffer()), headerLength));
    }
    const request = parseV2InferRequest(json);
    const served = await resolveVersion(c.env, params.name, params.version);
    const model = await servedSession(c.env, served);
    const decoded = decodeV2Request(request, tail, modelSignatures(model, served.manifest), {
      binaryByDefault: false,
      maxElements: MAX_INFER_ELEMENTS,
    });
    const values = await runTensors(
      model,
      decoded.feeds,
      decoded.outputs.map((o) => o.name),
    );
    c.executionCtx.waitUntil(meter(c, { inputElements: decoded.elements }));
    const out = encodeInferResponse(
      { name: served.name, version: served.version, id: decoded.id },
      decoded.outputs,
      values,
    );
    if (out.headerLength === null) {
      return c.body(out.body as string, 200, { "content-type": "application/json" });
    }
    return c.body(out.body as Uint8Array<ArrayBuffer>, 200, {
      "content-type": "application/octet-stream",
      [INFERENCE_HEADER_LENGTH]: String(out.headerLength),
    });
  });
}
