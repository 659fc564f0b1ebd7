/**
 * @module
 * API key authentication: `Authorization: Bearer fk_<id>_<secret>`. The key id picks the key's AccountLedger
 * Durable Object, which checks the SHA-256 of the key, its revocation, and takes rate-limit tokens. Its answers
 * are cached in the isolate for `AUTH_CACHE_TTL_MS` together with a small lease of tokens (see key-cache.ts for the
 * exact staleness and rate-limit bounds), so most requests make no Durable Object call at all.
 * Sets the context variable `apiKey`. Errors: 401 `unauthorized` (missing, malformed or unknown key),
 * 403 `forbidden` (revoked), 429 `rate_limited` with `Retry-After` (over the key's per-minute limit, or the client's
 * address sent too many unknown keys: ip-rate-limit.ts). Unknown keys are remembered briefly (key-cache.ts), so made-up
 * ids and guessed secrets do not reach a ledger on every request.
 */
import type { Context, MiddlewareHandler } from "hono";
import { API_KEY_PATTERN, DEFAULT_RATE_LIMIT_PER_MINUTE, FedgeError, type ApiKeyInfo } from "@fedge/protocol";
import type { AppEnv, Bindings } from "../../env.ts";
import { keyCache, type KeyCache } from "./key-cache.ts";
import { chargeAuthFailure, refuseIfAuthFailuresExhausted } from "../ip-rate-limit.ts";

/** The authenticated key, as handlers see it (`c.get("apiKey")`). */
export type ApiKeyPrincipal = ApiKeyInfo;

declare module "hono" {
  interface ContextVariableMap {
    /** Set by `apiKeyAuth()`. */
    apiKey: ApiKeyPrincipal;
  }
}

export interface ApiKeyAuthOptions {
  /** Take one token from the key's rate-limit bucket (429 when empty). @default true */
  rateLimit?: boolean;
  /** Where ledger answers are cached. @default keyCache (the isolate's) */
  cache?: KeyCache;
}

/** Id of the local bootstrap key (`FEDGE_DEV_API_KEY`, accepted only when `FEDGE_ENV` is `local`). */
export const DEV_KEY_ID = "dev";

/** Lowercase hex SHA-256 of a key string: what the ledger stores. */
export async function hashApiKey(key: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key)));
  let hex = "";
  for (const b of digest) hex += b.toString(16).padStart(2, "0");
  return hex;
}

/** A fresh key: 80-bit random id and 256-bit random secret, from the CSPRNG. */
export function generateApiKey(): { id: string; key: string } {
  const idBytes = crypto.getRandomValues(new Uint8Array(10));
  let id = "";
  for (const b of idBytes) id += b.toString(16).padStart(2, "0");
  const secret = crypto.getRandomValues(new Uint8Array(32));
  let bin = "";
  for (const b of secret) bin += String.fromCharCode(b);
  const b64url = btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return { id, key: `fk_${id}_${b64url}` };
}

/** The ledger stub of a key id. */
export function ledgerFor(env: Bindings, keyId: string) {
  return env.ACCOUNTS.getByName(`key:${keyId}`);
}

/** The bearer token of a request, or `null`. */
export function bearerToken(c: Context): string | null {
  const header = c.req.header("authorization");
  if (!header) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}

/** Constant-time string equality (compares SHA-256 digests, so lengths leak nothing either). */
export async function constantTimeEqual(a: string, b: string): Promise<boolean> {
  const enc = new TextEncoder();
  const [da, db] = await Promise.all([
    crypto.subtle.digest("SHA-256", enc.encode(a)),
    crypto.subtle.digest("SHA-256", enc.encode(b)),
  ]);
  const x = new Uint8Array(da);
  const y = new Uint8Array(db);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i]! ^ y[i]!;
  return diff === 0;
}

let devKeyEnsured: string | null = null;

async function ensureDevKey(env: Bindings, hash: string): Promise<void> {
  if (devKeyEnsured === hash) return;
  await ledgerFor(env, DEV_KEY_ID).ensure({
    id: DEV_KEY_ID,
    name: "local development key (FEDGE_DEV_API_KEY)",
    hash,
    rateLimitPerMinute: DEFAULT_RATE_LIMIT_PER_MINUTE,
    now: Date.now(),
  });
  devKeyEnsured = hash;
}

/** Require a valid, unrevoked API key; sets `c.get("apiKey")`. */
export function apiKeyAuth(options: ApiKeyAuthOptions = {}): MiddlewareHandler<AppEnv> {
  const rateLimit = options.rateLimit ?? true;
  const cache = options.cache ?? keyCache;
  return async (c, next) => {
    // An address that keeps sending bad keys is refused before its key is looked at (ip-rate-limit.ts).
    refuseIfAuthFailuresExhausted(c);
    const unknown = () => {
      chargeAuthFailure(c);
      return new FedgeError("unauthorized", 401, "unknown API key");
    };
    const token = bearerToken(c);
    if (!token) throw new FedgeError("unauthorized", 401, "missing API key: send Authorization: Bearer <key>");
    const m = API_KEY_PATTERN.exec(token);
    if (!m) throw unknown();
    const keyId = m[1]!;
    const devKey = keyId === DEV_KEY_ID;
    // The bootstrap key exists only on a local edge, whatever the ledger (or this isolate's cache) remembers.
    if (devKey && c.env.FEDGE_ENV !== "local") throw unknown();
    const hash = await hashApiKey(token);
    // (`devKeyEnsured === hash` already proves the token is FEDGE_DEV_API_KEY: skip the compare.)
    const devKeyValue = c.env.FEDGE_DEV_API_KEY;
    if (devKey && devKeyEnsured !== hash && devKeyValue && (await constantTimeEqual(token, devKeyValue))) {
      await ensureDevKey(c.env, hash);
      // A rotated dev key: drop what this isolate remembers about the old one (its hash, a negative entry).
      cache.forget(DEV_KEY_ID);
    }
    // The ledger stub is made only on a cache miss.
    const verdict = await cache.admit(keyId, hash, rateLimit, (input) => ledgerFor(c.env, keyId).lease(input));
    switch (verdict.status) {
      case "unknown":
        throw unknown();
      case "revoked":
        throw new FedgeError("forbidden", 403, "this API key has been revoked");
      case "rate_limited":
        c.header("Retry-After", String(verdict.retryAfterSeconds));
        throw new FedgeError(
          "rate_limited",
          429,
          `rate limit of ${verdict.key.rate_limit_per_minute} requests per minute exceeded; retry in ${verdict.retryAfterSeconds} s`,
        );
      case "ok":
        c.header("X-RateLimit-Limit", String(verdict.key.rate_limit_per_minute));
        c.header("X-RateLimit-Remaining", String(verdict.remaining));
        c.set("apiKey", verdict.key);
        await next();
    }
  };
}
