/**
 * @module
 * Public registry reads: the model list, one model with its serving manifest, a version's manifest, and the ONNX
 * bytes of a version (strong ETag = `"<sha256>"`, immutable caching, `If-None-Match` → 304 without reading R2).
 */
import { createRoute, z } from "@hono/zod-openapi";
import { FedgeError, ModelDetail, ModelList, ModelManifest, ModelName } from "@fedge/protocol";
import { createRouter, errorResponses } from "../middleware/validation/index.ts";
import { getOnnx, listModels, readManifest, requireIndex, requireVersion } from "../registry/index.ts";

const NameParam = z.object({ name: ModelName });
const VersionParam = z.object({ name: ModelName, version: z.coerce.number().int().min(1) });

const list = createRoute({
  method: "get",
  path: "/v1/models",
  tags: ["models"],
  summary: "List models",
  responses: { 200: { description: "Every model", content: { "application/json": { schema: ModelList } } } },
});

const detail = createRoute({
  method: "get",
  path: "/v1/models/{name}",
  tags: ["models"],
  summary: "A model: its versions, serving pointer and serving manifest",
  request: { params: NameParam },
  responses: {
    200: { description: "The model", content: { "application/json": { schema: ModelDetail } } },
    ...errorResponses(400, 404),
  },
});

const manifest = createRoute({
  method: "get",
  path: "/v1/models/{name}/versions/{version}",
  tags: ["models"],
  summary: "The manifest of one version",
  request: { params: VersionParam },
  responses: {
    200: { description: "The manifest", content: { "application/json": { schema: ModelManifest } } },
    ...errorResponses(400, 404),
  },
});

const IMMUTABLE = "public, max-age=31536000, immutable";

const download = createRoute({
  method: "get",
  path: "/v1/models/{name}/versions/{version}/model.onnx",
  tags: ["models"],
  summary: "The ONNX bytes of one version (immutable; ETag is the quoted sha256)",
  request: { params: VersionParam },
  responses: {
    200: {
      description: "ONNX model",
      headers: z.object({ ETag: z.string(), "Cache-Control": z.string() }),
      content: { "application/octet-stream": { schema: z.string().openapi({ type: "string", format: "binary" }) } },
    },
    304: { description: "Not modified (If-None-Match matched the ETag)" },
    ...errorResponses(400, 404),
  },
});

/** Does an `If-None-Match` header match `etag` (a quoted strong tag; weak comparison per RFC 9110 §13.1.2)? */
export function ifNoneMatchHits(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === "*") return true;
  return header.split(",").some((t) => t.trim().replace(/^W\//, "") === etag);
}

export const models = createRouter()
  .openapi(list, async (c) => c.json({ models: await listModels(c.env) }, 200))
  .openapi(detail, async (c) => {
    const { name } = c.req.valid("param");
    const index = await requireIndex(c.env, name);
    const serving = index.serving_version === null ? null : await readManifest(c.env, name, index.serving_version);
    return c.json({ ...index, serving }, 200);
  })
  .openapi(manifest, async (c) => {
    const { name, version } = c.req.valid("param");
    requireVersion(await requireIndex(c.env, name), version);
    const m = await readManifest(c.env, name, version);
    if (!m) throw new FedgeError("version_not_found", 404, `model ${name} has no version ${version}`);
    c.header("Cache-Control", IMMUTABLE);
    return c.json(m, 200);
  })
  .openapi(download, async (c) => {
    const { name, version } = c.req.valid("param");
    const summary = requireVersion(await requireIndex(c.env, name), version);
    const etag = `"${summary.sha256}"`;
    c.header("ETag", etag);
    c.header("Cache-Control", IMMUTABLE);
    if (ifNoneMatchHits(c.req.header("if-none-match"), etag)) return c.body(null, 304);
    const obj = await getOnnx(c.env, name, version);
    if (!obj || !("body" in obj))
      throw new FedgeError("version_not_found", 404, `model ${name} has no version ${version}`);
    c.header("Content-Type", "application/octet-stream");
    c.header("Content-Length", String(obj.size));
    return c.body(obj.body, 200);
  });
