/**
 * @module
 * `GET /.well-known/fedge-edge-key`: the public half of the edge's own Ed25519 key (`FEDGE_EDGE_SIGNING_KEY`), which
 * signs check-in receipts. Public and cacheable; an SDK that was not given the key pins the first one it reads here
 * (trust on first use; see the SDK's `edgePublicKey` option). Without the secret the edge answers 500 `internal`.
 */
import { createRoute } from "@hono/zod-openapi";
import { EDGE_KEY_ALG, EDGE_KEY_PATH, EdgeKeyResponse } from "@fedge/protocol";
import { createRouter, jsonResponse } from "../middleware/validation/index.ts";
import { edgePublicKey } from "../training/index.ts";

const edgeKey = createRoute({
  method: "get",
  path: EDGE_KEY_PATH,
  tags: ["training"],
  summary: "The edge's public key that signs check-in receipts",
  responses: {
    200: jsonResponse(EdgeKeyResponse, "The key (base64url) and its algorithm"),
  },
});

export const edgeKeys = createRouter().openapi(edgeKey, (c) => {
  c.header("cache-control", "public, max-age=300");
  return c.json({ public_key: edgePublicKey(c.env), alg: EDGE_KEY_ALG }, 200);
});
