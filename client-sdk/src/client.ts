/**
 * @module
 * `FedgeClient`: remote and on-device inference, device registration, and federated participation (check in, check the
 * task against the app's privacy policy, train locally, clip, optionally noise, sign, queue, upload) against a fedge
 * edge. With a pinned aggregator key, models are run and trained on only when their manifest is signed by it. One code
 * base for browsers, Node and React Native; runtime differences sit in `internal/platform.ts` and the storage adapters.
 */
import type { CheckinResponse, DevicePrivacyRecord, ModelManifest, RoundTask, UpdateReceipt } from "@fedge/protocol";
import { EDGE_KEY_PATH, devicePrivacySigningBytes, type SignedCheckinReceipt } from "@fedge/protocol/receipt";
import * as errors from "./core/errors.ts";
import { FedgeClientError, InvalidInputError } from "./core/errors.ts";
import {
  createIdentity,
  loadIdentity,
  placeholderSecretKey,
  resignUpdate,
  saveIdentity,
  signWith,
  type StoredIdentity,
} from "./identity.ts";
import { checkinSigningBytes, toBase64Url } from "./internal/encoding.ts";
import { cryptoRandom, defaultFetch, detectRuntime, type RandomSource } from "./internal/platform.ts";
import { Transport, type RequestOptions } from "./internal/transport.ts";
import { defaultLoadOrt, rowFeeds, toMatrix, toRows, type LoadedModel, type OrtLike } from "./model.ts";
import type { LocalRunner } from "./inference/local.ts";
import type { InferInputs } from "./inference/tensors.ts";
import type { UpdateStats } from "./build-update.ts";
import { UploadQueue, type FlushResult, type QueuedUpdate } from "./queue.ts";
import { ReceiptStore } from "./receipts.ts";
import type { PopulationPrivacySpend } from "./device-accounting.ts";
import { defaultStorage } from "./storage/default-storage.ts";
import type { FedgeStorage } from "./storage/storage.ts";
import type {
  DeviceIdentity,
  FedgeClientOptions,
  InferOptions,
  InferResult,
  ParticipateOptions,
  ParticipateResult,
  PredictOptions,
  PredictResult,
  ResolvedPrivacyPolicy,
} from "./types.ts";
import {
  checkModelName,
  checkOptions,
  checkVersion,
  invalidResponse,
  isTask,
  parseModelInfo,
  resolveAggregatorKey,
  resolvePrivacyPolicy,
} from "./validate.ts";

export type {
  DeviceIdentity,
  FedgeClientOptions,
  InferOptions,
  InferResult,
  ParticipateOptions,
  ParticipateResult,
  SecAggEncoder,
  SecureAggregationStats,
  PredictOptions,
  PredictResult,
  PrivacyPolicy,
  ResolvedPrivacyPolicy,
} from "./types.ts";

/** Media type of the signed binary update (contract: @fedge/protocol `UPDATE_MEDIA_TYPE`). */
const UPDATE_MEDIA_TYPE = "application/vnd.fedge.update";

export class FedgeClient {
  // Error classes as static members (openai-node style): `catch (e) { if (e instanceof FedgeClient.RateLimitError) … }`.
  static readonly FedgeClientError = errors.FedgeClientError;
  static readonly FedgeAPIError = errors.FedgeAPIError;
  static readonly InvalidInputError = errors.InvalidInputError;
  static readonly BadRequestError = errors.BadRequestError;
  static readonly AuthenticationError = errors.AuthenticationError;
  static readonly PermissionDeniedError = errors.PermissionDeniedError;
  static readonly NotFoundError = errors.NotFoundError;
  static readonly ConflictError = errors.ConflictError;
  static readonly PayloadTooLargeError = errors.PayloadTooLargeError;
  static readonly RateLimitError = errors.RateLimitError;
  static readonly InternalServerError = errors.InternalServerError;
  static readonly APIConnectionError = errors.APIConnectionError;
  static readonly APIConnectionTimeoutError = errors.APIConnectionTimeoutError;
  static readonly APIUserAbortError = errors.APIUserAbortError;
  static readonly PrivacyPolicyError = errors.PrivacyPolicyError;
  static readonly UntrustedModelError = errors.UntrustedModelError;
  static readonly UntrustedReceiptError = errors.UntrustedReceiptError;

