/**
 * @module
 * Audit shadow populations. An empirical privacy audit (Andrew et al. 2024, arXiv 2302.03098) inserts canary clients
 * into training, so it never runs on a production population: it runs on a shadow, a new population
 * `<source>-audit-<id>` whose first version is a copy of the source's serving model and whose privacy budget is its
 * own ledger. The edge marks the shadow's registry record (`ModelIndex.audit_of`) and never serves any of its
 * versions: uploads are stored unpromoted and a promote is refused (409 `audit_shadow`). A name with the `-audit-`
 * infix is reserved: it can only be created through `POST /v1/admin/populations/{source}/audit-shadows`.
 */
import { z } from "zod";
import { ModelName, ModelVersion } from "../common.ts";
import { PopulationPrivacyStatus, PrivacyBudgetRequest } from "./privacy.ts";

/** The infix that marks (and reserves) audit shadow names. */
export const AUDIT_SHADOW_INFIX = "-audit-";

/** An audit's id: lowercase letters and digits, at most 16. */
export const AuditId = z.string().regex(/^[a-z0-9]{1,16}$/, "lowercase letters and digits; at most 16 characters");

/** The shadow population of `source` for audit `id`. RangeError when the name would not be a valid model name. */
export function auditShadowName(source: string, id: string): string {
  const name = `${source}${AUDIT_SHADOW_INFIX}${id}`;
  if (!ModelName.safeParse(name).success || !AuditId.safeParse(id).success)
    throw new RangeError(`"${name}" is not a valid shadow name (a model name of at most 63 characters)`);
  return name;
}

/** True for names reserved to audit shadows. */
export function isAuditShadowName(name: string): boolean {
  return name.includes(AUDIT_SHADOW_INFIX);
}

/** `POST /v1/admin/populations/{source}/audit-shadows`. */
export const AuditShadowRequest = z
  .object({
    id: AuditId,
    /** The shadow's own budget: the audit's rounds are charged here, never to the source. */
    budget: PrivacyBudgetRequest,
  })
  .strict()
  .meta({ id: "AuditShadowRequest" });
export type AuditShadowRequest = z.infer<typeof AuditShadowRequest>;

/** The created shadow. */
export const AuditShadow = z
  .object({
    name: ModelName,
    audit_of: ModelName,
    /** The source's serving version that was copied. */
    source_version: ModelVersion,
    /** The shadow's version holding the copy (devices train from it first). */
    model_version: ModelVersion,
    privacy: PopulationPrivacyStatus,
  })
  .meta({ id: "AuditShadow" });
export type AuditShadow = z.infer<typeof AuditShadow>;
