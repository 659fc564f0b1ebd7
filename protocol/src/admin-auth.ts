/**
 * @module
 * The aggregator's request-signing contract for the edge's admin endpoints (`/v1/admin/...`).
 *
 * The aggregator holds an Ed25519 key pair (tweetnacl); the edge knows its public key (the `FEDGE_AGGREGATOR_PUBLIC_KEY`
 * var/secret, comma-separated for rotation, or registered by an admin under `/v1/admin/aggregator-keys`). Each admin request
 * carries four headers:
 *
 * - `x-fedge-aggregator-key`: the signer's public key, base64url (32 bytes, 43 characters);
 * - `x-fedge-timestamp`: ISO 8601 time of signing; the edge refuses it when more than `AGGREGATOR_MAX_SKEW_MS` away from its clock;
 * - `x-fedge-nonce`: 16 random bytes, base64url (22 characters), fresh for every request;
 * - `x-fedge-signature`: Ed25519 detached signature, base64url (64 bytes, 86 characters), over
 *   `aggregatorSigningBytes(method, host, path, timestamp, nonce, bodySha256)`.
 *
 * `host` is the URL's host (with its port when it has one, e.g. `127.0.0.1:8787`) and `path` its pathname plus query string
 * exactly as sent (e.g. `/v1/admin/rounds/mnist_3/updates?after=20`), so a signature cannot be moved to another edge,
 * resource or page. `bodySha256` is the lowercase hex SHA-256 of the raw body bytes (of the empty string for a GET). The
 * edge accepts each (key, nonce) once within the freshness window (its nonce cache is a Durable Object per aggregator key),
 * so a captured request cannot be replayed at all.
 *
 * What the key may do is limited: the edge accepts it only on the round routes (`/v1/admin/rounds...`) and for publishing
 * a model (upload a version, promote one); creating API keys, rolling back, revoking devices and managing keys need the
 * admin token. The public API key is never an admin credential.
 */
import nacl from "tweetnacl";
import { toBase64Url } from "./common.ts";

export const AGGREGATOR_KEY_HEADER = "x-fedge-aggregator-key";
export const AGGREGATOR_TIMESTAMP_HEADER = "x-fedge-timestamp";
export const AGGREGATOR_SIGNATURE_HEADER = "x-fedge-signature";
export const AGGREGATOR_NONCE_HEADER = "x-fedge-nonce";
/** How far an aggregator request's timestamp may be from the edge's clock. */
export const AGGREGATOR_MAX_SKEW_MS = 60 * 1000;

/** The shape of a request nonce: 16 bytes, base64url without padding. */
export const AGGREGATOR_NONCE_PATTERN = /^[A-Za-z0-9_-]{22}$/;

/**
 * The bytes the aggregator signs: a domain-separated, newline-joined string. `method` is upper-cased and `host`
 * lower-cased; no field may contain a newline (they cannot be confused with one another).
 */
export function aggregatorSigningBytes(
  method: string,
  host: string,
  path: string,
  timestamp: string,
  nonce: string,
  bodySha256: string,
): Uint8Array {
  const fields = [method.toUpperCase(), host.toLowerCase(), path, timestamp, nonce, bodySha256];
  if (fields.some((f) => /[\r\n]/.test(f))) throw new RangeError("aggregatorSigningBytes: a field contains a newline");
  return new TextEncoder().encode(`fedge-admin-v2\n${fields.join("\n")}`);
}

/** Lowercase hex SHA-256 (WebCrypto, so it runs in workerd, Node and browsers). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  let hex = "";
  for (let i = 0; i < digest.length; i++) hex += digest[i]!.toString(16).padStart(2, "0");
  return hex;
}

export interface SignAggregatorRequestInput {
  /** HTTP method, e.g. `POST`. */
  method: string;
  /** The edge's host as the request URL names it, with its port if any, e.g. `fedge.example.com` or `127.0.0.1:8787`. */
  host: string;
  /** Pathname plus query string, e.g. `/v1/admin/rounds/mnist_3/close`. */
  path: string;
  /** The raw body; omit for none. */
  body?: Uint8Array | string | undefined;
  /** tweetnacl 64-byte Ed25519 secret key. */
  secretKey: Uint8Array;
  /** Time of signing. @default new Date() */
  now?: Date;
  /** 16 fresh random bytes (tests pin them). @default crypto.getRandomValues */
  nonce?: Uint8Array;
}

/** The four headers that authenticate one admin request as the aggregator (each signed request is single use). */
export async function signAggregatorRequest(input: SignAggregatorRequestInput): Promise<Record<string, string>> {
  if (!(input.secretKey instanceof Uint8Array) || input.secretKey.length !== nacl.sign.secretKeyLength) {
    throw new RangeError("signAggregatorRequest: secretKey must be a 64-byte Ed25519 secret key");
  }
  const body =
    typeof input.body === "string" ? new TextEncoder().encode(input.body) : (input.body ?? new Uint8Array(0));
  if (typeof input.host !== "string" || input.host.length === 0) {
    throw new RangeError("signAggregatorRequest: host must be the edge's host, e.g. 127.0.0.1:8787");
  }
  const nonceBytes = input.nonce ?? crypto.getRandomValues(new Uint8Array(16));
  if (!(nonceBytes instanceof Uint8Array) || nonceBytes.length !== 16) {
    throw new RangeError("signAggregatorRequest: nonce must be 16 bytes");
  }
  const nonce = toBase64Url(nonceBytes);
  const timestamp = (input.now ?? new Date()).toISOString();
  const bytes = aggregatorSigningBytes(input.method, input.host, input.path, timestamp, nonce, await sha256Hex(body));
  const signature = nacl.sign.detached(bytes, input.secretKey);
  const publicKey = nacl.sign.keyPair.fromSecretKey(input.secretKey).publicKey;
  return {
    [AGGREGATOR_KEY_HEADER]: toBase64Url(publicKey),
    [AGGREGATOR_TIMESTAMP_HEADER]: timestamp,
    [AGGREGATOR_NONCE_HEADER]: nonce,
    [AGGREGATOR_SIGNATURE_HEADER]: toBase64Url(signature),
  };
}