  readonly baseUrl: string;
  /** The app's privacy policy with its defaults filled in (see `FedgeClientOptions.privacyPolicy`). */
  readonly privacyPolicy: ResolvedPrivacyPolicy;
  private readonly aggregatorKey: Uint8Array | undefined;
  private readonly receipts: ReceiptStore;
  /** A DP task must come with a receipt (an edge key was given, or the device caps its own ε). */
  private readonly requireReceipts: boolean;
  readonly storage: FedgeStorage;
  readonly queue: UploadQueue;
  private readonly transport: Transport;
  private readonly random: RandomSource;
  private readonly platform: string;
  private readonly loadOrt: () => Promise<OrtLike>;
  private local: Promise<LocalRunner> | undefined;
  private identity: Promise<StoredIdentity & { deviceId: string }> | undefined;
  private readonly models = new Map<string, LoadedModel>();

  constructor(options: FedgeClientOptions) {
    checkOptions(options);
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.random = options.random ?? cryptoRandom;
    this.storage = options.storage ?? defaultStorage(this.baseUrl);
    this.queue = new UploadQueue({ storage: this.storage });
    this.platform = options.platform ?? detectRuntime();
    this.loadOrt = options.loadOrt ?? defaultLoadOrt;
    this.privacyPolicy = resolvePrivacyPolicy(options.privacyPolicy);
    this.aggregatorKey = resolveAggregatorKey(options.aggregatorPublicKey);
    this.transport = new Transport({
      baseUrl: this.baseUrl,
      apiKey: options.apiKey,
      fetch: options.fetch ?? defaultFetch(),
      maxRetries: options.maxRetries ?? 2,
      timeoutMs: options.timeoutMs ?? 60_000,
      random: this.random,
    });
    const edgeKey = resolveAggregatorKey(options.edgePublicKey, "edgePublicKey");
    this.requireReceipts = edgeKey !== undefined || this.privacyPolicy.maxDeviceEpsilon !== undefined;
    this.receipts = new ReceiptStore({
      storage: this.storage,
      baseUrl: this.baseUrl,
      edgePublicKey: edgeKey,
      fetchKey: async () => {
        const res = await this.transport.json<{ public_key?: unknown }>({ method: "GET", path: EDGE_KEY_PATH });
        if (typeof res?.public_key !== "string") throw invalidResponse("edge key", res);
        return res.public_key;
      },
    });
  }

  /** Remote inference: `POST /v1/models/:name/predict` with `{"inputs": number[][]}`. */
  async predict(
    model: string,
    inputs: number[][] | Float32Array,
    options: PredictOptions = {},
  ): Promise<PredictResult> {
    checkModelName(model);
    checkVersion(options.version);
    const m = toMatrix(inputs, options.features);
    const query = options.version === undefined ? "" : `?version=${options.version}`;
    const res = await this.transport.json<PredictResult>(
      { method: "POST", path: `/v1/models/${model}/predict${query}`, json: { inputs: toRows(m.data, m.rows) } },
      options,
    );
    if (!res || !Array.isArray(res.outputs)) throw invalidResponse("predict", res);
    return res;
  }

