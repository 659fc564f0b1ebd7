/**
 * @module
 * The public option and result types of `FedgeClient`.
 */
import type { RoundTask, UpdateReceipt } from "@fedge/protocol";
import type { FedgeClientError } from "./core/errors.ts";
import type { RandomSource } from "./internal/platform.ts";
import type { RequestOptions } from "./internal/transport.ts";
import type { OrtLike } from "./model.ts";
import type { Tensor } from "./inference/tensors.ts";
import type { UpdateStats } from "./build-update.ts";
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
   * React Native: pass `asyncStorage({ store: AsyncStorage })`, else they live in memory and are lost on restart.
   * @default IndexedDB in browsers; files under `~/.fedge/<host>` in Node; memory elsewhere
   */
  storage?: FedgeStorage;
  /** The `fetch` to use. @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Retries after the first attempt, for 408/429/5xx and connection errors. @default 2 */
  maxRetries?: number;
  /** Per-attempt timeout in milliseconds. @default 60000 */
  timeoutMs?: number;
  /**
   * CSPRNG used for keys, jitter, batch order and local noise. Requirement: without this option the runtime must
   * have `crypto.getRandomValues` (browsers, Node ≥ 20; React Native: `import "react-native-get-random-values"`
   * before the SDK is used), else the constructor throws an `InvalidInputError` naming `random`.
   * @default crypto.getRandomValues
   */
  random?: RandomSource;
  /** Platform tag sent at registration. @default the detected runtime (`browser`, `node`, `react-native`) */
  platform?: string;
  /** Loads onnxruntime for `predictLocal`. @default dynamic import of onnxruntime-node (Node) or onnxruntime-web */
  loadOrt?: () => Promise<OrtLike>;
  /**
   * The app's privacy policy: which round tasks this device takes part in. `participate()` refuses a task outside it
   * with `PrivacyPolicyError` before training, and uploads nothing. Fields left out take the defaults.
   * @default DEFAULT_PRIVACY_POLICY (central and local only; local ε per report ≤ 8, central population ε ≤ 10, δ ≤ 1e-5)
   * @see PrivacyPolicy
   */
  privacyPolicy?: PrivacyPolicy;
  /**
   * The aggregator's Ed25519 public key (32 bytes, or base64url): pin it, and the SDK runs (`predictLocal`) and trains
   * on (`participate`) only model versions whose manifest is signed by this key and describes the downloaded bytes
   * (name, version, sha256); anything else throws `UntrustedModelError` before the model is used or cached.
   * @default undefined (no pinning: the edge's TLS and the manifest's sha256 are all the device checks)
   */
  aggregatorPublicKey?: string | Uint8Array;
  /**
   * The edge's Ed25519 public key (32 bytes, or base64url; `npm run provision` prints it as `FEDGE_EDGE_PUBLIC_KEY`),
   * under which every check-in receipt must verify. Without it the SDK reads `GET /.well-known/fedge-edge-key` on the
   * first receipt and pins that key in its storage (trust on first use: safe against a later change of key, not
   * against whoever answers that first read). With it, or with `privacyPolicy.maxDeviceEpsilon`, a DP task that
   * comes without a receipt is refused (`UntrustedReceiptError`).
   * @default undefined (pinned on first use)
   */
  edgePublicKey?: string | Uint8Array;
}

/**
 * Limits a device puts on the round tasks it takes part in (see `participate/policy.ts` for the exact rules).
 * @example new FedgeClient({ baseUrl, apiKey, privacyPolicy: { allowedModes: ["local"], maxLocalEpsilon: 2 } })
 */
