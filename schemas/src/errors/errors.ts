/**
 * @module
 * The one error envelope of fedge: every 4xx/5xx body is `{"error":{"code","message"}}`.
 * `FedgeError` is thrown anywhere; only the edge's `app.onError` renders it, and the SDK maps it back.
 */
import { z } from "zod";

/** Stable, snake_case error codes shared by the edge, the SDK and the aggregator. */
export const ErrorCode = z.enum([
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
  "nonce_invalid",
  "nonce_used",
  "norm_exceeded",
  "malformed_update",
  "budget_exceeded",
  "internal",
]);
export type ErrorCode = z.infer<typeof ErrorCode>;

export const ErrorEnvelope = z
  .object({
    error: z.object({
      code: z.string().regex(/^[a-z][a-z0-9_]*$/),
      message: z.string(),
    }),
  })
  .meta({ id: "ErrorEnvelope" });
export type ErrorEnvelope = z.infer<typeof ErrorEnvelope>;

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
  toJSON(): ErrorEnvelope {
    return { error: { code: this.code, message: this.message } };
  }
}
