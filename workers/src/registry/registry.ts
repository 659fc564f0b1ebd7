/**
 * @module
 * The model registry in R2 (strongly consistent, read-after-write):
 *
 * - `models/<name>/index.json` — the `ModelIndex` (versions, serving pointer, serving history);
 * - `models/<name>/versions/<v>/model.onnx` — immutable ONNX bytes (custom metadata `sha256`);
 * - `models/<name>/versions/<v>/manifest.json` — the version's `ModelManifest`.
 *
 * Writers serialise on the index with R2 conditional puts (compare-and-swap on its etag; create-if-absent for a
 * new model), so two concurrent uploads or promotes can never lose each other's change: the loser gets 409.
 * Readers keep a per-isolate copy of each index for `INDEX_CACHE_TTL_MS`, so a promote reaches every isolate within
 * that time (and the writing isolate at once).
 */
import { FedgeError, ModelIndex, ModelManifest, type ModelSummary, type ModelVersionSummary } from "@fedge/protocol";
import type { Bindings } from "../env.ts";

/** How long an isolate trusts its cached copy of a model index. */
export const INDEX_CACHE_TTL_MS = 1_000;

const indexKey = (name: string) => `models/${name}/index.json`;
const versionPrefix = (name: string, version: number) => `models/${name}/versions/${version}`;
export const onnxKey = (name: string, version: number) => `${versionPrefix(name, version)}/model.onnx`;
const manifestKey = (name: string, version: number) => `${versionPrefix(name, version)}/manifest.json`;

interface CachedIndex {
  index: ModelIndex | null;
  etag: string | null;
  at: number;
}
const indexCache = new Map<string, CachedIndex>();
const manifestCache = new Map<string, ModelManifest>();

/** Forget cached indexes (tests; another isolate's write is picked up after the TTL). */
export function clearRegistryCache(): void {
  indexCache.clear();
}

/** The model's index and its R2 etag, read fresh from R2. */
export async function readIndexFresh(
  env: Bindings,
  name: string,
): Promise<{ index: ModelIndex | null; etag: string | null }> {
  const obj = await env.MODELS.get(indexKey(name));
  if (!obj) return { index: null, etag: null };
  const index = ModelIndex.parse(await obj.json());
  return { index, etag: obj.etag };
}

/** The model's index (per-isolate cache, `INDEX_CACHE_TTL_MS`); `null` when the model does not exist. */
export async function readIndex(env: Bindings, name: string): Promise<ModelIndex | null> {
  const hit = indexCache.get(name);
  const now = Date.now();
  if (hit && now - hit.at < INDEX_CACHE_TTL_MS) return hit.index;
  const fresh = await readIndexFresh(env, name);
  indexCache.set(name, { ...fresh, at: now });
  return fresh.index;
}

/** The model's index, or 404 `model_not_found`. */
export async function requireIndex(env: Bindings, name: string): Promise<ModelIndex> {
  const index = await readIndex(env, name);
  if (!index) throw new FedgeError("model_not_found", 404, `no model named ${name}`);
  return index;
}

/** A version's summary, or 404 `version_not_found`. */
export function requireVersion(index: ModelIndex, version: number): ModelVersionSummary {
  const v = index.versions.find((s) => s.version === version);
  if (!v) throw new FedgeError("version_not_found", 404, `model ${index.name} has no version ${version}`);
  return v;
}

/** A version's manifest (immutable, cached per isolate). */
export async function readManifest(env: Bindings, name: string, version: number): Promise<ModelManifest | null> {
  const key = manifestKey(name, version);
  const hit = manifestCache.get(key);
  if (hit) return hit;
  const obj = await env.MODELS.get(key);
  if (!obj) return null;
  const manifest = ModelManifest.parse(await obj.json());
  manifestCache.set(key, manifest);
  return manifest;
}

/** Summaries of every model, by name. */
export async function listModels(env: Bindings): Promise<ModelSummary[]> {
  const names: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await env.MODELS.list({ prefix: "models/", delimiter: "/", ...(cursor ? { cursor } : {}) });
    for (const p of page.delimitedPrefixes) names.push(p.slice("models/".length, -1));
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  const indexes = await Promise.all(names.sort().map((n) => readIndex(env, n)));
  return indexes
    .filter((i): i is ModelIndex => i !== null)
    .map((i) => ({
      name: i.name,
      serving_version: i.serving_version,
      latest_version: i.versions.at(-1)?.version ?? null,
      updated_at: i.updated_at,
    }));
}

/**
 * Compare-and-swap the index: `etag` null means "create only if absent". Returns false when another writer got
 * there first.
 */
async function writeIndex(env: Bindings, index: ModelIndex, etag: string | null): Promise<boolean> {
  const body = JSON.stringify(index);
  const onlyIf: R2Conditional | Headers = etag ? { etagMatches: etag } : new Headers({ "if-none-match": "*" });
  const put = await env.MODELS.put(indexKey(index.name), body, {
    onlyIf,
    httpMetadata: { contentType: "application/json" },
  });
  if (!put) return false;
  indexCache.set(index.name, { index, etag: put.etag, at: Date.now() });
  return true;
}

