/**
 * @module
 * The aggregator's HTTP client for the edge's admin API (`/v1/admin/...`, contracts in @fedge/protocol `rounds/admin.ts`,
 * `registry/`, `keys/`). Every request is authenticated by the aggregator's Ed25519 request signature
 * (`signAggregatorRequest`, schemas `admin-auth/`) when a signing key is given, else by the operator's admin bearer token.
 * Non-2xx answers become {@link EdgeAdminError} carrying the edge's `{"error":{"code","message"}}` envelope.
 *
 * Written for `npm run demo` (issue 10) as the edge half of the round runner: `fedge aggregate` can adopt it as is.
 */
import {
  ErrorCode,
  FedgeError,
  UPDATE_STREAM_MEDIA_TYPE,
  fromBase64Url,
  readUpdateStream,
  signAggregatorRequest,
  type AcceptedUpdatePage,
  type AuditShadow,
  type AuditShadowRequest,
  type CreatedApiKey,
  type ModelManifest,
  type OpenRoundRequest,
  type PopulationPrivacyStatus,
  type PopulationSharding,
  type PopulationShardingRequest,
  type PrivacyBudgetRequest,
  type RegistryChange,
  type RoundRelease,
  type RoundStatus,
  type SecAggOutcome,
  type SecAggDeviceStage,
  type SecAggStatus,
  type UpdateStreamFrame,
} from "@fedge/protocol";
import { interleave } from "./interleave.ts";

/**
 * An edge admin request that did not succeed: the HTTP status and the edge's error code (`internal` if unknown). It
 * stays a `FedgeError` because it describes a wire answer, status and code as the edge sent them.
 */
export class EdgeAdminError extends FedgeError {
  readonly method: string;
  readonly path: string;
  /** The code exactly as the edge sent it. */
  readonly edgeCode: string;
  /** Seconds the edge asked the caller to wait before repeating the call (`Retry-After`), when it said. */
  readonly retryAfterS: number | undefined;
  constructor(status: number, code: string, message: string, method: string, path: string, retryAfterS?: number) {
    const known = ErrorCode.safeParse(code);
    super(known.success ? known.data : "internal", status, `${method} ${path} → ${status} ${code}: ${message}`);
    this.edgeCode = code;
    this.retryAfterS = retryAfterS;
    this.name = "EdgeAdminError";
    this.method = method;
    this.path = path;
  }
}

/**
 * Why the aggregator's edge client (admin client, registry reads, round runner) cannot go on, when the edge did not
 * answer with an error (that is {@link EdgeAdminError}):
 * - `needs_admin_token`: the call needs the operator's admin token and the client has none;
 * - `close_timeout`: the round did not close in time;
 * - `unexpected_response`: a 2xx answer the client cannot read (content type, cursor);
 * - `corrupt_state`: the runner state file (`edge-runner.json`) is not valid;
 * - `state_mismatch`: the runner state, the checkpoint and the engine disagree (another model, another round);
 * - `round_collecting`: the edge has a round collecting that this aggregator did not open;
 * - `round_id_mismatch`: the edge opened another round id than the one the ledger was charged for;
 * - `version_conflict`: the edge already holds the version number with other bytes;
 * - `stage_overdue`: the edge still shows a secure-aggregation stage long after its deadline.
 */
export type EdgeClientErrorReason =
  | "needs_admin_token"
  | "close_timeout"
  | "unexpected_response"
  | "corrupt_state"
  | "state_mismatch"
  | "round_collecting"
  | "round_id_mismatch"
  | "version_conflict"
  | "release_mismatch"
  | "stage_overdue";

/** The edge client cannot go on (see {@link EdgeClientErrorReason}). A domain error: no HTTP status. */
export class EdgeClientError extends Error {
  readonly reason: EdgeClientErrorReason;
  constructor(reason: EdgeClientErrorReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "EdgeClientError";
    this.reason = reason;
  }
}

/** An edge admin request that got no answer (or no further body bytes) within the client's `timeoutMs`. */
export class EdgeAdminTimeoutError extends FedgeError {
  readonly method: string;
  readonly path: string;
  constructor(method: string, path: string, timeoutMs: number) {
    super("internal", 504, `${method} ${path}: no answer from the edge within ${timeoutMs} ms`);
    this.name = "EdgeAdminTimeoutError";
    this.method = method;
    this.path = path;
  }
}