export interface PrivacyPolicy {
  /**
   * Privacy modes the device takes part in. `none` (no differential privacy) must be listed explicitly, and so must
   * `distributed` (secure aggregation: the device stays online through the round's stages).
   * @default ["central", "local"]
   */
  allowedModes?: readonly ("central" | "local" | "distributed" | "none")[];
  /**
   * Local mode: the largest ε one report may cost, computed on the device from the task's noise multiplier z
   * (analytic Gaussian mechanism, replace-one neighbours, at δ = `maxDelta`). z = 0 or a missing z is always refused.
   * Distributed mode: the largest ε of one round's released sum as the edge sees it (no subsampling, zero-out
   * neighbours: KLS21's bound for the honest discrete Gaussian shares besides the device's own,
   * `noise_shares − 1 − corrupt_devices`, plus its own; `PrivacyLedger.spentAgainstEdge`, at δ = `maxDelta`).
   * @default 8 (z ≥ about 1.2 at δ = 1e-5)
   */
  maxLocalEpsilon?: number;
  /**
   * Local mode: the smallest noise multiplier z accepted, on top of `maxLocalEpsilon`.
   * @default undefined (only `maxLocalEpsilon` and z > 0 apply)
   */
  minLocalNoiseMultiplier?: number;
  /**
   * Central mode: the largest population ε the task may state (`population_privacy.planned_epsilon`, else its charged
   * `epsilon`); a central task that states none is refused.
   * @default 10
   */
  maxPopulationEpsilon?: number;
  /**
   * The largest δ: a central population's δ must be at most this, and local reports are priced at this δ.
   * @default 1e-5
   */
  maxDelta?: number;
  /**
   * The most ε this device spends on one population, by its own RDP accounting of the edge's signed check-in receipts
   * (`client.privacy()`): it does not check in when one more round at the last receipt's parameters would pass it,
   * and withdraws from a round whose receipt would (Feldman & Zrnic 2021's Rényi filter; `PrivacyPolicyError`
   * `device_epsilon_exceeded`).
   * @default undefined (no cap of the device's own)
   */
  maxDeviceEpsilon?: number;
}

/** A privacy policy with every default filled in. */
export interface ResolvedPrivacyPolicy {
  readonly allowedModes: readonly ("central" | "local" | "distributed" | "none")[];
  readonly maxLocalEpsilon: number;
  readonly minLocalNoiseMultiplier: number | undefined;
  readonly maxPopulationEpsilon: number;
  readonly maxDelta: number;
  readonly maxDeviceEpsilon: number | undefined;
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

export interface InferOptions extends RequestOptions {
  /** Pin a model version. @default the serving version */
  version?: number;
  /** Outputs to return. @default every output of the model */
  outputs?: readonly string[];
  /**
   * Send the tensors with the binary tensor extension and ask for binary outputs (raw little-endian bytes after a
   * JSON header); `false` sends and receives JSON numbers.
   * @default true
   */
  binary?: boolean;
}

/** `infer`/`inferLocal` answer: the outputs as typed tensors, by name. */
export interface InferResult {
  model: string;
  version: number;
  outputs: Record<string, Tensor>;
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
  /**
   * Distributed mode: turns the clipped update into the round's encoded vector (`task.secure_aggregation`:
   * `encoded_length` values in Z_{2^modulus_bits}), which secure aggregation sums.
   * @default the distributed discrete Gaussian encoder of the task (@fedge/ml `encodeDistributedDeviceUpdate`: clip,
   * rotate with the round's seed, scale, round within the charged bound, add this device's noise share, mod 2^b).
   * Replacing it (e.g. `plainModularEncoder`, which adds no noise) drops the device's share of the noise the round
   * was charged for: a test mode only.
   */
  encoder?: SecAggEncoder;
  /** Distributed mode: how the device waits for the edge to move through the stages. */
  secureAggregation?: {
    /** Pause between stage polls. @default 1000 */
    pollMs?: number;
    /** Longest the device waits for the round, from the start of participate(). @default 600000 (10 min) */
    timeoutMs?: number;
  };
}

/** A distributed round's encoder: the clipped update → `encoded_length` values in Z_{2^modulus_bits}. */
export type SecAggEncoder = (clipped: Float32Array, task: RoundTask) => Uint32Array | Promise<Uint32Array>;

/** What a device did in a distributed round (the training half of `UpdateStats`, and the protocol's traffic). */
export type SecureAggregationStats = Omit<UpdateStats, "dtype" | "bytes" | "clipBit" | "noiseStd"> & {
  /**
   * What the device put in: its trained update (`update`), or, in a checked-in cohort whose coin left it out, a zero
   * update with its noise share (`noise-only`: nothing trained, `samples` 0).
   */
  input: "update" | "noise-only";
  /** d' and b of the encoded vector. */
  encodedLength: number;
  modulusBits: number;
  /** Bytes of the request bodies the device sent, and of the answers it read, over the round's stages. */
  bytesSent: number;
  bytesReceived: number;
};

export type ParticipateResult =
  | {
      selected: true;
      /**
       * Distributed mode: the device answered every secure-aggregation stage; the edge can now remove its masks, and the
       * aggregator sees only the sum.
       */
      status: "aggregated";
      roundId: string;
      modelVersion: number;
      receipt: null;
      stats: SecureAggregationStats;
    }
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
