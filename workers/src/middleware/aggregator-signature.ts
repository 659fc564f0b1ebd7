/**
 * @module
 * Admin authentication by the aggregator's Ed25519 request signature (contract: `@fedge/protocol` admin-auth).
 *
 * `aggregatorSignatureVerifier` plugs into `adminAuth()`'s verifier list: it skips requests without an
 * `x-fedge-signature` header and otherwise decides. Trusted keys are the `FEDGE_AGGREGATOR_PUBLIC_KEY` var/secret
 * (comma-separated base64url keys, for rotation) plus keys an admin registered in the REGISTRY KV namespace under
 * `aggregator-key:<public key>` (`/v1/admin/aggregator-keys`). KV is eventually consistent: removing a registered key can take
 * up to a minute to reach every location; remove a compromised key from the var/secret for an immediate effect.
 */
import {
  AGGREGATOR_KEY_HEADER,
  AGGREGATOR_MAX_SKEW_MS,
  AGGREGATOR_SIGNATURE_HEADER,
  AGGREGATOR_TIMESTAMP_HEADER,
  aggregatorSigningBytes,
  fromBase64Url,
  sha256Hex,
} from "@fedge/protocol";
import type { Context } from "hono";
import type { AppEnv, Bindings } from "../env.ts";
import type { AdminVerdict, AdminVerifier } from "./auth/admin.ts";
import { verifyEd25519 } from "../training/ed25519.ts";

/** KV key under which an admin-registered aggregator public key is stored. */
export function aggregatorKeyKvKey(publicKey: string): string {
  return `aggregator-key:${publicKey}`;
}

/** Largest admin request body the verifier hashes (admin bodies are small JSON documents). */
export const MAX_SIGNED_BODY_BYTES = 1024 * 1024;

const B64URL_32 = /^[A-Za-z0-9_-]{43}$/;
const B64URL_64 = /^[A-Za-z0-9_-]{86}$/;

export interface AggregatorRequest {
  method: string;
  /** Pathname plus query string as received. */
  path: string;
  key: string | null;
  timestamp: string | null;
  signature: string | null;
  body: Uint8Array;
  now: number;
  /** Whether a base64url public key is trusted as the aggregator's. */
  isTrusted: (publicKey: string) => Promise<boolean>;
}

/** Checks one signed admin request; `skip` when it carries no signature. */
export async function verifyAggregatorRequest(req: AggregatorRequest): Promise<AdminVerdict> {
  if (req.signature === null) return { kind: "skip" };
  const reject = (status: 401 | 403, message: string): AdminVerdict => ({ kind: "reject", status, message });
  if (!req.key || !B64URL_32.test(req.key)) {
    return reject(401, `${AGGREGATOR_KEY_HEADER} must be the aggregator's base64url Ed25519 public key`);
  }
  if (!B64URL_64.test(req.signature))
    return reject(401, `${AGGREGATOR_SIGNATURE_HEADER} must be a base64url Ed25519 signature`);
  const at = req.timestamp === null ? NaN : Date.parse(req.timestamp);
  if (!Number.isFinite(at)) return reject(401, `${AGGREGATOR_TIMESTAMP_HEADER} must be an ISO 8601 time`);
  if (Math.abs(req.now - at) > AGGREGATOR_MAX_SKEW_MS) {
    return reject(
      401,
      `${AGGREGATOR_TIMESTAMP_HEADER} is more than ${AGGREGATOR_MAX_SKEW_MS / 1000} s from the edge's clock`,
    );
  }
  if (!(await req.isTrusted(req.key))) return reject(403, "this public key is not a registered aggregator key");
  const bytes = aggregatorSigningBytes(req.method, req.path, req.timestamp!, await sha256Hex(req.body));
  const ok = await verifyEd25519(fromBase64Url(req.key), fromBase64Url(req.signature), bytes, req.key);
  if (!ok) return reject(401, "the aggregator signature does not verify");
  return { kind: "admin", principal: { via: "signature", subject: `aggregator:${req.key.slice(0, 12)}` } };
}

/** Whether `publicKey` is configured (var/secret) or registered (KV) as an aggregator key. */
export async function isTrustedAggregatorKey(env: Bindings, publicKey: string): Promise<boolean> {
  const configured = (env.FEDGE_AGGREGATOR_PUBLIC_KEY ?? "")
    .split(",")
    .map((k) => k.trim())
    .filter((k) => k.length > 0);
  if (configured.includes(publicKey)) return true;
  return (await env.REGISTRY.get(aggregatorKeyKvKey(publicKey))) !== null;
}

/** The `adminAuth()` verifier for aggregator-signed requests. */
export const aggregatorSignatureVerifier: AdminVerifier = async (c: Context<AppEnv>) => {
  const signature = c.req.header(AGGREGATOR_SIGNATURE_HEADER) ?? null;
  if (signature === null) return { kind: "skip" };
  const url = new URL(c.req.url);
  const method = c.req.method.toUpperCase();
  const declared = Number(c.req.header("content-length") ?? "0");
  if (declared > MAX_SIGNED_BODY_BYTES) {
    return { kind: "reject", status: 401, message: `signed admin bodies are at most ${MAX_SIGNED_BODY_BYTES} bytes` };
  }
  const body = method === "GET" || method === "HEAD" ? new Uint8Array(0) : new Uint8Array(await c.req.arrayBuffer());
  return verifyAggregatorRequest({
    method,
    path: url.pathname + url.search,
    key: c.req.header(AGGREGATOR_KEY_HEADER) ?? null,
    timestamp: c.req.header(AGGREGATOR_TIMESTAMP_HEADER) ?? null,
    signature,
    body,
    now: Date.now(),
    isTrusted: (key) => isTrustedAggregatorKey(c.env, key),
  });
};