/** A timer that fires `onIdle` unless it is reset within `ms`; stopped once the exchange is over. */
class IdleTimer {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly ms: number;
  private readonly onIdle: () => void;
  constructor(ms: number, onIdle: () => void) {
    this.ms = ms;
    this.onIdle = onIdle;
    this.reset();
  }
  reset(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(this.onIdle, this.ms);
  }
  stop(): void {
    clearTimeout(this.timer);
  }
}

/** Options of {@link EdgeAdminClient}. */
export interface EdgeAdminClientOptions {
  /** The edge, e.g. `http://127.0.0.1:8787` (no trailing path). */
  baseUrl: string;
  /**
   * The aggregator's tweetnacl Ed25519 secret key (64 bytes): requests are signed with it. Its public key must be trusted
   * by the edge (`FEDGE_AGGREGATOR_PUBLIC_KEY`, or registered under `/v1/admin/aggregator-keys`).
   * @default undefined (use `adminToken`)
   */
  signingKey?: Uint8Array;
  /**
   * Operator admin token (`FEDGE_ADMIN_TOKEN`), used when no signing key is given and for the calls that need it
   * (creating API keys, registering aggregator keys).
   * @default undefined
   */
  adminToken?: string;
  /** The `fetch` to use. @default globalThis.fetch */
  fetch?: typeof fetch;
  /**
   * Longest wait for the edge: for the response headers, and between two chunks of a body (so a long update stream
   * that keeps flowing is fine, a stalled one is not). A request that waits longer fails with `EdgeAdminTimeoutError`.
   * @default 120000
   */
  timeoutMs?: number;
}

/** One accepted update streamed from the edge: the device's registered public key and its signed bytes. */
export type StreamedUpdate = UpdateStreamFrame;

export class EdgeAdminClient {
  readonly baseUrl: string;
  /** The edge's host as the signature names it (with its port when the URL has one). */
  private readonly host: string;
  private readonly signingKey: Uint8Array | undefined;
  private readonly adminToken: string | undefined;
  private readonly fetchFn: typeof fetch;
  private readonly timeoutMs: number;

  constructor(options: EdgeAdminClientOptions) {
    if (!options || typeof options.baseUrl !== "string" || !/^https?:\/\//.test(options.baseUrl)) {
      throw new TypeError("EdgeAdminClient: baseUrl must be an http(s) URL");
    }
    if (
      options.signingKey !== undefined &&
      !(options.signingKey instanceof Uint8Array && options.signingKey.length === 64)
    ) {
      throw new TypeError("EdgeAdminClient: signingKey must be a 64-byte Ed25519 secret key");
    }
    if (options.signingKey === undefined && !options.adminToken) {
      throw new TypeError("EdgeAdminClient: give a signingKey or an adminToken");
    }
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.host = new URL(this.baseUrl).host;
    this.signingKey = options.signingKey;
    this.adminToken = options.adminToken;
    this.fetchFn = options.fetch ?? globalThis.fetch;
    this.timeoutMs = options.timeoutMs ?? 120_000;
    if (!(Number.isFinite(this.timeoutMs) && this.timeoutMs > 0)) {
      throw new FedgeError("bad_request", 400, `EdgeAdminClient: timeoutMs must be a positive number of ms`);
    }
  }

