/**
 * @module
 * The aggregator's request-signing contract for the edge's admin endpoints (`/v1/admin/...`).
 *
 * The aggregator holds an Ed25519 key pair (tweetnacl); the edge knows its public key (the `FEDGE_AGGREGATOR_PUBLIC_KEY`
 * var/secret, comma-separated for rotation, or registered by an admin under `/v1/admin/aggregator-keys`). Each admin request
 * carries three headers:
 *
 * - `x-fedge-aggregator-key`: the signer's public key, base64url (32 bytes, 43 characters);
 * - `x-fedge-timestamp`: ISO 8601 time of signing; the edge refuses it when more than `AGGREGATOR_MAX_SKEW_MS` away from its clock;
 * - `x-fedge-signature`: Ed25519 detached signature, base64url (64 bytes, 86 characters), over
 *   `aggregatorSigningBytes(method, path, timestamp, bodySha256)`.
 *
 * `path` is the URL's pathname plus its query string exactly as sent (e.g. `/v1/admin/rounds/mnist_3/updates?after=20`), so a
 * signature cannot be moved to another resource or page. `bodySha256` is the lowercase hex SHA-256 of the raw body bytes (of
 * the empty string for a GET). A captured request can be replayed only within the freshness window, and every signed admin
 * action of the training plane is idempotent, so a replay changes nothing.
 *
 * The public API key is never an admin credential.
 */
import nacl from "tweetnacl";
import { toBase64Url } from "./common.ts";

export const AGGREGATOR_KEY_HEADER = "x-fedge-aggregator-key";
export const AGGREGATOR_TIMESTAMP_HEADER = "x-fedge-timestamp";
export const AGGREGATOR_SIGNATURE_HEADER = "x-fedge-signature";
/** How far an aggregator request's timestamp may be from the edge's clock. */
export const AGGREGATOR_MAX_SKEW_MS = 60 * 1000;

/** The bytes the aggregator signs: a domain-separated, newline-joined string. `method` is upper-cased. */
export function aggregatorSigningBytes(
  method: string,
  path: string,
  timestamp: string,
  bodySha256: string,
): Uint8Array {
  return new TextEncoder().encode(`fedge-admin-v1\n${method.toUpperCase()}\n${path}\n${timestamp}\n${bodySha256}`);
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
  /** Pathname plus query string, e.g. `/v1/admin/rounds/mnist_3/close`. */
  path: string;
  /** The raw body; omit for none. */
  body?: Uint8Array | string | undefined;
  /** tweetnacl 64-byte Ed25519 secret key. */
  secretKey: Uint8Array;
  /** Time of signing. @default new Date() */
  now?: Date;
}

/** The three headers that authenticate one admin request as the aggregator. */
export async function signAggregatorRequest(input: SignAggregatorRequestInput): Promise<Record<string, string>> {
  if (!(input.secretKey instanceof Uint8Array) || input.secretKey.length !== nacl.sign.secretKeyLength) {
    throw new RangeError("signAggregatorRequest: secretKey must be a 64-byte Ed25519 secret key");
  }
  const body =
    typeof input.body === "string" ? new TextEncoder().encode(input.body) : (input.body ?? new Uint8Array(0));
  const timestamp = (input.now ?? new Date()).toISOString();
  const bytes = aggregatorSigningBytes(input.method, input.path, timestamp, await sha256Hex(body));
  const signature = nacl.sign.detached(bytes, input.secretKey);
  const publicKey = nacl.sign.keyPair.fromSecretKey(input.secretKey).publicKey;
  return {
    [AGGREGATOR_KEY_HEADER]: toBase64Url(publicKey),
    [AGGREGATOR_TIMESTAMP_HEADER]: timestamp,
    [AGGREGATOR_SIGNATURE_HEADER]: toBase64Url(signature),
  };
}
