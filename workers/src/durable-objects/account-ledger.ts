/**
 * @module
 * AccountLedger: single-writer state for API keys, metering and rate limits.
 */
import { DurableObject } from "cloudflare:workers";
import type { Bindings } from "../env.ts";

export class AccountLedger extends DurableObject<Bindings> {}