  /**
   * Downloads a model version (the serving one unless `version` is given) and caches its bytes in storage. A cached
   * copy is revalidated with `If-None-Match`; when the edge is unreachable the cached copy is used. With a pinned
   * `aggregatorPublicKey`, every copy (fresh, revalidated or offline) must come with a manifest signed by that key that
   * names this model and version and the bytes' sha256, else `UntrustedModelError` (nothing is cached or used).
   */
  async loadModel(model: string, version?: number, options: RequestOptions = {}): Promise<LoadedModel> {
    checkModelName(model);
    checkVersion(version);
    let manifest: ModelManifest | undefined;
    let v = version;
    if (v === undefined) {
      const info = await this.transport.json<Record<string, unknown>>(
        { method: "GET", path: `/v1/models/${model}` },
        options,
      );
      ({ version: v, manifest } = parseModelInfo(info));
    }
    // Download, cache and trust checks load on the first loadModel (like the trainer on the first participate): most
    // apps only call predict, and the core stays small.
    const { downloadModel } = await import("./model-download.ts");
    const ctx = {
      transport: this.transport,
      storage: this.storage,
      aggregatorKey: this.aggregatorKey,
      models: this.models,
    };
    return this.remember(await downloadModel(ctx, model, v, manifest, options));
  }

  private remember(m: LoadedModel): LoadedModel {
    this.models.set(`${m.name}@${m.version}`, m);
    this.models.set(m.name, m);
    return m;
  }

  /**
   * Remote inference on any model through the Open Inference Protocol (`POST /v2/models/:name[/versions/:v]/infer`):
   * named typed tensors in, typed tensors out. Binary by default (the tensors' raw bytes after a JSON header).
   */
  async infer(model: string, inputs: InferInputs, options: InferOptions = {}): Promise<InferResult> {
    checkModelName(model);
    checkVersion(options.version);
    // The tensor codec loads on the first infer (like the trainer on the first participate): the core stays small.
    const { inferRemote } = await import("./inference/tensors.ts");
    return inferRemote(this.transport, model, inputs, options);
  }

  /**
   * On-device inference with onnxruntime on the model loaded by `loadModel` (loaded now if needed): the same typed
   * tensors as `infer`, and the inputs never leave the device.
   */
  async inferLocal(model: string, inputs: InferInputs, options: InferOptions = {}): Promise<InferResult> {
    checkModelName(model);
    checkVersion(options.version);
    const { checkInferInputs } = await import("./inference/tensors.ts");
    const feeds = checkInferInputs(inputs);
    const loaded = await this.loaded(model, options);
    const outputs = await (await this.runner()).run(loaded, feeds, options.outputs);
    return { model: loaded.name, version: loaded.version, outputs };
  }

  /**
   * On-device inference returning the first output one row per example. `inputs` is a batch of rows (`number[][]` or
   * a row-major Float32Array) for a model with one float32 input `[batch, ...fixed]` — each row is reshaped to the
   * manifest's example shape (784 values → `[1, 28, 28]` for an NCHW CNN) — or, for any other model, named typed
   * tensors as `inferLocal` takes them (e.g. token ids and an attention mask).
   */
  async predictLocal(
    model: string,
    inputs: number[][] | Float32Array | InferInputs,
    options: PredictOptions = {},
  ): Promise<PredictResult> {
    checkModelName(model);
    checkVersion(options.version);
    if (!Array.isArray(inputs) && !(inputs instanceof Float32Array)) {
      const res = await this.inferLocal(
        model,
        inputs,
        options.version === undefined ? {} : { version: options.version },
      );
      const first = Object.values(res.outputs)[0];
      if (!first) throw new FedgeClientError("invalid_model", "the model has no output");
      return {
        outputs: toRows(first.data as ArrayLike<number>, first.shape[0] ?? 1),
        model: res.model,
        version: res.version,
      };
    }
    const loaded = await this.loaded(model, options);
    const { feeds, rows } = rowFeeds(loaded.manifest, inputs, options.features);
    const outputName = loaded.manifest?.outputs[0]?.name;
    const out = await (await this.runner()).run(loaded, feeds, outputName ? [outputName] : undefined);
    const first = Object.values(out)[0];
    if (!first) throw new FedgeClientError("invalid_model", "the model has no output");
    return { outputs: toRows(first.data as ArrayLike<number>, rows), model: loaded.name, version: loaded.version };
  }

