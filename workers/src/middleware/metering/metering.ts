/**
 * @module
 * Per-key metering: calls and input elements per UTC day, written to the key's AccountLedger (single writer,
 * strongly consistent). Call `meter()` after the work succeeded, so rejected requests are never billed; a route may
 * hand the promise to `executionCtx.waitUntil` so the round trip is off the response path.
 */
import type { Context } from "hono";
import type { AppEnv } from "../../env.ts";
import { ledgerFor } from "../auth/index.ts";
import { utcDay } from "../../durable-objects/account-ledger.ts";

/** Record one metered call with `inputElements` input values for the authenticated key (`apiKeyAuth()` first). */
export async function meter(c: Context<AppEnv>, usage: { inputElements: number; calls?: number }): Promise<void> {
  const key = c.get("apiKey");
  await ledgerFor(c.env, key.id).record({
    day: utcDay(Date.now()),
    calls: usage.calls ?? 1,
    inputElements: usage.inputElements,
  });
}
