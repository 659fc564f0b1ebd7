/**
 * @module
 * TEST-ONLY: a real local edge (`wrangler dev` via @fedge/test `startLocalEdge`) with a fresh state directory, a random
 * dev API key and admin token, plus the admin calls the SDK tests need (upload a toy MLP, open a round). Shared by the
 * Node integration test and the real-browser test (test/browser-sdk.test.ts), exported as `@fedge/client/testing`.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { generateKeyPairSync } from "node:crypto";
import path from "node:path";
import { buildMlpOnnx, trainableLength, type MlpParams } from "@fedge/ml";
import { toBase64Url, type RoundStatus } from "@fedge/protocol";
import { startLocalEdge, type LocalEdge } from "./local-edge.ts";
import { initMlp, xoshiroRandomBytes } from "@fedge/ml";

export interface EdgeFixture {
  url: string;
  apiKey: string;
  adminToken: string;
  /** The edge's receipt key (base64url public key of the fresh FEDGE_EDGE_SIGNING_KEY this fixture started with). */
  edgePublicKey: string;
  edge: LocalEdge;
  /** Admin request; throws with the body on a non-2xx answer. */
  admin<T>(method: string, path: string, body?: unknown): Promise<T>;
  stop(): Promise<void>;
}

function secret(bytes: number): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(bytes)));
}

/** Starts `wrangler dev` on `port` (8810–8819 are the SDK's) with its own persisted state in a temp dir. */
export async function startEdgeFixture(port: number): Promise<EdgeFixture> {
  const persistTo = await mkdtemp(path.join(tmpdir(), `fedge-sdk-${port}-`));
  const apiKey = `fk_dev_${secret(24)}`;
  const adminToken = `fa_${secret(32)}`;
  // The edge's receipt key: an Ed25519 seed and its public key (JWK `d` and `x`, base64url), as provision makes it.
  const edgeKey = generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" });
  const edgePublicKey = edgeKey.x!;
  const edge = await startLocalEdge({
    port,
    persistTo,
    vars: { FEDGE_DEV_API_KEY: apiKey, FEDGE_ADMIN_TOKEN: adminToken, FEDGE_EDGE_SIGNING_KEY: edgeKey.d! },
    readyTimeoutMs: 120_000,
  });
  const admin = async <T>(method: string, p: string, body?: unknown): Promise<T> => {
    const init: RequestInit = { method, headers: { authorization: `Bearer ${adminToken}` } };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) {
      init.body = JSON.stringify(body);
      (init.headers as Record<string, string>)["content-type"] = "application/json";
    }
    const res = await fetch(edge.url + p, init);
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${p} → ${res.status}: ${text}`);
    return JSON.parse(text) as T;
  };
  return {
    url: edge.url,
    apiKey,
    adminToken,
    edgePublicKey,
    edge,
    admin,
    async stop() {
      await edge.stop();
      await rm(persistTo, { recursive: true, force: true });
    },
  };
}

export interface ToyModel {
  name: string;
  params: MlpParams;
  bytes: Uint8Array;
  sizes: number[];
}

/** Uploads a small float32 MLP (seeded weights) as version 1 of `name` and serves it. */
export async function uploadToyModel(fx: EdgeFixture, name: string, sizes = [8, 6, 3], seed = 1): Promise<ToyModel> {
  const params = initMlp(sizes, { random: xoshiroRandomBytes(seed) });
  const bytes = buildMlpOnnx(params, { quantization: "none" });
  const manifest = {
    name,
    version: 1,
    inputs: [{ name: "input", shape: [null, sizes[0]!], dtype: "float32" }],
    outputs: [{ name: "logits", shape: [null, sizes.at(-1)!], dtype: "float32" }],
    quantization: { scheme: "none", weight_dtype: "float32" },
  };
  const form = new FormData();
  form.set("model", new File([bytes as Uint8Array<ArrayBuffer>], "model.onnx", { type: "application/octet-stream" }));
  form.set("manifest", JSON.stringify(manifest));
  form.set("promote", "true");
  await fx.admin("POST", `/v1/admin/models/${name}/versions`, form);
  return { name, params, bytes, sizes };
}

/**
 * Opens a round of `model` (sampling rate 1, so every device is selected) with a 10-minute window. A DP round (the
 * default, central) is charged z = 1 (local: the devices' noise) to a budget no test comes near, set first when the
 * population has none, and states a population (ε, δ) = (1, 1e-5) unless `over` says otherwise, which the SDK's default
 * privacy policy accepts; mode `none` takes `max_reports` 100.
 */
export async function openRound(
  fx: EdgeFixture,
  model: ToyModel,
  over: Record<string, unknown> = {},
): Promise<RoundStatus> {
  const trainable = (over.trainable as "all" | "head" | undefined) ?? "all";
  const dp = (over.privacy_mode ?? "central") !== "none";
  const mode = (over.privacy_mode as string | undefined) ?? "central";
  if (mode !== "none") {
    const ledger = await fx.admin<{ budget: unknown }>("GET", `/v1/populations/${model.name}/privacy`);
    if (ledger.budget === null) {
      await fx.admin("PUT", `/v1/admin/populations/${model.name}/privacy-budget`, { epsilon: 1e6, delta: 1e-5 });
    }
  }
  const privacy =
    mode === "none"
      ? { max_reports: 100 }
      : { mechanism: { noise_multiplier: mode === "local" ? over.local_noise_multiplier : 1, clip_rule: "fixed" } };
  return fx.admin<RoundStatus>("POST", "/v1/admin/rounds", {
    ...(dp ? { population_privacy: { epsilon: 1, planned_epsilon: 1, delta: 1e-5 } } : {}),
    model: model.name,
    model_version: 1,
    clip_norm: 1,
    learning_rate: 0.1,
    local_epochs: 1,
    batch_size: 8,
    privacy_mode: "central",
    trainable,
    update_length: trainableLength(model.params, trainable),
    sampling_rate: 1,
    min_reports: 1,
    ...privacy,
    duration_s: 600,
    ...over,
  });
}

/** A labelled toy dataset for `sizes[0]` features and `sizes.at(-1)` classes (deterministic). */
export function toyData(sizes: number[], n: number, seed = 5): { data: Float32Array; labels: Uint8Array } {
  const raw = new Uint8Array(n * sizes[0]!);
  xoshiroRandomBytes(seed)(raw);
  const data = Float32Array.from(raw, (b) => b / 255);
  const labels = new Uint8Array(n).map((_, i) => i % sizes.at(-1)!);
  return { data, labels };
}
