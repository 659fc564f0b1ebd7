/**
 * @module
 * One streaming cap for every request body the edge reads.
 *
 * Nothing in the edge reads a body except through `readCapped` (directly, for update uploads), `bodyOf` (the
 * signed-admin verifier and `readBody()`, which leave the bytes in Hono's body cache, so the zod validators and
 * `c.req.formData()` that follow parse those bytes instead of reading the stream again) or the model upload's
 * streaming multipart reader (`registry/multipart.ts`, capped at `MAX_MODEL_UPLOAD_BYTES` in total; it takes the
 * cached bytes instead when the signed-admin verifier read them). Both refuse a declared
 * `Content-Length` above the cap before reading anything, and stop reading a streamed (chunked) body as soon as it
 * passes the cap: a body without a length costs at most its cap in memory, never what the sender chooses.
 *
 * `bodyLimit()` runs first for every request: a declared length above the route's cap is a 413 before any
 * credential check, Durable Object or R2 call. `bodyCapFor` is the one table of caps, shared with the routes.
 */
import type { Context, MiddlewareHandler } from "hono";
import {
  DEFAULT_MAX_UPDATE_BYTES,
  FedgeError,
  MAX_INFER_BODY_BYTES,
  MAX_MODEL_BYTES,
  MAX_PREDICT_BODY_BYTES,
  SECAGG_MAX_ENCODED_LENGTH,
} from "@fedge/protocol";
import type { AppEnv } from "../env.ts";

/** Cap of a JSON body (every JSON route: check-in, registration, admin requests). */
export const MAX_JSON_BODY_BYTES = 64 * 1024;
/** Cap of a model upload: the ONNX cap plus room for the manifest and the multipart framing. */
export const MAX_MODEL_UPLOAD_BYTES = MAX_MODEL_BYTES + 256 * 1024;
/** Cap of an update upload before its round is known (the round's own cap is smaller). */
export const MAX_UPDATE_BODY_BYTES = DEFAULT_MAX_UPDATE_BYTES;

const MODEL_UPLOAD_PATH = /^\/v1\/admin\/models\/[^/]+\/versions\/?$/;
const PREDICT_PATH = /^\/v1\/models\/[^/]+\/predict\/?$/;
const INFER_PATH = /^\/v2\/models\/[^/]+(\/versions\/[^/]+)?\/infer\/?$/;
const UPDATE_UPLOAD_PATH = /^\/v1\/rounds\/[^/]+\/updates\/?$/;
const SECAGG_STAGE_PATH = /^\/v1\/rounds\/[^/]+\/secagg\/[a-z-]+\/?$/;
/**
 * Cap of a secure-aggregation message: the largest masked input (`SECAGG_MAX_ENCODED_LENGTH` words of 4 bytes in
 * base64url, 1.4 MB) with room for its JSON; each accepted message is one row (≤ 2 MB) of the round's log.
 */
export const MAX_SECAGG_BODY_BYTES = Math.ceil((SECAGG_MAX_ENCODED_LENGTH * 4 * 4) / 3) + 64 * 1024;

/** The largest body the route at `path` takes (every other route takes a small JSON body or none). */
export function bodyCapFor(method: string, path: string): number {
  if (method === "POST") {
    if (MODEL_UPLOAD_PATH.test(path)) return MAX_MODEL_UPLOAD_BYTES;
    if (PREDICT_PATH.test(path)) return MAX_PREDICT_BODY_BYTES;
    if (INFER_PATH.test(path)) return MAX_INFER_BODY_BYTES;
    if (UPDATE_UPLOAD_PATH.test(path)) return MAX_UPDATE_BODY_BYTES;
    if (SECAGG_STAGE_PATH.test(path)) return MAX_SECAGG_BODY_BYTES;
  }
  return MAX_JSON_BODY_BYTES;
}

function tooLarge(maxBytes: number, size?: number): FedgeError {
  const what = size === undefined ? "the body is larger than" : `body of ${size} bytes exceeds`;
  return new FedgeError("payload_too_large", 413, `${what} this endpoint's cap of ${maxBytes} bytes`);
}

/** The declared `Content-Length` when it is a plain decimal number, else null. */
function declaredLength(request: Request): number | null {
  const declared = request.headers.get("content-length");
  return declared !== null && /^\d+$/.test(declared.trim()) ? Number(declared) : null;
}

/**
 * Reads `request`'s body up to `maxBytes`: a declared length above the cap is refused before reading, a streamed body
 * is cut off as soon as it passes the cap. The result starts 4-byte aligned in its own buffer (so the update codec can
 * view a float32 payload in place).
 */
export async function readCapped(request: Request, maxBytes: number): Promise<Uint8Array> {
  const declared = declaredLength(request);
  if (declared !== null && declared > maxBytes) throw tooLarge(maxBytes, declared);
  if (request.body === null) return new Uint8Array(0);
  // A declared length within the cap is what the runtime delivers (it ends the body there): read it in one piece.
  if (declared !== null) return new Uint8Array(await request.arrayBuffer());
  const reader = request.body.getReader();
  let buf = new Uint8Array(Math.min(maxBytes, 16 * 1024) || 1);
  let used = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (used + value.length > maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw tooLarge(maxBytes);
      }
      if (used + value.length > buf.length) {
        const grown = new Uint8Array(Math.min(maxBytes, Math.max(buf.length * 2, used + value.length)));
        grown.set(buf.subarray(0, used));
        buf = grown;
      }
      buf.set(value, used);
      used += value.length;
    }
  } finally {
    reader.releaseLock();
  }
  return used === buf.length ? buf : buf.slice(0, used);
}

/**
 * The request's body, read once through `readCapped` and kept in Hono's body cache (so `c.req.json()`,
 * `c.req.formData()` and the validators use these bytes); a body already cached is checked against `maxBytes` too.
 */
export async function bodyOf(c: Context, maxBytes: number): Promise<Uint8Array> {
  // Hono keeps promises in its body cache (its type names the resolved values).
  const cache = c.req.bodyCache as unknown as { arrayBuffer?: Promise<ArrayBuffer> };
  const cached = cache.arrayBuffer;
  if (cached) {
    const bytes = new Uint8Array(await cached);
    if (bytes.length > maxBytes) throw tooLarge(maxBytes, bytes.length);
    return bytes;
  }
  const bytes = await readCapped(c.req.raw, maxBytes);
  const buffer =
    bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
      ? (bytes.buffer as ArrayBuffer)
      : (bytes.slice().buffer as ArrayBuffer);
  cache.arrayBuffer = Promise.resolve(buffer);
  return bytes;
}

/** The body's bytes when `bodyOf` already read them (into Hono's body cache), else `null`: nothing is read here. */
export async function cachedBody(c: Context): Promise<Uint8Array | null> {
  const cached = (c.req.bodyCache as unknown as { arrayBuffer?: Promise<ArrayBuffer> }).arrayBuffer;
  return cached ? new Uint8Array(await cached) : null;
}

/** First middleware of the app: a declared length over the route's cap is a 413 before anything else runs. */
export function bodyLimit(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const declared = declaredLength(c.req.raw);
    if (declared !== null) {
      const cap = bodyCapFor(c.req.method, c.req.path);
      if (declared > cap) throw tooLarge(cap, declared);
    }
    return next();
  };
}
