/**
 * @module
 * The model version a request runs, shared by v1 `/predict`, the Open Inference Protocol routes and the admin
 * bench: the registry lookup (serving version unless one is pinned), the version's manifest, its cached session, and
 * the input/output signatures requests are checked against (graph shapes with their symbolic dimensions, the ranges
 * the graph implies intersected with the ones the manifest declares).
 */
import { FedgeError, type ModelManifest, type ModelVersionSummary, type TensorSignature } from "@fedge/protocol";
import type { Bindings } from "../env.ts";
import { readManifest, readOnnxBytes, requireIndex, requireVersion } from "../registry/index.ts";
import { sessions, type CachedModel } from "./session-cache.ts";

export interface ServedVersion {
  name: string;
  version: number;
  summary: ModelVersionSummary;
  manifest: ModelManifest;
  /** Every version of the model, ascending. */
  versions: number[];
}

/** Session cache key: a version's bytes never change, the sha256 guards against a re-created registry. */
export function sessionKey(name: string, version: number, sha256: string): string {
  return `${name}@${version}#${sha256}`;
}

/** The pinned version, or the serving one; 404 `model_not_found` / `version_not_found`. */
export async function resolveVersion(env: Bindings, name: string, pinned?: number): Promise<ServedVersion> {
  const index = await requireIndex(env, name);
  const version = pinned ?? index.serving_version;
  if (version === null) throw new FedgeError("version_not_found", 404, `model ${name} has no serving version`);
  const summary = requireVersion(index, version);
  const manifest = await readManifest(env, name, version);
  if (!manifest) throw new FedgeError("version_not_found", 404, `model ${name} has no version ${version}`);
  return { name, version, summary, manifest, versions: index.versions.map((v) => v.version) };
}

/** The version's session (created from the R2 bytes on the isolate's first use). */
export function servedSession(env: Bindings, served: ServedVersion): Promise<CachedModel> {
  return sessions.get(sessionKey(served.name, served.version, served.summary.sha256), () =>
    readOnnxBytes(env, served.name, served.version),
  );
}

export interface Signatures {
  inputs: TensorSignature[];
  outputs: TensorSignature[];
}

const signatures = new WeakMap<CachedModel, Signatures>();

/** What requests to this model are checked against (computed once per session). */
export function modelSignatures(model: CachedModel, manifest: ModelManifest): Signatures {
  let s = signatures.get(model);
  if (s) return s;
  const declared = new Map(manifest.inputs.map((t) => [t.name, t.range]));
  const inputs = model.graph.inputs.map((t): TensorSignature => {
    const graph = model.graph.inputRanges[t.name];
    const own = declared.get(t.name);
    const range: [number, number] | undefined =
      graph && own ? [Math.max(graph[0], own[0]), Math.min(graph[1], own[1])] : (graph ?? own);
    return { name: t.name, dtype: t.dtype, shape: t.shape, ...(range ? { range } : {}) };
  });
  const outputs = model.graph.outputs.map((t): TensorSignature => ({ name: t.name, dtype: t.dtype, shape: t.shape }));
  s = { inputs, outputs };
  signatures.set(model, s);
  return s;
}