  /** On-device sessions (loaded with onnxruntime on first use). */
  private runner(): Promise<LocalRunner> {
    this.local ??= import("./inference/local.ts").then((m) => new m.LocalRunner(this.loadOrt));
    return this.local;
  }

  /** The cached model version (or the serving one), downloaded now if needed. */
  private async loaded(
    model: string,
    options: { version?: number | undefined } & RequestOptions,
  ): Promise<LoadedModel> {
    const key = options.version === undefined ? model : `${model}@${options.version}`;
    return this.models.get(key) ?? (await this.loadModel(model, options.version, options));
  }

  /**
   * Registers this device once: creates its Ed25519 key pair (persisted before the request, so retries and restarts
   * re-send the same key), `POST /v1/devices`, persists the device id. Later calls return the stored identity.
   */
  register(options: RequestOptions = {}): Promise<DeviceIdentity> {
    this.identity ??= this.registerOnce(options).catch((err: unknown) => {
      this.identity = undefined;
      throw err;
    });
    return this.identity.then((id) => ({ deviceId: id.deviceId, publicKey: toBase64Url(id.publicKey) }));
  }

  private async registerOnce(options: RequestOptions): Promise<StoredIdentity & { deviceId: string }> {
    let id = await loadIdentity(this.storage);
    if (id && id.baseUrl !== this.baseUrl) id = undefined; // registered with another edge: new identity
    if (id?.deviceId) return id as StoredIdentity & { deviceId: string };
    if (!id) id = await createIdentity(this.storage, this.random, this.baseUrl);
    const res = await this.transport.json<{ device_id?: unknown }>(
      {
        method: "POST",
        path: "/v1/devices",
        json: { public_key: toBase64Url(id.publicKey), platform: this.platform.slice(0, 32) },
      },
      options,
    );
    if (typeof res?.device_id !== "string") throw invalidResponse("register", res);
    const done = { ...id, deviceId: res.device_id };
    await saveIdentity(this.storage, done);
    return done;
  }

  /**
   * Signed check-in for `model`'s current round. In a DP round the edge's signed receipt is verified against the
   * pinned edge key and kept (`UntrustedReceiptError` and nothing kept when it does not verify). With
   * `privacyPolicy.maxDeviceEpsilon`, a check-in that one more round at the last receipt's parameters would take past
   * the cap is not sent, and a receipt whose round would pass it is kept as declined and the round refused (both
   * `PrivacyPolicyError` `device_epsilon_exceeded`).
   */
  async checkin(model: string, options: RequestOptions = {}): Promise<CheckinResponse> {
    checkModelName(model);
    await this.register(options);
    const id = (await this.identity)!;
    const cap = this.privacyPolicy.maxDeviceEpsilon;
    if (cap !== undefined) {
      const entries = await this.receipts.list(model);
      const last = entries.at(-1)?.receipt;
      if (last) {
        const { epsilonWith } = await import("./device-accounting.ts");
        const counted = entries.filter((e) => !e.declined).map((e) => e.receipt);
        const next = epsilonWith(model, counted, { ...last, round_id: `${last.round_id}-next` });
        if (!(next <= cap)) {
          throw new errors.PrivacyPolicyError(
            "device_epsilon_exceeded",
            "(next)",
            `one more round of ${model} at q = ${last.sampling_rate}, z = ${last.noise_multiplier} would take this ` +
              `device's ε to ${next.toPrecision(4)} (δ = ${last.delta}, rdp), over maxDeviceEpsilon ${cap}`,
          );
        }
      }
    }
    const timestamp = new Date().toISOString();
    const signature = toBase64Url(await signWith(id, checkinSigningBytes(model, id.deviceId, timestamp)));
    const res = await this.transport.json<CheckinResponse>(
      { method: "POST", path: "/v1/rounds/checkin", json: { model, device_id: id.deviceId, timestamp, signature } },
      options,
    );
    if (!res || typeof res.selected !== "boolean" || (res.selected && !isTask(res.task))) {
      throw invalidResponse("checkin", res);
    }
    if (res.selected) checkInput(res);
    await this.keepReceipt(model, id.deviceId, res);
    return res;
  }

