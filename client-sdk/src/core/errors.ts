/**
 * @module
 * The SDK's typed errors. Every failure the SDK raises is a {@link FedgeClientError}; HTTP failures are
 * {@link FedgeAPIError}s built from the edge's `{"error":{"code","message"}}` envelope plus the status, with one
 * subclass per class of status (as openai-node's `APIError.generate`, src/core/error.ts). Connection failures, timeouts
 * and user aborts have no status.
 */
import { codeForStatus } from "@fedge/protocol";

/** Root of every error the SDK throws. `code` is a stable snake_case string. */
export class FedgeClientError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "FedgeClientError";
    this.code = code;
  }
}

/** A bad argument caught before any request was sent (nothing was changed anywhere). */
export class InvalidInputError extends FedgeClientError {
  /** The argument (or field) that was rejected. */
  readonly param: string;
  constructor(param: string, message: string) {
    super("invalid_input", `${param}: ${message}`);
    this.name = "InvalidInputError";
    this.param = param;
  }
}

/** Why a task was refused by the app's privacy policy (see `PrivacyPolicy`). */
export type PrivacyPolicyReason =
  | "mode_not_allowed"
  | "noise_missing"
  | "noise_too_low"
  | "epsilon_too_high"
  | "epsilon_missing"
  | "delta_too_high"
  /** A distributed task without its secure aggregation: the device would have nowhere to send its masked update. */
  | "secure_aggregation_missing"
  /** A distributed task whose noise and secure aggregation are not one ring (b, d'): its sum would not decode. */
  | "noise_mismatch"
  /** One more round would take the device's own ε past `maxDeviceEpsilon` (before check-in, or by its receipt). */
  | "device_epsilon_exceeded";

/**
 * The device refused a round task because it is outside the app's privacy policy: nothing was trained on and nothing
 * was uploaded. `code` is `privacy_policy_refused`; `reason` says which rule.
 */
export class PrivacyPolicyError extends FedgeClientError {
  readonly reason: PrivacyPolicyReason;
  /** The refused round. */
  readonly roundId: string;
  constructor(reason: PrivacyPolicyReason, roundId: string, message: string) {
    super("privacy_policy_refused", `round ${roundId} refused by the privacy policy (${reason}): ${message}`);
    this.name = "PrivacyPolicyError";
    this.reason = reason;
    this.roundId = roundId;
  }
}

/**
 * Why the device's part in a distributed round's secure aggregation ended without finishing:
 * - `dropped`: the edge closed a stage before this device answered it (the round goes on without the device);
 * - `aborted`: the round's secure aggregation aborted (too few devices left);
 * - `timeout`: the round did not reach the device's next stage within `secureAggregation.timeoutMs`;
 * - `refused`: a message from the edge failed the protocol's checks (tampered, replayed, inconsistent, a bad
 *   signature): the device stops and reveals nothing more.
 */
export type SecureAggregationFailure = "dropped" | "aborted" | "timeout" | "refused";

/** The device's part in a distributed round ended early. `code` is `secure_aggregation_failed`. */
export class SecureAggregationError extends FedgeClientError {
  readonly reason: SecureAggregationFailure;
  readonly roundId: string;
  constructor(reason: SecureAggregationFailure, roundId: string, message: string, options?: { cause?: unknown }) {
    super("secure_aggregation_failed", `round ${roundId}: secure aggregation ${reason}: ${message}`, options);
    this.name = "SecureAggregationError";
    this.reason = reason;
    this.roundId = roundId;
  }
}

/** Why a model was not trusted (see `FedgeClientOptions.aggregatorPublicKey`). */
export type UntrustedModelReason = "unsigned" | "wrong_key" | "bad_signature" | "mismatch" | "integrity_unavailable";

/**
 * The model's manifest is not signed by the pinned aggregator key (or does not describe these bytes): the SDK neither
 * runs it (`predictLocal`) nor trains on it (`participate`). `code` is `untrusted_model`.
 */
export class UntrustedModelError extends FedgeClientError {
  readonly reason: UntrustedModelReason;
  constructor(reason: UntrustedModelReason, message: string) {
    super("untrusted_model", `${message} (${reason})`);
    this.name = "UntrustedModelError";
    this.reason = reason;
  }
}

/** Why a check-in receipt was refused (see `FedgeClientOptions.edgePublicKey`). */
export type UntrustedReceiptReason = "malformed" | "bad_signature" | "mismatch" | "missing" | "no_edge_key";

/**
 * A check-in receipt did not verify under the pinned edge key, was for another device, population or round, or was
 * missing where the device needs one: it is not stored, and the device does not take part in that round.
 * `code` is `untrusted_receipt`.
 */
export class UntrustedReceiptError extends FedgeClientError {
  readonly reason: UntrustedReceiptReason;
  constructor(reason: UntrustedReceiptReason, message: string) {
    super("untrusted_receipt", `${message} (${reason})`);
    this.name = "UntrustedReceiptError";
    this.reason = reason;
  }
}

/** Fields every API error carries. */
export interface APIErrorInit {
  status?: number | undefined;
  code: string;
  message: string;
  requestId?: string | undefined;
  headers?: Headers | undefined;
  cause?: unknown;
}

