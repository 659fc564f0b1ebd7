/**
 * @module
 * The model registry in R2 (strongly consistent, read-after-write):
 *
 * - `models/<name>/index.json` — the `ModelIndex` (versions, serving pointer, serving history);
 * - `models/<name>/versions/<v>/model.onnx` — immutable ONNX bytes (custom metadata `sha256`);
 * - `models/<name>/versions/<v>/manifest.json` — the version's `ModelManifest`.
 *
 * Writers serialise on the index with R2 conditional puts (compare-and-swap on its etag; create-if-absent for a
 * new model), so two concurrent uploads or promotes can never lose each other's change: the loser retries on the new
 * index, or gets 409 when its change no longer applies (the version exists).
 *
 * A version's bytes are stored before the index lists it, so a crash (or a failed R2 call) in between leaves an
 * orphan: bytes no index lists. An orphan is never served (readers go through the index) and is recovered by the next
 * upload of that version: the same bytes are adopted as they are, different bytes replace it once it is older than
 * `ORPHAN_GRACE_MS` (younger ones may belong to an upload still in flight: 409, retry later).
 *
 * An audit shadow (`ModelIndex.audit_of`, created by {@link createAuditShadow} only) is never served: its uploads
 * are stored unpromoted, and a promote or rollback is refused with 409 `audit_shadow`. Names with the `-audit-` infix
 * are reserved for shadows, so a plain upload cannot create one that serves.
 *
 * Readers keep a per-isolate copy of each index for `INDEX_CACHE_TTL_MS`, so a promote reaches every isolate within
 * that time (and the writing isolate at once); the model list is kept as long. Both caches are bounded: the index
 * cache is keyed by whatever name a caller sends, so it keeps at most `INDEX_CACHE_MAX` names (oldest dropped first).
 */
import {
  FedgeError,
  isAuditShadowName,
  ModelIndex,
  ModelManifest,
  type ModelSummary,
  type ModelVersionSummary,
} from "@fedge/protocol";
import type { Bindings } from "../env.ts";

/** How long an isolate trusts its cached copy of a model index (and of the model list). */
export const INDEX_CACHE_TTL_MS = 1_000;
/** Most model names whose index an isolate caches (names come from callers, so the cache must be bounded). */
export const INDEX_CACHE_MAX = 256;
/** Most manifests an isolate caches. */
export const MANIFEST_CACHE_MAX = 1024;
/** An orphaned version's bytes younger than this may belong to an upload in flight; older ones are replaced. */
export const ORPHAN_GRACE_MS = 5 * 60_000;

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
let modelListCache: { names: string[]; at: number } | null = null;

/** Puts `key` last in a bounded insertion-ordered map, dropping the oldest entries past `max`. */
function remember<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  while (map.size > max) map.delete(map.keys().next().value as K);
}

/** Forget cached indexes and the model list (tests; another isolate's write is picked up after the TTL). */
export function clearRegistryCache(): void {
  indexCache.clear();
  modelListCache = null;
}

/** How many entries the isolate's registry caches hold (tests). */
export function registryCacheSizes(): { indexes: number; manifests: number } {
  return { indexes: indexCache.size, manifests: manifestCache.size };
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
  remember(indexCache, name, { ...fresh, at: now }, INDEX_CACHE_MAX);
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
  remember(manifestCache, key, manifest, MANIFEST_CACHE_MAX);
  return manifest;
}

/** Every model name (an R2 listing, cached per isolate for `INDEX_CACHE_TTL_MS`). */
async function modelNames(env: Bindings): Promise<string[]> {
  const now = Date.now();
  if (modelListCache && now - modelListCache.at < INDEX_CACHE_TTL_MS) return modelListCache.names;
  const names: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await env.MODELS.list({ prefix: "models/", delimiter: "/", ...(cursor ? { cursor } : {}) });
    for (const p of page.delimitedPrefixes) names.push(p.slice("models/".length, -1));
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  names.sort();
  modelListCache = { names, at: now };
  return names;
}

/** Summaries of every model, by name. */
export async function listModels(env: Bindings): Promise<ModelSummary[]> {
  const names = await modelNames(env);
  const indexes = await Promise.all(names.map((n) => readIndex(env, n)));
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
  remember(indexCache, index.name, { index, etag: put.etag, at: Date.now() }, INDEX_CACHE_MAX);
  // A new model shows in this isolate's list at once.
  if (etag === null) modelListCache = null;
  return true;
}

