/**
 * @module
 * Admin authentication by the aggregator's Ed25519 request signature (contract: `@fedge/protocol` admin-auth).
 *
 * `aggregatorSignatureVerifier` plugs into the verifier list of `adminAuth({ aggregator: true })` (the round and publish
 * routes): it skips requests without an `x-fedge-signature` header and otherwise decides, in this order and reading the
 * body only after the cheap checks passed: header shapes, timestamp within ±60 s, key trusted, body (through the route's
 * streaming cap), signature over method, host, path, timestamp, nonce and body digest, and last the nonce's single use
 * (the key's AdminNonces Durable Object, reached only with a valid signature). Trusted keys are the `FEDGE_AGGREGATOR_PUBLIC_KEY` var/secret
 * (comma-separated base64url keys, for rotation) plus keys an admin registered in the REGISTRY KV namespace under
 * `aggregator-key:<public key>` (`/v1/admin/aggregator-keys`). KV is eventually consistent: removing a registered key can take
 * up to a minute to reach every location; remove a compromised key from the var/secret for an immediate effect.
 */
import {
  AGGREGATOR_KEY_HEADER,
  AGGREGATOR_MAX_SKEW_MS,
  AGGREGATOR_NONCE_HEADER,
  AGGREGATOR_NONCE_PATTERN,
  AGGREGATOR_SIGNATURE_HEADER,
  AGGREGATOR_TIMESTAMP_HEADER,
  aggregatorSigningBytes,
  canonicalKey32,
  fromBase64Url,
  sha256Hex,
} from "@fedge/protocol";
import type { Context } from "hono";
import type { AppEnv, Bindings } from "../env.ts";
import type { AdminVerdict, AdminVerifier } from "./auth/admin.ts";
import { verifyEd25519 } from "../training/ed25519.ts";
import { bodyCapFor, bodyOf } from "./body-limit.ts";
import { adminNoncesStub } from "../durable-objects/admin-nonces.ts";

/** KV key under which an admin-registered aggregator public key is stored. */
export function aggregatorKeyKvKey(publicKey: string): string {
  return `aggregator-key:${publicKey}`;
}

const B64URL_32 = /^[A-Za-z0-9_-]{43}$/;
const B64URL_64 = /^[A-Za-z0-9_-]{86}$/;

export interface AggregatorHeaders {
  method: string;
  /** The request URL's host (with its port when it has one). */
  host: string;
  /** Pathname plus query string as received. */
  path: string;
  key: string | null;
  timestamp: string | null;
  nonce: string | null;
  signature: string | null;
  now: number;
  /** Whether a base64url public key is trusted as the aggregator's. */
  isTrusted: (publicKey: string) => Promise<boolean>;
}

export interface AggregatorRequest extends AggregatorHeaders {
  /** The body, read only once the headers passed `checkAggregatorHeaders`. */
  body: () => Promise<Uint8Array>;
  /** Records the key's nonce as used until `expiresAt`; false when it was used before (a replay). */
  claimNonce: (publicKey: string, nonce: string, expiresAt: number) => Promise<boolean>;
}

/**
 * How long a nonce is remembered past its timestamp: the freshness window, plus slack for the clocks of the isolate
 * that checked the timestamp and the nonce object that drops old nonces.
 */
export const NONCE_TTL_MS = AGGREGATOR_MAX_SKEW_MS + 10_000;

type Reject = Extract<AdminVerdict, { kind: "reject" }>;
const reject = (status: 401 | 403, message: string): Reject => ({ kind: "reject", status, message });

/**
 * Everything about a signed request that needs no body: header shapes, the timestamp window, and that the key is a
 * trusted aggregator key. Null when they pass; a request that fails here is refused before its body is read.
 */
