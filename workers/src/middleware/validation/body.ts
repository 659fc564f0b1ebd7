/**
 * @module
 * `readBody()`: a route middleware that runs before the zod validators. It answers 415 `unsupported_media_type`
 * for a content type the route does not take, 413 `payload_too_large` past the byte cap (declared or actual), and
 * 400 `invalid_json` for a malformed JSON body. The parsed JSON is left in Hono's body cache, so the validator that
 * follows does not parse it again.
 */
import type { MiddlewareHandler } from "hono";
import { FedgeError } from "@fedge/protocol";
import type { AppEnv } from "../../env.ts";

export interface ReadBodyOptions {
  /** Accepted media types (lowercase, no parameters), e.g. `application/json`. */
  types: readonly string[];
  /** Largest body in bytes. */
  maxBytes: number;
  /**
   * Parse a JSON body here (into Hono's body cache). A route that reads its JSON itself (predict's single-pass reader)
   * sets `false` and calls {@link parseJsonBytes} for what it does not take, so the answers stay the same.
   * @default true
   */
  parseJson?: boolean;
}

/** JSON.parse of a UTF-8 body, or 400 `invalid_json` (empty or malformed). */
export function parseJsonBytes(buffer: ArrayBuffer | Uint8Array): unknown {
  if (buffer.byteLength === 0) throw new FedgeError("invalid_json", 400, "empty body; expected JSON");
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(buffer));
  } catch (err) {
    throw new FedgeError("invalid_json", 400, `malformed JSON: ${(err as Error).message}`);
  }
}

/** The media type of a request (lowercase, without parameters), or `null`. */
export function mediaType(header: string | undefined): string | null {
  if (!header) return null;
  const t = header.split(";")[0]!.trim().toLowerCase();
  return t.length > 0 ? t : null;
}

export function readBody(options: ReadBodyOptions): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const type = mediaType(c.req.header("content-type"));
    if (!type || !options.types.includes(type)) {
      throw new FedgeError(
        "unsupported_media_type",
        415,
        `content type ${type ?? "(none)"} is not accepted here; use ${options.types.join(" or ")}`,
      );
    }
    const declared = Number(c.req.header("content-length") ?? "NaN");
    if (Number.isFinite(declared) && declared > options.maxBytes) {
      throw new FedgeError(
        "payload_too_large",
        413,
        `body of ${declared} bytes exceeds the cap of ${options.maxBytes}`,
      );
    }
    if (type === "multipart/form-data") return next();
    const buffer = await c.req.arrayBuffer();
    if (buffer.byteLength > options.maxBytes) {
      throw new FedgeError(
        "payload_too_large",
        413,
        `body of ${buffer.byteLength} bytes exceeds the cap of ${options.maxBytes}`,
      );
    }
    if (type === "application/json") {
      if (buffer.byteLength === 0) throw new FedgeError("invalid_json", 400, "empty body; expected JSON");
      if (options.parseJson !== false) c.req.bodyCache.json = Promise.resolve(parseJsonBytes(buffer));
    }
    return next();
  };
}
