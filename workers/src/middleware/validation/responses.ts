/**
 * @module
 * OpenAPI response entries for the error envelope, so every route documents its 4xx in one line.
 */
import { ErrorEnvelope } from "@fedge/protocol";

const DESCRIPTIONS = {
  400: "Invalid request (`validation_failed`, `invalid_json`, `invalid_shape`, `non_finite`, `invalid_model`, …)",
  401: "Missing or unknown credential (`unauthorized`)",
  403: "Revoked or insufficient credential (`forbidden`)",
  404: "Unknown resource (`model_not_found`, `version_not_found`, `not_found`)",
  409: "Conflicts with the current state (`conflict`)",
  413: "Body, model or batch over its cap (`payload_too_large`)",
  415: "Unsupported content type (`unsupported_media_type`)",
  429: "Rate limited (`rate_limited`, with `Retry-After`)",
} as const;

export type ErrorStatus = keyof typeof DESCRIPTIONS;

/** `{ [status]: { description, content: { "application/json": { schema: ErrorEnvelope } } } }` for each status. */
export function errorResponses<S extends ErrorStatus>(...statuses: S[]) {
  const out = {} as Record<
    S,
    { description: string; content: { "application/json": { schema: typeof ErrorEnvelope } } }
  >;
  for (const s of statuses)
    out[s] = { description: DESCRIPTIONS[s], content: { "application/json": { schema: ErrorEnvelope } } };
  return out;
}