  /** Sends one admin request (signed, or with the admin token when `useToken` or no key) and returns the response. */
  async request(
    method: string,
    path: string,
    body?: { bytes: Uint8Array; contentType: string },
    useToken = false,
  ): Promise<Response> {
    const headers: Record<string, string> = {};
    if (body) headers["content-type"] = body.contentType;
    if (this.signingKey && !useToken) {
      Object.assign(
        headers,
        await signAggregatorRequest({
          method,
          host: this.host,
          path,
          body: body?.bytes,
          secretKey: this.signingKey,
        }),
      );
    } else {
      if (!this.adminToken) throw new EdgeClientError("needs_admin_token", `${method} ${path} needs the admin token`);
      headers.authorization = `Bearer ${this.adminToken}`;
    }
    const controller = new AbortController();
    const timeout = new EdgeAdminTimeoutError(method, path, this.timeoutMs);
    const timer = new IdleTimer(this.timeoutMs, () => controller.abort(timeout));
    const timedOut = (e: unknown) => (controller.signal.aborted ? timeout : e);
    let res: Response;
    try {
      res = await this.fetchFn(this.baseUrl + path, {
        method,
        headers,
        signal: controller.signal,
        ...(body ? { body: body.bytes as Uint8Array<ArrayBuffer> } : {}),
      });
    } catch (e) {
      timer.stop();
      throw timedOut(e);
    }
    if (!res.ok) {
      let text: string;
      try {
        text = await res.text();
      } catch (e) {
        throw timedOut(e);
      } finally {
        timer.stop();
      }
      let code = "http_error";
      let message = text.slice(0, 500);
      try {
        const env = JSON.parse(text) as { error?: { code?: string; message?: string } };
        code = env.error?.code ?? code;
        message = env.error?.message ?? message;
      } catch {
        /* not the envelope */
      }
      const retryAfter = Number(res.headers.get("retry-after") ?? Number.NaN);
      const retryAfterS = Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : undefined;
      throw new EdgeAdminError(res.status, code, message, method, path, retryAfterS);
    }
    if (!res.body) {
      timer.stop();
      return res;
    }
    // The caller reads the body: every chunk must come within timeoutMs of the previous one.
    const reader = res.body.getReader();
    const guarded = new ReadableStream<Uint8Array>({
      async pull(c) {
        timer.reset();
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (e) {
          timer.stop();
          throw timedOut(e);
        }
        if (chunk.done) {
          timer.stop();
          c.close();
        } else c.enqueue(chunk.value);
      },
      cancel(reason) {
        timer.stop();
        return reader.cancel(reason);
      },
    });
    return new Response(guarded, { status: res.status, statusText: res.statusText, headers: res.headers });
  }

  private async json<T>(method: string, path: string, value?: unknown, useToken = false): Promise<T> {
    const body =
      value === undefined
        ? undefined
        : { bytes: new TextEncoder().encode(JSON.stringify(value)), contentType: "application/json" };
    const res = await this.request(method, path, body, useToken);
    return (await res.json()) as T;
  }

  /** `POST /v1/admin/rounds`: opens the population's next round. */
  openRound(request: OpenRoundRequest): Promise<RoundStatus> {
    return this.json<RoundStatus>("POST", "/v1/admin/rounds", request);
  }

  /** `GET /v1/admin/rounds/:id`. */
  roundStatus(roundId: string): Promise<RoundStatus> {
    return this.json<RoundStatus>("GET", `/v1/admin/rounds/${encodeURIComponent(roundId)}`);
  }

  /** `POST /v1/admin/rounds/:id/close` (idempotent). */
  closeRound(roundId: string): Promise<RoundStatus> {
    return this.json<RoundStatus>("POST", `/v1/admin/rounds/${encodeURIComponent(roundId)}/close`);
  }

