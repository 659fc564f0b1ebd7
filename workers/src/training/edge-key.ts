/**
 * @module
 * The edge's own Ed25519 key (`FEDGE_EDGE_SIGNING_KEY`: the 32-byte seed, base64url; `.dev.vars` locally, written by
 * the bootstrap; `wrangler secret` in production, written by `npm run provision`). It signs check-in receipts
 * (@fedge/protocol `checkinReceiptSigningBytes`), so a device can account its own privacy loss from statements it can
 * verify; its public key is served at `GET /.well-known/fedge-edge-key`. Without the secret the edge refuses to
 * answer a DP check-in (500 `internal`) rather than answer one without its receipt.
 */
import nacl from "tweetnacl";
import {
  EDGE_KEY_ALG,
  FedgeError,
  fromBase64Url,
  checkinReceiptSigningBytes,
  toBase64Url,
  type CheckinReceipt,
  type CheckinReceiptBody,
} from "@fedge/protocol";
import type { Bindings } from "../env.ts";

let cached: { seed: string; keys: nacl.SignKeyPair } | null = null;

/** The edge's key pair from its secret (derived once per isolate); 500 `internal` when the secret is missing or bad. */
export function edgeKeyPair(env: Pick<Bindings, "FEDGE_EDGE_SIGNING_KEY">): nacl.SignKeyPair {
  const seed = env.FEDGE_EDGE_SIGNING_KEY?.trim();
  if (cached && cached.seed === seed) return cached.keys;
  let bytes: Uint8Array = new Uint8Array(0);
  try {
    if (seed) bytes = fromBase64Url(seed);
  } catch {
    /* not base64url: refused below */
  }
  if (bytes.length !== nacl.sign.seedLength) {
    throw new FedgeError(
      "internal",
      500,
      "the edge has no valid signing key (FEDGE_EDGE_SIGNING_KEY: a 32-byte Ed25519 seed, base64url); " +
        "run scripts/bootstrap.sh locally or npm run provision",
    );
  }
  const keys = nacl.sign.keyPair.fromSeed(bytes);
  cached = { seed: seed!, keys };
  return keys;
}

/** The edge's public key, base64url. */
export function edgePublicKey(env: Pick<Bindings, "FEDGE_EDGE_SIGNING_KEY">): string {
  return toBase64Url(edgeKeyPair(env).publicKey);
}

let signing: { seed: string; key: Promise<CryptoKey> } | null = null;

/**
 * The edge key as a WebCrypto Ed25519 signing key (imported once per isolate): workerd signs natively in a few
 * microseconds, where tweetnacl took milliseconds of the isolate's CPU at every DP check-in.
 */
function edgeSigningKey(env: Pick<Bindings, "FEDGE_EDGE_SIGNING_KEY">): Promise<CryptoKey> {
  const keys = edgeKeyPair(env);
  const seed = env.FEDGE_EDGE_SIGNING_KEY!.trim();
  if (signing?.seed !== seed) {
    const jwk = {
      kty: "OKP",
      crv: "Ed25519",
      d: toBase64Url(keys.secretKey.subarray(0, 32)),
      x: toBase64Url(keys.publicKey),
    };
    const key = crypto.subtle.importKey("jwk", jwk, { name: "Ed25519" }, false, ["sign"]);
    signing = { seed, key };
    key.catch(() => {
      if (signing?.key === key) signing = null;
    });
  }
  return signing.key;
}

/**
 * `body` signed with the edge key, as it goes on the wire. Ed25519 is deterministic (RFC 8032), so the signature is
 * the one @fedge/protocol `signCheckinReceipt` computes with the same key.
 */
export async function signedReceipt(
  env: Pick<Bindings, "FEDGE_EDGE_SIGNING_KEY">,
  body: CheckinReceiptBody,
): Promise<CheckinReceipt> {
  const key = await edgeSigningKey(env);
  const bytes = checkinReceiptSigningBytes(body) as Uint8Array<ArrayBuffer>;
  const signature = new Uint8Array(await crypto.subtle.sign("Ed25519", key, bytes));
  return { ...body, alg: EDGE_KEY_ALG, signature: toBase64Url(signature) };
}
