/**
 * @module
 * Public registry reads of the edge the runner needs (no credential): a model's versions and serving pointer, a
 * version's manifest, a version's ONNX read back as an MLP (int8 weights dequantized), and a population's privacy
 * ledger.
 */
import { FedgeError, ModelDetail, ModelManifest, PopulationPrivacyStatus } from "@fedge/protocol";
import { readMlpFromOnnx, type MlpParams } from "@fedge/ml";
import { sha256Hex } from "../export.ts";
import { EdgeAdminError } from "./admin-client.ts";

async function getPublic(baseUrl: string, path: string, fetchFn: typeof fetch): Promise<Response | null> {
  const res = await fetchFn(baseUrl + path);
  if (res.status === 404) {
    await res.body?.cancel();
    return null;
  }
  if (!res.ok) {
    const text = await res.text();
    throw new EdgeAdminError(res.status, "http_error", text.slice(0, 300), "GET", path);
  }
  return res;
}

/** `GET /v1/models/:name` (versions, serving pointer), or `null` when the edge has no such model. */
export async function fetchModelDetail(
  baseUrl: string,
  model: string,
  fetchFn: typeof fetch = globalThis.fetch,
): Promise<ModelDetail | null> {
  const res = await getPublic(baseUrl, `/v1/models/${encodeURIComponent(model)}`, fetchFn);
  return res ? ModelDetail.parse(await res.json()) : null;
}

/** One version's manifest, or `null`. */
export async function fetchModelManifest(
  baseUrl: string,
  model: string,
  version: number,
  fetchFn: typeof fetch = globalThis.fetch,
): Promise<ModelManifest | null> {
  const res = await getPublic(baseUrl, `/v1/models/${encodeURIComponent(model)}/versions/${version}`, fetchFn);
  return res ? ModelManifest.parse(await res.json()) : null;
}

/** A version's ONNX bytes read back as an MLP (int8 weights dequantized), with their sha256. */
export async function fetchEdgeModel(
  baseUrl: string,
  model: string,
  version: number,
  fetchFn: typeof fetch = globalThis.fetch,
): Promise<{ params: MlpParams; sha256: string; version: number }> {
  const path = `/v1/models/${encodeURIComponent(model)}/versions/${version}/model.onnx`;
  const res = await getPublic(baseUrl, path, fetchFn);
  // the 404 the edge answered, as an EdgeAdminError like every other failed answer
  if (!res)
    throw new EdgeAdminError(404, "version_not_found", `the edge has no version ${version} of ${model}`, "GET", path);
  const bytes = new Uint8Array(await res.arrayBuffer());
  return { params: readMlpFromOnnx(bytes).params, sha256: sha256Hex(bytes), version };
}

/** `GET /v1/populations/:name/privacy`: the edge's budget, spend and charged rounds of a population (the authority). */
export async function fetchPopulationPrivacy(
  baseUrl: string,
  model: string,
  fetchFn: typeof fetch = globalThis.fetch,
): Promise<PopulationPrivacyStatus> {
  const res = await getPublic(baseUrl, `/v1/populations/${encodeURIComponent(model)}/privacy`, fetchFn);
  if (!res) throw new FedgeError("not_found", 404, `the edge at ${baseUrl} keeps no privacy ledgers (an older edge?)`);
  return PopulationPrivacyStatus.parse(await res.json());
}
