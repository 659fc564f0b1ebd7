/**
 * @module
 * `readBody()`: a route middleware that runs before the zod validators. It answers 415 `unsupported_media_type`
 * for a content type the route does not take, 413 `payload_too_large` past the byte cap (declared, or while a
 * streamed body is read: `bodyOf` in ../body-limit.ts is the one capped reader), and 400 `invalid_json` for a
 * malformed JSON body. The bytes (and the parsed JSON) are left in Hono's body cache, so the validator or
 * `c.req.formData()` that follows does not read the stream again. A `streamed` route (the model upload) reads its
 * body itself with a capped streaming reader: only the media type is checked here (`bodyLimit()` already refused a
 * declared length over the cap).
 */
import type { MiddlewareHandler } from "hono";
import { FedgeError } from "@fedge/protocol";
import type { AppEnv } from "../../env.ts";
import { MAX_JSON_BODY_BYTES, bodyOf } from "../body-limit.ts";

export interface ReadBodyOptions {
  /** Accepted media types (lowercase, no parameters), e.g. `application/json`. */
  types: readonly string[];
  /** Largest body in bytes. @default MAX_JSON_BODY_BYTES (64 KiB) */
  maxBytes?: number;
  /** The body may be absent (no content type and no bytes). @default false */
  optional?: boolean;
  /**
   * The handler reads the body as a stream with its own caps (`registry/multipart.ts`, with `maxBytes` as its total),
   * so it is not read here; `cachedBody()` gives the handler the bytes when a signature check already read them.
   * @default false
   */
  streamed?: boolean;
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
  const maxBytes = options.maxBytes ?? MAX_JSON_BODY_BYTES;
  return async (c, next) => {
    const type = mediaType(c.req.header("content-type"));
    if (!type && options.optional && (await bodyOf(c, maxBytes)).length === 0) return next();
    if (!type || !options.types.includes(type)) {
      throw new FedgeError(
        "unsupported_media_type",
        415,
        `content type ${type ?? "(none)"} is not accepted here; use ${options.types.join(" or ")}`,
      );
    }
    if (options.streamed) return next();
    const bytes = await bodyOf(c, maxBytes);
    if (type === "application/json") {
      if (bytes.byteLength === 0) throw new FedgeError("invalid_json", 400, "empty body; expected JSON");
      if (options.parseJson !== false) c.req.bodyCache.json = Promise.resolve(parseJsonBytes(bytes));
    }
    return next();
  };
}