function conflict(name: string): FedgeError {
  return new FedgeError("conflict", 409, `model ${name} was changed concurrently; retry`);
}

/** How many times an index write is retried on a newer index before the writer gives up with 409. */
const INDEX_WRITE_TRIES = 3;

/**
 * Stores a version's ONNX bytes unless the object exists. An existing object no index lists is an orphan of an earlier
 * upload that never reached the index: the same bytes are adopted, other bytes replace it once it is older than
 * `ORPHAN_GRACE_MS`. Returns false when the object belongs to an upload that may still be in flight.
 */
async function storeOnnx(env: Bindings, manifest: ModelManifest, bytes: Uint8Array, now: number): Promise<boolean> {
  const key = onnxKey(manifest.name, manifest.version);
  const put = () =>
    env.MODELS.put(key, bytes, {
      onlyIf: new Headers({ "if-none-match": "*" }),
      httpMetadata: { contentType: "application/octet-stream" },
      customMetadata: { sha256: manifest.sha256 },
      sha256: manifest.sha256,
    });
  if (await put()) return true;
  const existing = await env.MODELS.head(key);
  if (!existing) return (await put()) !== null;
  if (existing.customMetadata?.sha256 === manifest.sha256) return true;
  if (now - existing.uploaded.getTime() < ORPHAN_GRACE_MS) return false;
  await env.MODELS.delete(key);
  return (await put()) !== null;
}

/**
 * 409 `audit_shadow` when a write would serve a shadow's version (`serve`), or would create a model under a reserved
 * shadow name outside {@link createAuditShadow}.
 */
function refuseToServeShadow(name: string, index: ModelIndex | null, serve: boolean): void {
  if (index?.audit_of !== undefined && serve) {
    throw new FedgeError(
      "audit_shadow",
      409,
      `${name} is an audit shadow of ${index.audit_of}: its versions hold canaries and are never served`,
    );
  }
  if (index === null && isAuditShadowName(name)) {
    throw new FedgeError(
      "audit_shadow",
      409,
      `names with "-audit-" are reserved for audit shadows: create ${name} with POST /v1/admin/populations/{source}/audit-shadows`,
    );
  }
}

/**
 * Store a new, already validated version. The first version of a model (or `promote`) becomes the serving one.
 * 409 `conflict` when the version exists, or when its bytes are held by another upload still in flight.
 */
export async function putVersion(
  env: Bindings,
  manifest: ModelManifest,
  bytes: Uint8Array,
  options: { promote?: boolean; now: number },
): Promise<ModelIndex> {
  const exists = () =>
    new FedgeError(
      "conflict",
      409,
      `model ${manifest.name} already has version ${manifest.version}; versions are immutable`,
    );
  let { index: current, etag } = await readIndexFresh(env, manifest.name);
  refuseToServeShadow(manifest.name, current, options.promote === true);
  if (current?.versions.some((v) => v.version === manifest.version)) throw exists();
  if (!(await storeOnnx(env, manifest, bytes, options.now))) throw conflict(manifest.name);
  // Written before the index lists the version, and overwritten by a retry: a manifest is never listed without bytes.
  await env.MODELS.put(manifestKey(manifest.name, manifest.version), JSON.stringify(manifest), {
    httpMetadata: { contentType: "application/json" },
  });
  manifestCache.delete(manifestKey(manifest.name, manifest.version));
  const summary: ModelVersionSummary = {
    version: manifest.version,
    sha256: manifest.sha256,
    size_bytes: manifest.size_bytes,
    created_at: manifest.created_at,
    quantization: manifest.quantization,
  };
  for (let attempt = 1; ; attempt++) {
    const base: ModelIndex = current ?? {
      name: manifest.name,
      serving_version: null,
      serving_history: [],
      versions: [],
      updated_at: new Date(options.now).toISOString(),
    };
    const serve = base.audit_of === undefined && (options.promote || base.serving_version === null);
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
    if (await writeIndex(env, next, etag)) return next;
    // Another writer changed the index first (a promote, another version): apply ours to theirs. The bytes stay where
    // they are (an orphan at worst, which the next upload of this version recovers).
    ({ index: current, etag } = await readIndexFresh(env, manifest.name));
    const listed = current?.versions.find((v) => v.version === manifest.version);
    if (listed) {
      if (listed.sha256 === manifest.sha256) return current!;
      throw exists();
    }
    if (attempt >= INDEX_WRITE_TRIES) throw conflict(manifest.name);
  }
}

