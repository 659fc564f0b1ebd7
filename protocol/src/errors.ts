/**
 * @module
 * The one error envelope of fedge: every 4xx/5xx body is `{"error":{"code","message"}}`.
 * `FedgeError` is thrown anywhere; only the edge's `app.onError` renders it, and the SDK maps it back.
 */
import { z } from "zod";
import { ERROR_CODES } from "./fedge-error.ts";

export { FedgeError, STATUS_ERROR_CODES, codeForStatus } from "./fedge-error.ts";

/** Stable, snake_case error codes shared by the edge, the SDK and the aggregator. */
export const ErrorCode = z.enum(ERROR_CODES);
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