export async function checkAggregatorHeaders(req: AggregatorHeaders): Promise<Reject | null> {
  if (!req.key || !B64URL_32.test(req.key)) {
    return reject(401, `${AGGREGATOR_KEY_HEADER} must be the aggregator's base64url Ed25519 public key`);
  }
  if (req.signature === null || !B64URL_64.test(req.signature))
    return reject(401, `${AGGREGATOR_SIGNATURE_HEADER} must be a base64url Ed25519 signature`);
  if (req.nonce === null || !AGGREGATOR_NONCE_PATTERN.test(req.nonce)) {
    return reject(401, `${AGGREGATOR_NONCE_HEADER} must be 16 random bytes, base64url`);
  }
  const at = req.timestamp === null ? NaN : Date.parse(req.timestamp);
  if (!Number.isFinite(at)) return reject(401, `${AGGREGATOR_TIMESTAMP_HEADER} must be an ISO 8601 time`);
  if (Math.abs(req.now - at) > AGGREGATOR_MAX_SKEW_MS) {
    return reject(
      401,
      `${AGGREGATOR_TIMESTAMP_HEADER} is more than ${AGGREGATOR_MAX_SKEW_MS / 1000} s from the edge's clock`,
    );
  }
  if (!(await req.isTrusted(canonicalKey32(req.key)!))) {
    return reject(403, "this public key is not a registered aggregator key");
  }
  return null;
}

/**
 * Checks one signed admin request; `skip` when it carries no signature. The body is read (through the caller's capped
 * reader) only after the headers, the timestamp and the key passed.
 */
export async function verifyAggregatorRequest(req: AggregatorRequest): Promise<AdminVerdict> {
  if (req.signature === null) return { kind: "skip" };
  const early = await checkAggregatorHeaders(req);
  if (early) return early;
  // Keys are compared, and nonces remembered, under the key's one canonical spelling.
  const key = canonicalKey32(req.key!)!;
  const digest = await sha256Hex(await req.body());
  const bytes = aggregatorSigningBytes(req.method, req.host, req.path, req.timestamp!, req.nonce!, digest);
  const ok = await verifyEd25519(fromBase64Url(key), fromBase64Url(req.signature), bytes, key);
  if (!ok) return reject(401, "the aggregator signature does not verify");
  // Last, and only for a valid signature: each signed request is accepted once.
  if (!(await req.claimNonce(key, req.nonce!, Date.parse(req.timestamp!) + NONCE_TTL_MS))) {
    return reject(401, "this signed request was already used (replay)");
  }
  return { kind: "admin", principal: { via: "signature", subject: `aggregator:${key.slice(0, 12)}` } };
}

/** Whether `publicKey` is configured (var/secret) or registered (KV) as an aggregator key. */
export async function isTrustedAggregatorKey(env: Bindings, publicKey: string): Promise<boolean> {
  const configured = (env.FEDGE_AGGREGATOR_PUBLIC_KEY ?? "")
    .split(",")
    .map((k) => canonicalKey32(k.trim()))
    .filter((k): k is string => k !== null);
  if (configured.includes(publicKey)) return true;
  return (await env.REGISTRY.get(aggregatorKeyKvKey(publicKey))) !== null;
}

/** The `adminAuth()` verifier for aggregator-signed requests. */
export const aggregatorSignatureVerifier: AdminVerifier = async (c: Context<AppEnv>) => {
  const signature = c.req.header(AGGREGATOR_SIGNATURE_HEADER) ?? null;
  if (signature === null) return { kind: "skip" };
  const url = new URL(c.req.url);
  const method = c.req.method.toUpperCase();
  return verifyAggregatorRequest({
    method,
    host: url.host,
    path: url.pathname + url.search,
    key: c.req.header(AGGREGATOR_KEY_HEADER) ?? null,
    timestamp: c.req.header(AGGREGATOR_TIMESTAMP_HEADER) ?? null,
    nonce: c.req.header(AGGREGATOR_NONCE_HEADER) ?? null,
    signature,
    claimNonce: (key, nonce, expiresAt) => adminNoncesStub(c.env, key).claim(nonce, expiresAt),
    now: Date.now(),
    isTrusted: (key) => isTrustedAggregatorKey(c.env, key),
    // The route's own cap (a signed model upload takes as much as the model cap allows), read as a stream.
    body: async () =>
      method === "GET" || method === "HEAD" ? new Uint8Array(0) : bodyOf(c, bodyCapFor(method, url.pathname)),
  });
};