function conflict(name: string): FedgeError {
  return new FedgeError("conflict", 409, `model ${name} was changed concurrently; retry`);
}

/**
 * Store a new, already validated version. The first version of a model (or `promote`) becomes the serving one.
 * 409 `conflict` when the version exists or another writer raced us.
 */
export async function putVersion(
  env: Bindings,
  manifest: ModelManifest,
  bytes: Uint8Array,
  options: { promote?: boolean; now: number },
): Promise<ModelIndex> {
  const { index: current, etag } = await readIndexFresh(env, manifest.name);
  if (current?.versions.some((v) => v.version === manifest.version)) {
    throw new FedgeError(
      "conflict",
      409,
      `model ${manifest.name} already has version ${manifest.version}; versions are immutable`,
    );
  }
  const onnx = await env.MODELS.put(onnxKey(manifest.name, manifest.version), bytes, {
    onlyIf: new Headers({ "if-none-match": "*" }),
    httpMetadata: { contentType: "application/octet-stream" },
    customMetadata: { sha256: manifest.sha256 },
    sha256: manifest.sha256,
  });
  if (!onnx) throw conflict(manifest.name);
  await env.MODELS.put(manifestKey(manifest.name, manifest.version), JSON.stringify(manifest), {
    httpMetadata: { contentType: "application/json" },
  });
  const summary: ModelVersionSummary = {
    version: manifest.version,
    sha256: manifest.sha256,
    size_bytes: manifest.size_bytes,
    created_at: manifest.created_at,
    quantization: manifest.quantization,
  };
  const base: ModelIndex = current ?? {
    name: manifest.name,
    serving_version: null,
    serving_history: [],
    versions: [],
    updated_at: new Date(options.now).toISOString(),
  };
  const serve = options.promote || base.serving_version === null;
  const next: ModelIndex = {
    ...base,
    versions: [...base.versions, summary].sort((a, b) => a.version - b.version),
    ...(serve && base.serving_version !== manifest.version
      ? {
          serving_version: manifest.version,
          serving_history:
            base.serving_version === null ? base.serving_history : [...base.serving_history, base.serving_version],
        }
      : {}),
    updated_at: new Date(options.now).toISOString(),
  };
  if (!(await writeIndex(env, next, etag))) {
    // Leave no orphan bytes behind: the version was never listed.
    await env.MODELS.delete([onnxKey(manifest.name, manifest.version), manifestKey(manifest.name, manifest.version)]);
    throw conflict(manifest.name);
  }
  return next;
}

/** Point serving at `version` (must exist); the previous serving version goes onto the history. */
export async function promote(env: Bindings, name: string, version: number, now: number): Promise<ModelIndex> {
  const { index, etag } = await readIndexFresh(env, name);
  if (!index) throw new FedgeError("model_not_found", 404, `no model named ${name}`);
  requireVersion(index, version);
  if (index.serving_version === version) return index;
  const next: ModelIndex = {
    ...index,
    serving_version: version,
    serving_history:
      index.serving_version === null ? index.serving_history : [...index.serving_history, index.serving_version],
    updated_at: new Date(now).toISOString(),
  };
  if (!(await writeIndex(env, next, etag))) throw conflict(name);
  return next;
}

/** Serve the previous serving version again. 409 `conflict` when there is none. */
export async function rollback(env: Bindings, name: string, now: number): Promise<ModelIndex> {
  const { index, etag } = await readIndexFresh(env, name);
  if (!index) throw new FedgeError("model_not_found", 404, `no model named ${name}`);
  const previous = index.serving_history.at(-1);
  if (previous === undefined)
    throw new FedgeError("conflict", 409, `model ${name} has no earlier serving version to roll back to`);
  const next: ModelIndex = {
    ...index,
    serving_version: previous,
    serving_history: index.serving_history.slice(0, -1),
    updated_at: new Date(now).toISOString(),
  };
  if (!(await writeIndex(env, next, etag))) throw conflict(name);
  return next;
}

/** The ONNX object of a version (with R2 conditional GET support for If-None-Match). */
export async function getOnnx(
  env: Bindings,
  name: string,
  version: number,
  onlyIf?: Headers,
): Promise<R2ObjectBody | R2Object | null> {
  return env.MODELS.get(onnxKey(name, version), onlyIf ? { onlyIf } : {});
}

/** The ONNX bytes of a version (R2 checked their sha256 when they were stored). */
export async function readOnnxBytes(env: Bindings, name: string, version: number): Promise<Uint8Array> {
  const obj = await env.MODELS.get(onnxKey(name, version));
  if (!obj) throw new FedgeError("version_not_found", 404, `model ${name} has no version ${version}`);
  return new Uint8Array(await obj.arrayBuffer());
}