  /** Verifies and keeps the answer's receipt, and applies the device's own ε cap to it (see `checkin`). */
  private async keepReceipt(model: string, deviceId: string, res: CheckinResponse): Promise<void> {
    const roundId = res.selected ? res.task.round_id : res.round_id;
    if (res.receipt === undefined) {
      if (res.selected && res.task.privacy_mode !== "none" && this.requireReceipts) {
        throw new errors.UntrustedReceiptError("missing", `the DP round ${roundId} came without the edge's receipt`);
      }
      return;
    }
    const receipt = await this.receipts.verify(res.receipt, { model, deviceId, roundId });
    // A genuine receipt is kept even when its task is refused below: the coin was flipped, so the round counts.
    const matches = !res.selected || sameNoise(receipt, res.task);
    const updateIncluded = matches && res.selected && res.input !== "noise-only";
    const known = await this.receipts.get(receipt);
    const cap = this.privacyPolicy.maxDeviceEpsilon;
    let declined = known?.declined ?? false;
    let epsilon = 0;
    if (!known && cap !== undefined) {
      const { epsilonWith } = await import("./device-accounting.ts");
      const counted = (await this.receipts.list(model)).filter((e) => !e.declined).map((e) => e.receipt);
      epsilon = epsilonWith(model, counted, receipt);
      declined = !(epsilon <= cap);
    }
    if (!known) await this.receipts.put({ receipt, declined, updateIncluded });
    if (!matches) {
      throw new errors.UntrustedReceiptError(
        "mismatch",
        `the receipt for round ${receipt.round_id} signs other distributed noise than its task runs; the device refuses the task`,
      );
    }
    if (declined) {
      throw new errors.PrivacyPolicyError(
        "device_epsilon_exceeded",
        receipt.round_id,
        `round ${receipt.round_id} (q = ${receipt.sampling_rate}, z = ${receipt.noise_multiplier}) would take this ` +
          `device's ε` +
          (epsilon > 0 ? ` to ${epsilon.toPrecision(4)}` : "") +
          ` past maxDeviceEpsilon ${String(cap)}; the device withdraws from it`,
      );
    }
  }

  /**
   * What this device spent, per population, by its own accounting: ε at the population's δ with the RDP accountant of
   * `@fedge/privacy`, recomputed from the edge's signed check-in receipts that verify under the pinned edge key (one
   * round per check-in, selected or not). Reads only local storage.
   */
  async privacy(): Promise<PopulationPrivacySpend[]> {
    const entries = await this.receipts.list();
    if (entries.length === 0) return [];
    const { privacySpend } = await import("./device-accounting.ts");
    return privacySpend(entries);
  }

  /** The receipts this device keeps for `model` (all populations without it), verified, oldest first. */
  async privacyReceipts(model?: string): Promise<SignedCheckinReceipt[]> {
    return (await this.receipts.list(model)).filter((e) => !e.declined).map((e) => e.receipt);
  }

  /**
   * What the edge recorded for this device (`GET /v1/devices/:id/privacy`, signed by the device): every DP round it
   * checked in for, per population, with the round's charge. Compare with `privacy()` to audit the edge.
   */
  async edgePrivacyRecord(options: RequestOptions = {}): Promise<DevicePrivacyRecord> {
    await this.register(options);
    const id = (await this.identity)!;
    const timestamp = new Date().toISOString();
    const signature = toBase64Url(await signWith(id, devicePrivacySigningBytes(id.deviceId, timestamp)));
    const res = await this.transport.json<DevicePrivacyRecord>(
      {
        method: "GET",
        path: `/v1/devices/${encodeURIComponent(id.deviceId)}/privacy`,
        headers: { "x-fedge-timestamp": timestamp, "x-fedge-signature": signature },
      },
      options,
    );
    if (!res || !Array.isArray(res.populations)) throw invalidResponse("device privacy", res);
    return res;
  }

