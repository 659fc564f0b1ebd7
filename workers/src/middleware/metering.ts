/**
 * @module
 * Per-key metering: calls and input elements per UTC day, written to the key's AccountLedger (single writer,
 * strongly consistent). Call `meter()` after the work succeeded, so rejected requests are never billed.
 *
 * Writes are batched per isolate: `meter()` adds to an isolate-local buffer and the buffer is written with one
 * `record` call per key and day at most `METER_FLUSH_MS` later (the caller hands the returned promise to
 * `executionCtx.waitUntil`, which keeps the isolate alive for the write). One Durable Object call per flush instead of
 * one per request keeps the ledger off the request path. Consequences, stated exactly:
 * - a key's usage read in the isolate that served the calls includes them (`settleUsage()` first writes what is
 *   buffered); read from another isolate it lags by at most `METER_FLUSH_MS` plus one ledger round trip;
 * - every buffered call is written once (at most once: if the ledger call fails, those counts are lost, as a failed
 *   per-request write was before).
 */
import type { Context } from "hono";
import type { AppEnv, Bindings } from "../env.ts";
import { ledgerFor } from "./auth/index.ts";
import { utcDay } from "../durable-objects/account-ledger.ts";

/** Longest time a metered call waits in the isolate's buffer before it is written to the ledger (milliseconds). */
export const METER_FLUSH_MS = 200;

export interface UsageMeterOptions {
  /** How long usage is buffered before one write per key and day. @default METER_FLUSH_MS (200 ms) */
  flushMs?: number;
}

/** One write: `record` of a key's ledger (tests may pass another). */
export type RecordCall = (keyId: string, usage: { day: string; calls: number; inputElements: number }) => Promise<void>;

interface Counts {
  calls: number;
  inputElements: number;
}

export class UsageMeter {
  private readonly flushMs: number;
  /** keyId → day → counts not yet handed to the ledger. */
  private pending = new Map<string, Map<string, Counts>>();
  private scheduled: Promise<void> | null = null;
  /** Writes under way (a reader waits for them). */
  private readonly writing = new Set<Promise<void>>();
  /** Ledger `record` calls made (tests and benchmarks). */
  writes = 0;

  constructor(options: UsageMeterOptions = {}) {
    this.flushMs = options.flushMs ?? METER_FLUSH_MS;
    if (!(this.flushMs >= 0)) throw new RangeError(`flushMs must be ≥ 0, got ${options.flushMs}`);
  }

  /** Buffer usage; the returned promise settles once it is written (hand it to `waitUntil`). */
  add(keyId: string, day: string, counts: Counts, record: RecordCall): Promise<void> {
    let days = this.pending.get(keyId);
    if (!days) this.pending.set(keyId, (days = new Map()));
    const c = days.get(day);
    if (c) {
      c.calls += counts.calls;
      c.inputElements += counts.inputElements;
    } else {
      days.set(day, { calls: counts.calls, inputElements: counts.inputElements });
    }
    this.scheduled ??= (async () => {
      await new Promise((resolve) => setTimeout(resolve, this.flushMs));
      this.scheduled = null;
      await this.writeAll(record);
    })();
    return this.scheduled;
  }

  /** Write what is buffered now and wait for every write under way (read-your-writes within the isolate). */
  async settle(record: RecordCall): Promise<void> {
    await this.writeAll(record);
    await Promise.all([...this.writing]);
  }

  private async writeAll(record: RecordCall): Promise<void> {
    const batch = this.pending;
    if (batch.size === 0) return;
    this.pending = new Map();
    const calls: Promise<void>[] = [];
    for (const [keyId, days] of batch) {
      for (const [day, c] of days) {
        this.writes++;
        calls.push(record(keyId, { day, calls: c.calls, inputElements: c.inputElements }));
      }
    }
    const done = Promise.allSettled(calls).then((results) => {
      for (const r of results) if (r.status === "rejected") console.error("fedge: metering write failed", r.reason);
    });
    this.writing.add(done);
    try {
      await done;
    } finally {
      this.writing.delete(done);
    }
  }
}

/** The isolate's usage buffer. */
export const usageMeter = new UsageMeter();

function recorder(env: Bindings): RecordCall {
  return (keyId, usage) => ledgerFor(env, keyId).record(usage);
}

/**
 * Record one metered call with `inputElements` input values for the authenticated key (`apiKeyAuth()` first).
 * Buffered: hand the promise to `c.executionCtx.waitUntil`.
 */
export function meter(c: Context<AppEnv>, usage: { inputElements: number; calls?: number }): Promise<void> {
  const key = c.get("apiKey");
  return usageMeter.add(
    key.id,
    utcDay(Date.now()),
    { calls: usage.calls ?? 1, inputElements: usage.inputElements },
    recorder(c.env),
  );
}

/** Write this isolate's buffered usage before reading a ledger's usage. */
export function settleUsage(env: Bindings): Promise<void> {
  return usageMeter.settle(recorder(env));
}
