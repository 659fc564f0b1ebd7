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
  signCheckinReceipt,
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

/** `body` signed with the edge key, as it goes on the wire. */
export function signedReceipt(env: Pick<Bindings, "FEDGE_EDGE_SIGNING_KEY">, body: CheckinReceiptBody): CheckinReceipt {
  const signature = signCheckinReceipt(body, edgeKeyPair(env).secretKey);
  return { ...body, alg: EDGE_KEY_ALG, signature: toBase64Url(signature) };
}