  /**
   * Takes part in `model`'s current round: check in; if selected, check the task against the app's privacy policy
   * (`PrivacyPolicyError` and nothing trained or uploaded when it is outside), load the model (verified against the
   * pinned aggregator key, if any), train on `data`/`labels` locally, build the clipped (and in `local` mode noised)
   * update with its clip bit when the task asks for one, sign it, put it in the offline queue and upload it. The raw
   * data never leaves the device. Resolves `{ selected: false, reason }` when not sampled, `status: "uploaded"` with
   * the edge's receipt, or `status: "queued"` when the upload must wait (offline, 5xx): `flushQueue()` retries it.
   * Throws a typed error when the edge refuses the update for good.
   */
  async participate(options: ParticipateOptions): Promise<ParticipateResult> {
    if (!options || typeof options !== "object") throw new InvalidInputError("options", "must be an object");
    checkModelName(options.model);
    if (!(options.data instanceof Float32Array) || options.data.length === 0) {
      throw new InvalidInputError("data", "must be a non-empty Float32Array");
    }
    if (
      !(options.labels instanceof Uint8Array || options.labels instanceof Int32Array) ||
      options.labels.length === 0
    ) {
      throw new InvalidInputError("labels", "must be a non-empty Uint8Array or Int32Array");
    }
    const res = await this.checkin(options.model, options);
    if (!res.selected) {
      await this.flushQueue(options).catch(() => undefined);
      return { selected: false, reason: res.reason, roundId: res.round_id, retryAfterS: res.retry_after_s };
    }
    const task = res.task;
    // Before anything touches the data or the network again: a task outside the policy is refused here.
    const { checkPrivacyPolicy } = await import("./policy.ts");
    checkPrivacyPolicy(task, this.privacyPolicy);
    const id = (await this.identity)!;
    if (task.privacy_mode === "distributed") {
      return this.participateSecurely(task, res.input ?? "update", id, options);
    }
    let stats: UpdateStats | undefined;
    if (!(await this.queue.get(task.round_id))) {
      if (Date.parse(task.deadline) <= Date.now()) {
        throw new FedgeClientError("round_expired", `round ${task.round_id} passed its deadline ${task.deadline}`);
      }
      const model = await this.loadModel(task.model, task.model_version, options);
      const { buildUpdate } = await import("./build-update.ts");
      if (options.signal?.aborted) throw new errors.APIUserAbortError({ cause: options.signal.reason });
      const built = await buildUpdate({
        task,
        modelBytes: model.bytes,
        data: options.data,
        labels: options.labels,
        deviceId: id.deviceId,
        // A WebCrypto identity's key cannot be read out: the update is built with a placeholder, then signed by it.
        secretKey: id.secretKey ?? placeholderSecretKey(),
        random: this.random,
      });
      stats = built.stats;
      await this.queue.enqueue({
        roundId: task.round_id,
        deviceId: id.deviceId,
        model: task.model,
        modelVersion: task.model_version,
        deadline: task.deadline,
        bytes: id.privateKey ? await resignUpdate(id, built.bytes) : built.bytes,
      });
    }
    const flushed = await this.flushQueue(options);
    const mine = (list: { entry: QueuedUpdate }[]) => list.find((x) => x.entry.roundId === task.round_id);
    const uploaded = mine(flushed.uploaded) as { entry: QueuedUpdate; receipt: UpdateReceipt } | undefined;
    const base = { selected: true as const, roundId: task.round_id, modelVersion: task.model_version, stats };
    if (uploaded) return { ...base, status: "uploaded", receipt: uploaded.receipt };
    const dropped = mine(flushed.dropped) as FlushResult["dropped"][number] | undefined;
    if (dropped) {
      throw (
        dropped.error ??
        new FedgeClientError("round_expired", `round ${task.round_id} passed its deadline before the upload`)
      );
    }
    const pending = mine(flushed.pending) as FlushResult["pending"][number] | undefined;
    return {
      ...base,
      status: "queued",
      receipt: null,
      error: pending?.error ?? new FedgeClientError("upload_pending", "the upload is still queued"),
    };
  }

