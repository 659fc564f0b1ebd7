/**
 * @module
 * `FedgeError` and the error codes, free of zod so that code shipped to devices (the update codec, the ONNX reader)
 * can throw it without pulling the schema library into their bundle. `errors.ts` adds the zod schemas.
 */

/** Stable, snake_case error codes shared by the edge, the SDK and the aggregator. */
export const ERROR_CODES = [
  "bad_request",
  "invalid_json",
  "validation_failed",
  "unauthorized",
  "forbidden",
  "not_found",
  "method_not_allowed",
  "conflict",
  "payload_too_large",
  "unsupported_media_type",
  "rate_limited",
  "quota_exceeded",
  "invalid_shape",
  "invalid_datatype",
  "out_of_range",
  "unknown_tensor",
  "missing_tensor",
  "inference_failed",
  "non_finite",
  "invalid_model",
  "model_not_found",
  "version_not_found",
  "device_not_found",
  "device_revoked",
  "revocation_pending",
  "bad_signature",
  "stale_timestamp",
  "round_not_found",
  "round_closed",
  "round_full",
  "stage_closed",
  "nonce_invalid",
  "nonce_used",
  "norm_exceeded",
  "malformed_update",
  "budget_exceeded",
  "audit_shadow",
  "internal",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * The code an HTTP status means when nothing more specific is known: the edge's answer to a framework exception (a
 * body Hono could not parse, a content type its validator refused), and the SDK's reading of a response that is not
 * the envelope (a proxy's 502 page). One table, so both sides name a status the same way.
 */
export const STATUS_ERROR_CODES = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  405: "method_not_allowed",
  409: "conflict",
  413: "payload_too_large",
  415: "unsupported_media_type",
  429: "rate_limited",
} as const satisfies Record<number, ErrorCode>;

/**
 * The code {@link STATUS_ERROR_CODES} gives `status`, `internal` for any 5xx, and null for a status without one (the
 * caller picks its own fallback: the edge answers `bad_request`, the SDK keeps `http_error`).
 */
export function codeForStatus(status: number): ErrorCode | null {
  const known = (STATUS_ERROR_CODES as Partial<Record<number, ErrorCode>>)[status];
  if (known) return known;
  return status >= 500 ? "internal" : null;
}

/** The JSON body of every 4xx/5xx answer. */
export interface ErrorEnvelopeBody {
  error: { code: string; message: string };
}

/** An error with an HTTP status and a stable code; safe to show to callers (never carries a stack). */
export class FedgeError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  constructor(code: ErrorCode, status: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "FedgeError";
    this.code = code;
    this.status = status;
  }
  toJSON(): ErrorEnvelopeBody {
    return { error: { code: this.code, message: this.message } };
  }
}
