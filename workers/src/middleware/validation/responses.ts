/**
 * @module
 * OpenAPI response entries for the error envelope, so every route documents its 4xx in one line:
 * `...errorResponses(400, 404)` uses the default descriptions below, and `...errorResponses(400, { 409: "Round is
 * still collecting" })` names what a status means for this route.
 */
import type { z } from "@hono/zod-openapi";
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
  503: "Not done yet: repeat the call after `Retry-After`",
} as const;

export type ErrorStatus = keyof typeof DESCRIPTIONS;

/** A status with its default description, or statuses with the description this route gives them. */
export type ErrorResponseSpec = ErrorStatus | { readonly [S in ErrorStatus]?: string };

type StatusesOf<T> = T extends ErrorStatus ? T : T extends object ? keyof T & ErrorStatus : never;

export interface ErrorResponse {
  description: string;
  content: { "application/json": { schema: typeof ErrorEnvelope } };
}

/** `{ [status]: { description, content: { "application/json": { schema: ErrorEnvelope } } } }` for each status. */
export function errorResponses<const A extends readonly ErrorResponseSpec[]>(
  ...specs: A
): Record<StatusesOf<A[number]>, ErrorResponse> {
  const out: Partial<Record<ErrorStatus, ErrorResponse>> = {};
  const add = (status: ErrorStatus, description: string) => {
    out[status] = { description, content: { "application/json": { schema: ErrorEnvelope } } };
  };
  for (const spec of specs) {
    if (typeof spec === "number") add(spec, DESCRIPTIONS[spec]);
    else for (const [s, d] of Object.entries(spec)) if (d !== undefined) add(Number(s) as ErrorStatus, d);
  }
  return out as Record<StatusesOf<A[number]>, ErrorResponse>;
}

/** What `adminAuth()` answers, for the admin routes that accept the admin token or the aggregator's signature. */
export const ADMIN_AUTH_ERRORS = {
  400: "Invalid request",
  401: "No admin credential, or a bad aggregator signature",
  403: "Not an admin credential",
} as const;

/** A JSON success response of `schema`. */
export function jsonResponse<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}