  /** Uploads every queued update whose round is still open (`POST /v1/rounds/:id/updates`, the stored bytes). */
  flushQueue(options: RequestOptions = {}): Promise<FlushResult> {
    return this.queue.flush((entry) => this.upload(entry, options));
  }

  /** Sends one signed update; the same bytes on every retry, so the edge's idempotency yields the same receipt. */
  /**
   * A distributed round (`secure-aggregation.ts`, loaded on first use): train and clip as in every mode (or, for a
   * `noise-only` input, take a zero update without training), encode with the round's distributed discrete Gaussian
   * (or the app's encoder), then answer the round's secure-aggregation stages as the edge reaches them. Nothing is
   * queued.
   */
  private async participateSecurely(
    task: RoundTask,
    input: "update" | "noise-only",
    id: StoredIdentity & { deviceId: string },
    options: ParticipateOptions,
  ): Promise<ParticipateResult> {
    const { participateSecurely } = await import("./secure-aggregation.ts");
    return participateSecurely({
      task,
      input,
      identity: id,
      options,
      transport: this.transport,
      random: this.random,
      loadModel: () => this.loadModel(task.model, task.model_version, options),
    });
  }

  private async upload(entry: QueuedUpdate, options: RequestOptions): Promise<UpdateReceipt> {
    const receipt = await this.transport.json<UpdateReceipt>(
      {
        method: "POST",
        path: `/v1/rounds/${encodeURIComponent(entry.roundId)}/updates`,
        body: entry.bytes,
        contentType: UPDATE_MEDIA_TYPE,
      },
      options,
    );
    if (!receipt || typeof receipt.sha256 !== "string") throw invalidResponse("upload", receipt);
    return receipt;
  }
}

/**
 * A task's `input` must fit its round: `noise-only` exists only in a distributed round whose cohort is every
 * checked-in device (`DistributedNoise.cohort` = `checked-in`); anything else is an answer this SDK cannot act on.
 */
function checkInput(res: Extract<CheckinResponse, { selected: true }>): void {
  const input = res.input;
  if (input !== undefined && input !== "update" && input !== "noise-only") throw invalidResponse("checkin", res);
  if (input === "noise-only" && res.task.distributed?.cohort !== "checked-in") {
    throw new FedgeClientError(
      "invalid_task",
      `round ${res.task.round_id} asks for a noise-only input, but its noise is not taken from every checked-in device`,
    );
  }
}

/**
 * Whether the receipt's signed noise is the task's: the device runs the task's noise, and its own accounting (and the
 * edge's ledger) charge the receipt's. A task whose noise or cohort differs from what the edge signed (say a
 * checked-in cohort, charged zero-out, against a receipt of a sampled one) is refused before anything is trained.
 */
function sameNoise(receipt: SignedCheckinReceipt, task: RoundTask): boolean {
  const signed = receipt.distributed_noise;
  const ran = task.distributed;
  if (signed === undefined && ran === undefined) return true;
  return (
    signed !== undefined &&
    ran !== undefined &&
    signed.dimension === ran.dimension &&
    signed.noise_shares === ran.noise_shares &&
    signed.share_variance === ran.share_variance &&
    signed.sensitivity_bound === ran.sensitivity_bound &&
    (signed.corrupt_devices ?? 0) === (ran.corrupt_devices ?? 0) &&
    (signed.cohort ?? "sampled") === (ran.cohort ?? "sampled")
  );
}
