/**
 * @module
 * `FedgeClient.loadModel`'s work, loaded on its first call so that apps which only call `predict` never download it:
 * the ETag-revalidated download with its storage cache and offline fallback (the ONNX bytes of a version are
 * immutable, so a cached copy is revalidated with `If-None-Match` and a 304 costs no body), the sha256 integrity
 * check, and, with a pinned aggregator key, the signed-manifest check (`trust.ts`).
 */
import type { ModelManifest } from "@fedge/protocol";
import { APIConnectionError, APIUserAbortError, FedgeAPIError, FedgeClientError } from "./core/errors.ts";
import type { RequestOptions, Transport } from "./internal/transport.ts";
import type { LoadedModel } from "./model.ts";
import type { FedgeStorage } from "./storage/storage.ts";
import { verifyPinnedManifest } from "./trust.ts";

/** What a download needs from its client. */
export interface ModelDownloadContext {
  transport: Transport;
  storage: FedgeStorage;
  /** The pinned aggregator key: every model must come with a manifest it signed. */
  aggregatorKey: Uint8Array | undefined;
  /** Versions the client holds in memory, by `name@version`. */
  models: ReadonlyMap<string, LoadedModel>;
}

/**
 * Downloads a model version and caches its bytes in storage (`manifest`: the one the serving-version lookup returned,
 * if any). A cached
 * copy is revalidated with `If-None-Match`; when the edge is unreachable the cached copy is used. With a pinned
 * `aggregatorKey`, every copy (fresh, revalidated or offline) must come with a manifest signed by that key that names
 * this model and version and the bytes' sha256, else `UntrustedModelError` (nothing is cached or used).
 */
export async function downloadModel(
  ctx: ModelDownloadContext,
  model: string,
  v: number,
  manifest: ModelManifest | undefined,
  options: RequestOptions,
): Promise<LoadedModel> {
  const cached = ctx.models.get(`${model}@${v}`) ?? (await readCachedModel(ctx.storage, model, v));
  const headers: Record<string, string> = { accept: "application/octet-stream" };
  if (cached?.etag) headers["if-none-match"] = cached.etag;
  let res;
  try {
    res = await ctx.transport.request(
      { method: "GET", path: `/v1/models/${model}/versions/${v}/model.onnx`, headers, allowNotModified: true },
      options,
    );
  } catch (err) {
    // Offline with a cached immutable version: use it.
    if (cached && err instanceof APIConnectionError) return trusted(ctx, cached, options);
    throw err;
  }
  if (res.status === 304 && cached) {
    return trusted(ctx, { ...cached, manifest: manifest ?? cached.manifest, fromCache: true }, options);
  }
  if (res.status === 304) {
    throw new FedgeAPIError({ status: 304, code: "invalid_response", message: "304 without a cached copy" });
  }
  const etag = res.headers.get("etag") ?? undefined;
  // The edge's strong ETag is the quoted sha256 of the bytes; the manifest's sha256 wins when we have it.
  const expected = manifest?.sha256 ?? /^"([0-9a-f]{64})"$/.exec(etag ?? "")?.[1];
  if (expected) {
    const actual = await sha256Hex(res.body);
    if (actual !== undefined && actual !== expected) {
      throw new FedgeClientError(
        "integrity_error",
        `model ${model} v${v}: sha256 ${actual} does not match the manifest's ${expected}`,
      );
    }
  }
  const loaded = await trusted(
    ctx,
    { name: model, version: v, manifest, bytes: res.body, etag, fromCache: false },
    options,
  );
  await writeCachedModel(ctx.storage, loaded);
  return loaded;
}

/**
 * The model as it may be used: unchanged without a pinned key; with one, its manifest (fetched from
 * `GET /v1/models/:name/versions/:v` when the model came without one) must verify (see `trust.ts`).
 */
async function trusted(ctx: ModelDownloadContext, m: LoadedModel, options: RequestOptions): Promise<LoadedModel> {
  if (!ctx.aggregatorKey) return m;
  let manifest = m.manifest;
  if (!manifest) {
    manifest = await ctx.transport
      .json<ModelManifest>({ method: "GET", path: `/v1/models/${m.name}/versions/${m.version}` }, options)
      .catch((err: unknown) => {
        // Offline: nothing to verify against, so the model is not trusted.
        if (err instanceof APIConnectionError && !(err instanceof APIUserAbortError)) return undefined;
        throw err;
      });
  }
  verifyPinnedManifest(manifest, ctx.aggregatorKey, {
    model: m.name,
    version: m.version,
    sha256: await sha256Hex(m.bytes),
  });
  return manifest === m.manifest ? m : { ...m, manifest };
}

interface CacheMeta {
  name: string;
  version: number;
  etag?: string | undefined;
  manifest?: ModelManifest | undefined;
}

const cacheKey = (name: string, version: number) => `models/${name}/${version}`;

/** Reads a cached model version (bytes + meta), if any. */
export async function readCachedModel(
  storage: FedgeStorage,
  name: string,
  version: number,
): Promise<LoadedModel | undefined> {
  const [bytes, metaBytes] = await Promise.all([
    storage.get(`${cacheKey(name, version)}/model.onnx`),
    storage.get(`${cacheKey(name, version)}/meta.json`),
  ]);
  if (!bytes || !metaBytes) return undefined;
  const meta = JSON.parse(new TextDecoder().decode(metaBytes)) as CacheMeta;
  return { name, version, manifest: meta.manifest, bytes, etag: meta.etag, fromCache: true };
}

/** Stores a model version (bytes first, then meta, so a crash never leaves meta pointing at missing bytes). */
export async function writeCachedModel(storage: FedgeStorage, model: LoadedModel): Promise<void> {
  await storage.set(`${cacheKey(model.name, model.version)}/model.onnx`, model.bytes);
  const meta: CacheMeta = { name: model.name, version: model.version, etag: model.etag, manifest: model.manifest };
  await storage.set(`${cacheKey(model.name, model.version)}/meta.json`, new TextEncoder().encode(JSON.stringify(meta)));
}

/** Lowercase hex SHA-256 via Web Crypto, or undefined where `crypto.subtle` is missing (React Native). */
export async function sha256Hex(bytes: Uint8Array): Promise<string | undefined> {
  const subtle = (globalThis as { crypto?: Crypto }).crypto?.subtle;
  if (!subtle) return undefined;
  const digest = new Uint8Array(await subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  let hex = "";
  for (const b of digest) hex += b.toString(16).padStart(2, "0");
  return hex;
}