/** An HTTP error answered by the edge, or a failure to reach it (then `status` is undefined). */
export class FedgeAPIError extends FedgeClientError {
  /** HTTP status; undefined when no response arrived. */
  readonly status: number | undefined;
  /** The edge's request id (`x-request-id` header), when it sent one. */
  readonly requestId: string | undefined;
  readonly headers: Headers | undefined;
  constructor(init: APIErrorInit) {
    super(init.code, init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "FedgeAPIError";
    this.status = init.status;
    this.requestId = init.requestId;
    this.headers = init.headers;
  }

  /**
   * The typed error for an HTTP response: `body` is the parsed JSON body (or its text, or undefined). A body that is
   * not the envelope still yields an error whose code is derived from the status.
   */
  static generate(status: number, body: unknown, headers?: Headers): FedgeAPIError {
    // The envelope `{"error":{"code","message"}}`, or the Open Inference Protocol's `{"error": message, "code"}`.
    const raw = (body as { error?: unknown; code?: unknown } | undefined)?.error;
    const envelope = (typeof raw === "string" ? { code: (body as { code?: unknown }).code, message: raw } : raw) as
      { code?: unknown; message?: unknown } | undefined;
    const code =
      envelope && typeof envelope.code === "string" && /^[a-z][a-z0-9_]*$/.test(envelope.code)
        ? envelope.code
        : defaultCode(status);
    const message =
      envelope && typeof envelope.message === "string"
        ? envelope.message
        : typeof body === "string" && body.length > 0
          ? body.slice(0, 500)
          : `HTTP ${status}`;
    const init: APIErrorInit = { status, code, message, requestId: headers?.get("x-request-id") ?? undefined, headers };
    if (status === 400) return new BadRequestError(init);
    if (status === 401) return new AuthenticationError(init);
    if (status === 403) return new PermissionDeniedError(init);
    if (status === 404) return new NotFoundError(init);
    if (status === 409) return new ConflictError(init);
    if (status === 413) return new PayloadTooLargeError(init);
    if (status === 429) return new RateLimitError(init);
    if (status >= 500) return new InternalServerError(init);
    return new FedgeAPIError(init);
  }
}

/** The code of a response that is not the envelope: the edge's own table, `http_error` for a status it lacks. */
function defaultCode(status: number): string {
  return codeForStatus(status) ?? "http_error";
}

/** 400: the request was malformed or failed validation. */
export class BadRequestError extends FedgeAPIError {
  override readonly name = "BadRequestError";
}
/** 401: missing or wrong API key. */
export class AuthenticationError extends FedgeAPIError {
  override readonly name = "AuthenticationError";
}
/** 403: the key (or device) is not allowed to do this, e.g. revoked. */
export class PermissionDeniedError extends FedgeAPIError {
  override readonly name = "PermissionDeniedError";
}
/** 404: unknown model, version, device or round. */
export class NotFoundError extends FedgeAPIError {
  override readonly name = "NotFoundError";
}
/** 409: the state does not allow it, e.g. the round is closed or the nonce was used. */
export class ConflictError extends FedgeAPIError {
  override readonly name = "ConflictError";
}
/** 413: the body is over the edge's size cap. */
export class PayloadTooLargeError extends FedgeAPIError {
  override readonly name = "PayloadTooLargeError";
}
/** 429: rate limited; `retryAfterMs` is the server's `Retry-After`, when it sent one. */
export class RateLimitError extends FedgeAPIError {
  override readonly name = "RateLimitError";
  get retryAfterMs(): number | undefined {
    return this.headers ? parseRetryAfterMs(this.headers, Date.now()) : undefined;
  }
}
/** 5xx: the edge failed. Retried automatically. */
export class InternalServerError extends FedgeAPIError {
  override readonly name = "InternalServerError";
}

/** The request never got a response (DNS, refused connection, reset, offline). Retried automatically. */
export class APIConnectionError extends FedgeAPIError {
  constructor(init: { message?: string; cause?: unknown; code?: string } = {}) {
    super({ code: init.code ?? "connection_error", message: init.message ?? "connection error", cause: init.cause });
    this.name = "APIConnectionError";
  }
}
/** One attempt took longer than `timeoutMs`. Retried automatically. */
export class APIConnectionTimeoutError extends APIConnectionError {
  constructor(init: { message?: string; cause?: unknown } = {}) {
    super({ code: "timeout", message: init.message ?? "request timed out", cause: init.cause });
    this.name = "APIConnectionTimeoutError";
  }
}
/** The caller's `AbortSignal` fired. Never retried. */
export class APIUserAbortError extends FedgeAPIError {
  constructor(init: { message?: string; cause?: unknown } = {}) {
    super({ code: "aborted", message: init.message ?? "request was aborted", cause: init.cause });
    this.name = "APIUserAbortError";
  }
}

/**
 * Milliseconds to wait from `retry-after-ms` (non-standard, milliseconds) or `Retry-After` (RFC 9110 §10.2.3: delay in
 * seconds or an HTTP date). Undefined when absent or unparseable; never negative.
 */
export function parseRetryAfterMs(headers: Headers, nowMs: number): number | undefined {
  const ms = headers.get("retry-after-ms");
  if (ms !== null && ms.trim() !== "") {
    const v = Number(ms);
    if (Number.isFinite(v) && v >= 0) return v;
  }
  const ra = headers.get("retry-after");
  if (ra === null || ra.trim() === "") return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(ra)) return Number(ra) * 1000;
  if (!/^[A-Za-z]{3}, /.test(ra.trim())) return undefined; // IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT"
  const date = Date.parse(ra);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}
