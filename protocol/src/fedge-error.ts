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
  "bad_signature",
  "stale_timestamp",
  "round_not_found",
  "round_closed",
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
