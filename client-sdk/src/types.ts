/**
 * @module
 * The public option and result types of `FedgeClient`.
 */
import type { UpdateReceipt } from "@fedge/protocol";
import type { FedgeClientError } from "./core/errors.ts";
import type { RandomSource } from "./internal/platform/platform.ts";
import type { RequestOptions } from "./internal/transport.ts";
import type { OrtLike } from "./model/model.ts";
import type { UpdateStats } from "./participate/build-update.ts";
import type { FedgeStorage } from "./storage/storage.ts";

export interface FedgeClientOptions {
  /**
   * The edge, e.g. `https://fedge.example.workers.dev` or `http://127.0.0.1:8787` (no trailing path). Plain `http://` is
   * refused except to a loopback address (the API key and signed updates would travel in the clear).
   */
  baseUrl: string;
  /** API key, sent as `Authorization: Bearer <apiKey>` on every request. */
  apiKey: string;
  /**
   * Where the device identity, cached models and the offline upload queue live.
   * @default IndexedDB in browsers; files under `~/.fedge/<host>` in Node; memory elsewhere (React Native: pass one)
   */
  storage?: FedgeStorage;
  /** The `fetch` to use. @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Retries after the first attempt, for 408/429/5xx and connection errors. @default 2 */
  maxRetries?: number;
  /** Per-attempt timeout in milliseconds. @default 60000 */
  timeoutMs?: number;
  /** CSPRNG used for keys, jitter, batch order and local noise. @default crypto.getRandomValues */
  random?: RandomSource;
  /** Platform tag sent at registration. @default the detected runtime (`browser`, `node`, `react-native`) */
  platform?: string;
  /** Loads onnxruntime for `predictLocal`. @default dynamic import of onnxruntime-node (Node) or onnxruntime-web */
  loadOrt?: () => Promise<OrtLike>;
}

/** `POST /v1/models/:name/predict` answer. */
export interface PredictResult {
  outputs: number[][];
  model: string;
  version: number;
}

export interface PredictOptions extends RequestOptions {
  /** Row width when `inputs` is a Float32Array holding several rows. @default inputs.length (one row) */
  features?: number;
  /** Pin a model version (remote predict). @default the serving version */
  version?: number;
}

export interface DeviceIdentity {
  deviceId: string;
  /** Ed25519 public key, base64url. */
  publicKey: string;
}

export interface ParticipateOptions extends RequestOptions {
  /** Training population (model name). */
  model: string;
  /** Local features, row-major `n × inFeatures`. Never leaves the device. */
  data: Float32Array;
  /** One class index per row. */
  labels: Uint8Array | Int32Array;
}

export type ParticipateResult =
  | {
      selected: false;
      reason: "not_sampled" | "no_open_round" | "already_reported";
      roundId: string | undefined;
      /** When to check in again. */
      retryAfterS: number;
    }
  | {
      selected: true;
      status: "uploaded";
      roundId: string;
      modelVersion: number;
      receipt: UpdateReceipt;
      /** Training statistics; undefined when a queued update from an earlier run was sent instead. */
      stats: UpdateStats | undefined;
    }
  | {
      selected: true;
      /** The update is in the offline queue; `flushQueue()` (or the next `participate()`) sends it. */
      status: "queued";
      roundId: string;
      modelVersion: number;
      receipt: null;
      /** Why the upload has not gone through yet (offline, 5xx, 429). */
      error: FedgeClientError;
      stats: UpdateStats | undefined;
    };
