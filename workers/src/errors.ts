/**
 * @module
 * What a thrown error means on the wire: `app.onError`, the one place that writes the `{"error":{"code","message"}}`
 * envelope, asks `edgeError` for the `FedgeError` to render.
 * - A `FedgeError` is rendered as it is (workers code throws them directly: it is the edge).
 * - A library's domain error that knows its HTTP meaning (`toFedgeError()`, e.g. the update codec's `UpdateCodecError`)
 *   is rendered as that, so routes let them propagate instead of catching and converting each one.
 * - The pure libraries' domain errors (ONNX format/layout, privacy parameters and budget) get their status from
 *   `domain-errors.ts`, the one table of what each means on the wire.
 * - Hono's own `HTTPException`s (its JSON validator's malformed body, `@hono/zod-openapi`'s unsupported content type)
 *   get the code fedge uses for their status, the same code a fedge check would have answered with.
 * - Anything else is unexpected: `null`, answered as a 500 `internal` without its message.
 */
import { FedgeError, codeForStatus, type ErrorCode } from "@fedge/protocol";
import { HTTPException } from "hono/http-exception";
import { fedgeErrorOf } from "./domain-errors.ts";

/** A domain error that maps itself onto the envelope (it stays free of HTTP otherwise). */
interface MapsToFedgeError {
  toFedgeError(): FedgeError;
}

function mapsToFedgeError(err: unknown): err is MapsToFedgeError {
  return err instanceof Error && typeof (err as Partial<MapsToFedgeError>).toFedgeError === "function";
}

/** Hono's message for a JSON body it could not parse (`hono/validator`). */
const MALFORMED_JSON = "Malformed JSON in request body";

/** The fedge code for an HTTP status without a more specific one (`bad_request` for a 4xx the shared table lacks). */
export function edgeCodeForStatus(status: number): ErrorCode {
  return codeForStatus(status) ?? "bad_request";
}

/** The `FedgeError` to answer `err` with, or null when it is unexpected (a 500 that hides its message). */
export function edgeError(err: unknown): FedgeError | null {
  if (err instanceof FedgeError) return err;
  if (mapsToFedgeError(err)) return err.toFedgeError();
  const known = fedgeErrorOf(err);
  if (known) return known;
  if (err instanceof HTTPException) {
    const code = err.status === 400 && err.message === MALFORMED_JSON ? "invalid_json" : edgeCodeForStatus(err.status);
    return new FedgeError(code, err.status, err.message || "request rejected", { cause: err });
  }
  return null;
}