  /**
   * Polls the round until it stops collecting (deadline, max_reports, or an admin close) and returns its status.
   * @param pollMs time between polls (default 1000)
   * @param timeoutMs give up after this long with a `timeout` error (default 1 hour)
   */
  async waitForClose(roundId: string, pollMs = 1000, timeoutMs = 3_600_000): Promise<RoundStatus> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.roundStatus(roundId);
      if (s.state === "closed" || s.state === "aggregated") return s;
      if (Date.now() > until)
        throw new EdgeClientError("close_timeout", `round ${roundId} did not close within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  /** `GET /v1/admin/rounds/:id/secagg`: a distributed round's secure-aggregation stage and its answers so far. */
  secureAggregationStatus(roundId: string): Promise<SecAggStatus> {
    return this.json<SecAggStatus>("GET", `/v1/admin/rounds/${encodeURIComponent(roundId)}/secagg`);
  }

  /**
   * `POST /v1/admin/rounds/:id/secagg/close`: ends a stage before its deadline (after unmask: finishes the round).
   * With `stage`, a stage that has already closed is left alone (the answer is the stage now); without it, whichever
   * stage is current closes.
   */
  closeSecureAggregationStage(roundId: string, stage?: SecAggDeviceStage): Promise<SecAggStatus> {
    const query = stage === undefined ? "" : `?stage=${stage}`;
    return this.json<SecAggStatus>("POST", `/v1/admin/rounds/${encodeURIComponent(roundId)}/secagg/close${query}`);
  }

  /**
   * `GET /v1/admin/rounds/:id/secagg/sum`: all the aggregator receives of a finished distributed round, the survivors'
   * encoded updates summed mod 2^b, decoded from its little-endian words.
   */
  async secureAggregationSum(
    roundId: string,
  ): Promise<{ sum: Uint32Array; survivors: string[]; modulusBits: number; encodedLength: number }> {
    const o = await this.json<SecAggOutcome>("GET", `/v1/admin/rounds/${encodeURIComponent(roundId)}/secagg/sum`);
    const bytes = fromBase64Url(o.sum);
    if (bytes.length !== o.encoded_length * 4) {
      throw new EdgeClientError("unexpected_response", `a sum of ${o.encoded_length} values has ${bytes.length} bytes`);
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const sum = Uint32Array.from({ length: o.encoded_length }, (_, i) => view.getUint32(i * 4, true));
    return { sum, survivors: o.survivors, modulusBits: o.modulus_bits, encodedLength: o.encoded_length };
  }

  /** `GET /v1/admin/rounds/:id/updates`: one page of the accepted updates' metadata. */
  listUpdates(roundId: string, after = 0, limit = 100): Promise<AcceptedUpdatePage> {
    return this.json<AcceptedUpdatePage>(
      "GET",
      `/v1/admin/rounds/${encodeURIComponent(roundId)}/updates?after=${after}&limit=${limit}`,
    );
  }

  /**
   * Every accepted update of a closed round, streamed page by page from `/v1/admin/rounds/:id/update-stream`
   * (`application/vnd.fedge.update-stream` frames), one frame in memory at a time. A round on `shards` > 1
   * coordinator shards (its status says how many) is read from every shard at once (`?shard=`), one frame ahead
   * per shard.
   */
  async *streamUpdates(roundId: string, pageSize = 100, shards = 1): AsyncGenerator<StreamedUpdate> {
    if (shards > 1) {
      // A sharded round: every shard's updates are read at once, each shard paging on its own.
      yield* interleave(Array.from({ length: shards }, (_, shard) => this.streamPages(roundId, pageSize, shard)));
      return;
    }
    yield* this.streamPages(roundId, pageSize);
  }

  /** The update-stream pages of a round, or of one of its shards. */
  private async *streamPages(roundId: string, pageSize: number, shard?: number): AsyncGenerator<StreamedUpdate> {
    let after = 0;
    const only = shard === undefined ? "" : `&shard=${shard}`;
    for (;;) {
      const res = await this.request(
        "GET",
        `/v1/admin/rounds/${encodeURIComponent(roundId)}/update-stream?after=${after}&limit=${pageSize}${only}`,
      );
      const type = (res.headers.get("content-type") ?? "").split(";")[0]!.trim();
      if (type !== UPDATE_STREAM_MEDIA_TYPE)
        throw new EdgeClientError("unexpected_response", `update stream has content-type ${type}`);
      if (!res.body) return;
      yield* readUpdateStream(res.body as ReadableStream<Uint8Array>);
      const next = res.headers.get("x-fedge-next-cursor");
      if (next === null) return;
      after = Number(next);
      if (!Number.isSafeInteger(after) || after < 0)
        throw new EdgeClientError("unexpected_response", `bad x-fedge-next-cursor ${next}`);
    }
  }

  /** `POST /v1/admin/rounds/:id/publish`: links the model version the round produced (marks it aggregated). */
  publishRound(roundId: string, modelVersion: number): Promise<RoundStatus> {
    return this.json<RoundStatus>("POST", `/v1/admin/rounds/${encodeURIComponent(roundId)}/publish`, {
      model_version: modelVersion,
    });
  }

  /**
   * `POST /v1/admin/rounds/:id/release`: records what this aggregator released for a finished DP round (noised values
   * only; the edge refuses anything else, and a second report, with a 409).
   */
  reportRelease(roundId: string, release: RoundRelease): Promise<RoundStatus> {
    return this.json<RoundStatus>("POST", `/v1/admin/rounds/${encodeURIComponent(roundId)}/release`, release);
  }

  /** `POST /v1/admin/rounds/:id/aggregated`: marks a closed round aggregated without a version. */
  markAggregated(roundId: string): Promise<RoundStatus> {
    return this.json<RoundStatus>("POST", `/v1/admin/rounds/${encodeURIComponent(roundId)}/aggregated`, {});
  }

  /** `POST /v1/admin/models/:name/versions` (multipart): uploads a version with its (signed) manifest. */
  async uploadModelVersion(manifest: ModelManifest, onnx: Uint8Array, promote: boolean): Promise<RegistryChange> {
    const form = new FormData();
    form.set("model", new File([onnx as Uint8Array<ArrayBuffer>], "model.onnx", { type: "application/octet-stream" }));
    form.set("manifest", JSON.stringify(manifest));
    form.set("promote", promote ? "true" : "false");
    // Serialise the multipart body once, so the signature covers exactly the bytes sent.
    const req = new Request("http://multipart.invalid/", { method: "POST", body: form });
    const bytes = new Uint8Array(await req.arrayBuffer());
    const res = await this.request("POST", `/v1/admin/models/${encodeURIComponent(manifest.name)}/versions`, {
      bytes,
      contentType: req.headers.get("content-type")!,
    });
    return (await res.json()) as RegistryChange;
  }

  /** `POST /v1/admin/models/:name/serving`: promotes a version. */
  promote(model: string, version: number): Promise<RegistryChange> {
    return this.json<RegistryChange>("POST", `/v1/admin/models/${encodeURIComponent(model)}/serving`, { version });
  }

  /** `POST /v1/admin/keys` (admin token): a new API key, its secret shown once. */
  createApiKey(name: string, rateLimitPerMinute?: number): Promise<CreatedApiKey> {
    return this.json<CreatedApiKey>(
      "POST",
      "/v1/admin/keys",
      { name, ...(rateLimitPerMinute !== undefined ? { rate_limit_per_minute: rateLimitPerMinute } : {}) },
      true,
    );
  }

  /** `PUT /v1/admin/populations/:name/privacy-budget` (admin token): sets the population's (ε_max, δ). */
  setPrivacyBudget(
    model: string,
    budget: Omit<PrivacyBudgetRequest, "accountant"> & Partial<PrivacyBudgetRequest>,
  ): Promise<PopulationPrivacyStatus> {
    return this.json("PUT", `/v1/admin/populations/${encodeURIComponent(model)}/privacy-budget`, budget, true);
  }

  /**
   * `POST /v1/admin/populations/:name/audit-shadows` (admin token): creates the never-served shadow
   * `<name>-audit-<id>` with its own budget, for an empirical privacy audit.
   */
  createAuditShadow(model: string, request: AuditShadowRequest): Promise<AuditShadow> {
    return this.json("POST", `/v1/admin/populations/${encodeURIComponent(model)}/audit-shadows`, request, true);
  }

  /**
   * `DELETE /v1/admin/populations/:name/audit-shadows/:id` (admin token): deletes the shadow again, its rounds'
   * payloads, its ledger and its versions (the population is untouched). Safe to repeat after a failure.
   */
  async deleteAuditShadow(model: string, id: string): Promise<void> {
    const path = `/v1/admin/populations/${encodeURIComponent(model)}/audit-shadows/${encodeURIComponent(id)}`;
    await (await this.request("DELETE", path, undefined, true)).arrayBuffer();
  }

  /**
   * `DELETE /v1/admin/devices/:id` (admin token): revokes the device everywhere, then deletes its identity (its
   * privacy history on the population ledgers stays). 503 `revocation_pending` (with `retryAfterS`) while the
   * revocation has not reached every population: nothing was deleted yet, repeat the call; 404 once it is gone.
   */
  async deleteDevice(deviceId: string): Promise<void> {
    await (
      await this.request("DELETE", `/v1/admin/devices/${encodeURIComponent(deviceId)}`, undefined, true)
    ).arrayBuffer();
  }

  /**
   * `PUT /v1/admin/populations/:name/sharding` (admin token): how many coordinator shards the population's next round
   * runs on, given directly or derived from the check-ins expected a round.
   */
  setSharding(model: string, sharding: PopulationShardingRequest): Promise<PopulationSharding> {
    return this.json("PUT", `/v1/admin/populations/${encodeURIComponent(model)}/sharding`, sharding, true);
  }

  /** `PUT /v1/admin/device-quotas/:key_id` (admin token): how many active devices an API key may register. */
  setDeviceQuota(keyId: string, maxDevices: number): Promise<{ api_key_id: string; max_devices: number }> {
    return this.json("PUT", `/v1/admin/device-quotas/${encodeURIComponent(keyId)}`, { max_devices: maxDevices }, true);
  }

  /** `PUT /v1/admin/aggregator-keys/:public_key` (admin token): trusts an aggregator key. */
  registerAggregatorKey(publicKeyB64url: string): Promise<{ public_key: string; created_at: string }> {
    return this.json("PUT", `/v1/admin/aggregator-keys/${publicKeyB64url}`, undefined, true);
  }
}
