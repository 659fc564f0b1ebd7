/**
 * @module
 * How long the payloads of a closed round are kept, counted from its close. Central DP trusts the server with each
 * device's clipped update; once the round is aggregated (or will never be: under `min_reports`, abandoned) nothing
 * needs them, so they are deleted after a short window (kept that long for a resumed or audited aggregation). Their
 * metadata (device, sha256, size, time) stays as the round's record.
 */

/** @default 7 days */
export const DEFAULT_UPDATE_RETENTION_DAYS = 7;

/**
 * Milliseconds from `FEDGE_UPDATE_RETENTION_DAYS` (a non-negative number of days, fractions allowed; 0 deletes at the
 * next alarm after the close, before any aggregator could read them: for tests only). Anything else is a configuration error, reported by the caller, and the default holds.
 */
export function updateRetentionMs(value: string | undefined): { ms: number; error?: string } {
  const dayMs = 86_400_000;
  if (value === undefined || value.trim() === "") return { ms: DEFAULT_UPDATE_RETENTION_DAYS * dayMs };
  const days = Number(value);
  if (!Number.isFinite(days) || days < 0) {
    return {
      ms: DEFAULT_UPDATE_RETENTION_DAYS * dayMs,
      error: `FEDGE_UPDATE_RETENTION_DAYS must be a number of days >= 0, not ${JSON.stringify(value)}; using ${DEFAULT_UPDATE_RETENTION_DAYS}`,
    };
  }
  return { ms: days * dayMs };
}
