/**
 * @module
 * Admin registry writes: upload a new version (multipart: `model` = ONNX file, `manifest` = JSON, optional
 * `promote` = "true"), promote a version to serving, roll back to the previous serving version.
 * The multipart body is read as a stream (`registry/multipart.ts`: one copy of the model in memory, 413 as soon as
 * it passes the cap), or from the bytes the aggregator's signature check already read and hashed. An upload is validated in full before anything is stored (see `registry/validate.ts`),
 * including that onnxruntime-web loads it; that session is then already cached for inference.
 */
import { createRoute, z } from "@hono/zod-openapi";
import {
  FedgeError,
  MAX_MODEL_BYTES,
  ModelName,
  ModelUploadManifest,
  PromoteRequest,
  RegistryChange,
} from "@fedge/protocol";
import { adminAuth } from "../middleware/auth/index.ts";
import { isTrustedAggregatorKey } from "../middleware/aggregator-signature.ts";
import { createRouter, errorResponses, readBody } from "../middleware/validation/index.ts";
import { MAX_MODEL_UPLOAD_BYTES, cachedBody } from "../middleware/body-limit.ts";
import { promote, putVersion, readManifest, rollback, validateUpload } from "../registry/index.ts";
import { readMultipart } from "../registry/multipart.ts";
import { sessions } from "../inference/index.ts";
import { sessionKey } from "../inference/served-model.ts";

const NameParam = z.object({ name: ModelName });
const security = [{ adminToken: [] }];
/** Publishing (upload, promote) also takes the aggregator's request signature; rollback takes the admin token only. */
const publishSecurity: Record<string, string[]>[] = [{ adminToken: [] }, { aggregatorSignature: [] }];

const UploadForm = z.object({
  model: z
    .custom<File>((v) => v instanceof File, "expected an ONNX file part")
    .openapi({ type: "string", format: "binary", description: `The ONNX bytes (at most ${MAX_MODEL_BYTES} bytes)` }),
  manifest: z.string().openapi({ description: "ModelUploadManifest as JSON" }),
  promote: z.enum(["true", "false"]).optional().openapi({ description: "Serve this version right away" }),
});

const upload = createRoute({
  method: "post",
  path: "/v1/admin/models/{name}/versions",
  tags: ["admin"],
  summary: "Upload a new model version (validated; the first version of a model serves at once)",
  description:
    "Any ONNX model onnxruntime-web runs: several inputs and outputs, N-D shapes with fixed, symbolic or unknown " +
    "dimensions, float32/float16/int64/int32/int8/uint8/bool tensors, opsets 7–26, weights inside the file (no " +
    "external data). The body is read as a stream.",
  security: publishSecurity,
  middleware: [
    adminAuth({ aggregator: true }),
    readBody({ types: ["multipart/form-data"], maxBytes: MAX_MODEL_UPLOAD_BYTES, streamed: true }),
  ] as const,
  request: {
    params: NameParam,
    body: { required: true, content: { "multipart/form-data": { schema: UploadForm } } },
  },
  responses: {
    201: { description: "Stored", content: { "application/json": { schema: RegistryChange } } },
    ...errorResponses(400, 401, 403, 409, 413, 415),
  },
});

const serving = createRoute({
  method: "post",
  path: "/v1/admin/models/{name}/serving",
  tags: ["admin"],
  summary: "Promote a version to serving",
  security: publishSecurity,
  middleware: [adminAuth({ aggregator: true }), readBody({ types: ["application/json"] })] as const,
  request: {
    params: NameParam,
    body: { required: true, content: { "application/json": { schema: PromoteRequest } } },
  },
  responses: {
    200: { description: "Now serving", content: { "application/json": { schema: RegistryChange } } },
    ...errorResponses(400, 401, 403, 404, 409),
  },
});

const back = createRoute({
  method: "post",
  path: "/v1/admin/models/{name}/rollback",
  tags: ["admin"],
  summary: "Serve the previous serving version again",
  security,
  middleware: [adminAuth()] as const,
  request: { params: NameParam },
  responses: {
    200: { description: "Rolled back", content: { "application/json": { schema: RegistryChange } } },
    ...errorResponses(401, 403, 404, 409),
  },
});

function parseManifestField(text: string): ModelUploadManifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new FedgeError("invalid_json", 400, `manifest: malformed JSON: ${(err as Error).message}`);
  }
  const parsed = ModelUploadManifest.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new FedgeError(
      "validation_failed",
      400,
      `manifest.${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"}`,
    );
  }
  return parsed.data;
}

/** What runs: the documented route minus its body schema (the streaming reader takes the body, not the validator). */
const { middleware: _middleware, ...documentedUpload } = upload;
const runtimeUpload = { ...upload, request: { params: upload.request.params }, hide: true };

export const adminModels = createRouter();
adminModels.openAPIRegistry.registerPath(documentedUpload);
adminModels
  .openapi(runtimeUpload, async (c) => {
    const { name } = c.req.valid("param");
    const length = Number(c.req.header("content-length") ?? "NaN");
    const form = await readMultipart(
      (await cachedBody(c)) ?? c.req.raw.body,
      c.req.header("content-type"),
      { maxFileBytes: MAX_MODEL_BYTES, maxParts: 8, maxBodyBytes: MAX_MODEL_UPLOAD_BYTES },
      Number.isFinite(length) ? length : undefined,
    );
    const manifestText = form.fields.get("manifest");
    const file = form.files.get("model");
    if (!file) throw new FedgeError("validation_failed", 400, "model: expected an ONNX file part");
    if (manifestText === undefined) throw new FedgeError("validation_failed", 400, "manifest: required");
    const promoteField = form.fields.get("promote");
    if (promoteField !== undefined && promoteField !== "true" && promoteField !== "false") {
      throw new FedgeError("validation_failed", 400, 'promote: expected "true" or "false"');
    }
    const uploadManifest = parseManifestField(manifestText);
    const bytes = file.bytes;
    const now = Date.now();
    const manifest = await validateUpload(name, uploadManifest, bytes, now, {
      isTrustedSigner: (key) => isTrustedAggregatorKey(c.env, key),
    });
    // onnxruntime must load it (400 invalid_model otherwise); the session stays cached for /predict.
    await sessions.get(sessionKey(name, manifest.version, manifest.sha256), async () => bytes);
    const model = await putVersion(c.env, manifest, bytes, { promote: promoteField === "true", now });
    return c.json({ model, manifest }, 201);
  })
  .openapi(serving, async (c) => {
    const { name } = c.req.valid("param");
    const { version } = c.req.valid("json");
    const model = await promote(c.env, name, version, Date.now());
    return c.json({ model, manifest: await readManifest(c.env, name, version) }, 200);
  })
  .openapi(back, async (c) => {
    const { name } = c.req.valid("param");
    const model = await rollback(c.env, name, Date.now());
    const manifest = model.serving_version === null ? null : await readManifest(c.env, name, model.serving_version);
    return c.json({ model, manifest }, 200);
  });