/** Point serving at `version` (must exist); the previous serving version goes onto the history. */
export async function promote(env: Bindings, name: string, version: number, now: number): Promise<ModelIndex> {
  const { index, etag } = await readIndexFresh(env, name);
  if (!index) throw new FedgeError("model_not_found", 404, `no model named ${name}`);
  refuseToServeShadow(name, index, true);
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
  refuseToServeShadow(name, index, true);
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

/**
 * Deletes audit shadow `shadow` from the registry: every object under `models/<shadow>/` (versions, manifests, orphans
 * of a failed upload), the index last, so a failure half way leaves an index a repeated call finds again.
 */
export async function deleteAuditShadow(env: Bindings, shadow: string): Promise<void> {
  const prefix = `models/${shadow}/`;
  const index = indexKey(shadow);
  let cursor: string | undefined;
  do {
    const page = await env.MODELS.list({ prefix, ...(cursor ? { cursor } : {}) });
    const keys = page.objects.map((o) => o.key).filter((k) => k !== index);
    if (keys.length > 0) await env.MODELS.delete(keys);
    for (const k of keys) manifestCache.delete(k);
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  await env.MODELS.delete(index);
  indexCache.delete(shadow);
  modelListCache = null;
}

/** Where {@link createAuditShadow} found the model it copied. */
export interface ShadowSource {
  index: ModelIndex;
  version: number;
  manifest: ModelManifest;
}

/**
 * The source of a new audit shadow: `source` must exist, serve a version and not be a shadow itself; `shadow` must
 * not exist yet. Reads only (404/409 before anything is written).
 */
export async function shadowSource(env: Bindings, source: string, shadow: string): Promise<ShadowSource> {
  const index = await requireIndex(env, source);
  if (index.audit_of !== undefined)
    throw new FedgeError("audit_shadow", 409, `${source} is itself an audit shadow of ${index.audit_of}`);
  const version = index.serving_version;
  if (version === null) throw new FedgeError("conflict", 409, `${source} serves no version to audit`);
  if ((await readIndexFresh(env, shadow)).index)
    throw new FedgeError("conflict", 409, `${shadow} already exists; pick another audit id`);
  const manifest = await readManifest(env, source, version);
  if (!manifest) throw new FedgeError("version_not_found", 404, `model ${source} has no version ${version}`);
  return { index, version, manifest };
}

/**
 * Creates audit shadow `shadow` of `from`: version 1 holds the source's serving bytes under an unsigned manifest (the
 * source's signature covers the source's name; the shadow's ε is its own ledger's), the index records `audit_of` and
 * serves nothing. 409 `conflict` when a concurrent writer created the name first.
 */
export async function createAuditShadow(
  env: Bindings,
  from: ShadowSource,
  shadow: string,
  now: number,
): Promise<ModelIndex> {
  const bytes = await readOnnxBytes(env, from.index.name, from.version);
  const { aggregator: _signature, privacy: _sourcePrivacy, ...rest } = from.manifest;
  const manifest: ModelManifest = { ...rest, name: shadow, version: 1, created_at: new Date(now).toISOString() };
  if (!(await storeOnnx(env, manifest, bytes, now))) throw conflict(shadow);
  await env.MODELS.put(manifestKey(shadow, 1), JSON.stringify(manifest), {
    httpMetadata: { contentType: "application/json" },
  });
  manifestCache.delete(manifestKey(shadow, 1));
  const index: ModelIndex = {
    name: shadow,
    serving_version: null,
    serving_history: [],
    versions: [
      {
        version: 1,
        sha256: manifest.sha256,
        size_bytes: manifest.size_bytes,
        created_at: manifest.created_at,
        quantization: manifest.quantization,
      },
    ],
    updated_at: manifest.created_at,
    audit_of: from.index.name,
  };
  if (!(await writeIndex(env, index, null))) throw conflict(shadow);
  return index;
}
