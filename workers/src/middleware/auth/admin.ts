/**
 * @module
 * Admin authentication. `adminAuth()` asks each verifier in `adminVerifiers` in turn; the first one that does not
 * `skip` decides. The built-in verifier accepts `Authorization: Bearer <FEDGE_ADMIN_TOKEN>` (constant-time compare).
 *
 * Seam for other admin credentials (e.g. the aggregator's Ed25519 request signature): write a verifier in its own
 * file in this folder and add it to `adminVerifiers` below (one line). A verifier returns `skip` when the request
 * does not carry its kind of credential, so the verifiers never fight over a request.
 */
import type { Context, MiddlewareHandler } from "hono";
import { FedgeError } from "@fedge/protocol";
import type { AppEnv } from "../../env.ts";
import { bearerToken, constantTimeEqual } from "./api-key.ts";
// Training plane (issue 5): the aggregator's Ed25519 request signature is an admin credential too.
import { aggregatorSignatureVerifier } from "../aggregator-signature.ts";
import { chargeAuthFailure, refuseIfAuthFailuresExhausted } from "../ip-rate-limit.ts";

/** Who passed `adminAuth()` (`c.get("admin")`). */
export interface AdminPrincipal {
  /** Which credential proved it. */
  via: "token" | "signature";
  /** A stable name for logs, e.g. `admin-token` or the signer's key id. */
  subject: string;
}

declare module "hono" {
  interface ContextVariableMap {
    /** Set by `adminAuth()`. */
    admin: AdminPrincipal;
  }
}

export type AdminVerdict =
  | { kind: "admin"; principal: AdminPrincipal }
  /** This verifier's credential is not on the request. */
  | { kind: "skip" }
  /** The credential is present but wrong or insufficient. */
  | { kind: "reject"; status: 401 | 403; message: string };

export type AdminVerifier = (c: Context<AppEnv>) => Promise<AdminVerdict>;

/** `Authorization: Bearer <FEDGE_ADMIN_TOKEN>`. An API key or any other bearer is a 403. */
export const adminTokenVerifier: AdminVerifier = async (c) => {
  const token = bearerToken(c);
  if (!token) return { kind: "skip" };
  const expected = c.env.FEDGE_ADMIN_TOKEN;
  if (!expected) return { kind: "reject", status: 403, message: "admin token is not configured on this edge" };
  if (!(await constantTimeEqual(token, expected))) {
    return { kind: "reject", status: 403, message: "this credential is not an admin credential" };
  }
  return { kind: "admin", principal: { via: "token", subject: "admin-token" } };
};

/** The verifiers `adminAuth()` tries, in order. */
export const adminVerifiers: AdminVerifier[] = [aggregatorSignatureVerifier /* issue 5 */, adminTokenVerifier];

/** Require an admin credential; sets `c.get("admin")`. 401 `unauthorized` when none, 403 `forbidden` when wrong. */
export function adminAuth(verifiers: readonly AdminVerifier[] = adminVerifiers): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    refuseIfAuthFailuresExhausted(c);
    for (const verify of verifiers) {
      const verdict = await verify(c);
      if (verdict.kind === "skip") continue;
      if (verdict.kind === "reject") {
        chargeAuthFailure(c);
        throw new FedgeError(verdict.status === 401 ? "unauthorized" : "forbidden", verdict.status, verdict.message);
      }
      c.set("admin", verdict.principal);
      return next();
    }
    throw new FedgeError("unauthorized", 401, "missing admin credential: send Authorization: Bearer <admin token>");
  };
}
