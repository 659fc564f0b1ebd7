/**
 * @module
 * Admin authentication. `adminAuth()` asks each verifier in turn; the first one that does not `skip` decides. The
 * built-in verifier accepts `Authorization: Bearer <FEDGE_ADMIN_TOKEN>` (constant-time compare).
 *
 * The aggregator's Ed25519 request signature is an admin credential only where a route opts in with
 * `adminAuth({ aggregator: true })`: the round routes and publishing a model (upload a version, promote one). Everywhere
 * else (API keys, rollback, devices, quotas, aggregator keys, benchmarks) a signed request is a 403: a leaked
 * aggregator key can run rounds and publish, not mint credentials or revoke devices.
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
import { AGGREGATOR_SIGNATURE_HEADER } from "@fedge/protocol";
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

/** On a route the aggregator key may not use: a signed request is refused (403) instead of verified. */
export const signatureNotAcceptedVerifier: AdminVerifier = async (c) => {
  if (c.req.header(AGGREGATOR_SIGNATURE_HEADER) === undefined) return { kind: "skip" };
  return {
    kind: "reject",
    status: 403,
    message: "the aggregator key may only run rounds and publish models; this route needs the admin token",
  };
};

/** The verifiers of the round and publish routes, in order. */
export const aggregatorAdminVerifiers: AdminVerifier[] = [aggregatorSignatureVerifier, adminTokenVerifier];
/** The verifiers of every other admin route. */
export const tokenOnlyAdminVerifiers: AdminVerifier[] = [signatureNotAcceptedVerifier, adminTokenVerifier];

export interface AdminAuthOptions {
  /** Accept the aggregator's request signature too (round and publish routes only). @default false */
  aggregator?: boolean;
  /** Replace the verifiers (tests). @default by `aggregator` */
  verifiers?: readonly AdminVerifier[];
}

/** Require an admin credential; sets `c.get("admin")`. 401 `unauthorized` when none, 403 `forbidden` when wrong. */
export function adminAuth(options: AdminAuthOptions = {}): MiddlewareHandler<AppEnv> {
  const verifiers = options.verifiers ?? (options.aggregator ? aggregatorAdminVerifiers : tokenOnlyAdminVerifiers);
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
