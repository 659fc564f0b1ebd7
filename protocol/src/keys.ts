/**
 * @module
 * API keys and per-key metering: the JSON bodies of `/v1/admin/keys` and `/v1/usage`.
 *
 * A key secret is `fk_<id>_<secret>`: the id routes the request to the key's ledger, the secret is 32 random bytes
 * (base64url). The edge stores only SHA-256 of the whole key (see workers/src/durable-objects/account-ledger.ts).
 */
import { z } from "zod";
import { IsoDateTime } from "./common.ts";

/** Key ids: lowercase letters and digits (no `_`, so the secret's prefix parses unambiguously). */
export const ApiKeyId = z.string().regex(/^[a-z0-9]{1,32}$/, "lowercase letters and digits; at most 32 characters");
export type ApiKeyId = z.infer<typeof ApiKeyId>;

/**
 * A tenant: the owner of API keys and of training populations. Only a tenant's own keys take part in its populations
 * (check-ins, uploads). Keys created without one, and populations opened without one, belong to `DEFAULT_TENANT`.
 */
export const TenantId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "lowercase letters, digits and '-'; at most 63 characters");
export type TenantId = z.infer<typeof TenantId>;

/** The tenant of keys and populations that name none (a single-tenant edge never names one). */
export const DEFAULT_TENANT = "default";

/** The shape of a key secret: `fk_<id>_<secret>`. */
export const API_KEY_PATTERN = /^fk_([a-z0-9]{1,32})_([A-Za-z0-9_-]{16,128})$/;

/** Default per-key rate limit (requests per minute) when a key is created without one. */
export const DEFAULT_RATE_LIMIT_PER_MINUTE = 600;

export const CreateApiKeyRequest = z
  .object({
    /** Who the key is for (free text shown to admins). */
    name: z.string().min(1).max(128),
    /** Token-bucket rate limit: this many requests per minute, bursts up to the same number. @default 600 */
    rate_limit_per_minute: z.number().int().min(1).max(1_000_000).optional(),
    /** The tenant the key belongs to. @default "default" */
    tenant: TenantId.optional(),
  })
  .strict()
  .meta({ id: "CreateApiKeyRequest" });
export type CreateApiKeyRequest = z.infer<typeof CreateApiKeyRequest>;

export const ApiKeyInfo = z
  .object({
    id: ApiKeyId,
    name: z.string(),
    rate_limit_per_minute: z.number().int().positive(),
    tenant: TenantId,
    created_at: IsoDateTime,
    revoked_at: IsoDateTime.nullable(),
  })
  .meta({ id: "ApiKeyInfo" });
export type ApiKeyInfo = z.infer<typeof ApiKeyInfo>;

export const CreatedApiKey = ApiKeyInfo.extend({
  /** The secret, shown exactly once; the edge keeps only its SHA-256. */
  key: z.string().regex(API_KEY_PATTERN),
}).meta({ id: "CreatedApiKey" });
export type CreatedApiKey = z.infer<typeof CreatedApiKey>;

/** A UTC day, `YYYY-MM-DD`. */
export const UtcDay = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "UTC day as YYYY-MM-DD");

export const UsageDay = z
  .object({
    day: UtcDay,
    /** Successful metered calls (predictions). */
    calls: z.number().int().nonnegative(),
    /** Input elements (floats) across those calls: batch × features. */
    input_elements: z.number().int().nonnegative(),
  })
  .meta({ id: "UsageDay" });
export type UsageDay = z.infer<typeof UsageDay>;

export const UsageQuery = z.object({
  from: UtcDay.optional(),
  to: UtcDay.optional(),
});
export type UsageQuery = z.infer<typeof UsageQuery>;

export const UsageReport = z
  .object({
    key: ApiKeyInfo,
    /** Days with any usage, oldest first. */
    days: z.array(UsageDay),
    total: z.object({ calls: z.number().int().nonnegative(), input_elements: z.number().int().nonnegative() }),
  })
  .meta({ id: "UsageReport" });
export type UsageReport = z.infer<typeof UsageReport>;
