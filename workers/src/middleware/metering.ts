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
 * - every buffered call is written exactly once: each write carries an id the ledger remembers (for two days), and a
 *   write that fails (the ledger did not answer, or its answer was lost) is retried with the same id and counts
 *   `RETRY_ATTEMPTS` times with exponential backoff from `RETRY_BASE_MS`, so a retry of a write that did land adds
 *   nothing. Only a write that fails every attempt is given up (and logged); the retries run under the same
 *   `waitUntil` promise as the flush.
 */
import type { Context } from "hono";
import type { AppEnv, Bindings } from "../env.ts";
import { ledgerFor } from "./auth/index.ts";
import { utcDay } from "../durable-objects/account-ledger.ts";

/** Longest time a metered call waits in the isolate's buffer before it is written to the ledger (milliseconds). */
export const METER_FLUSH_MS = 200;
/** Attempts per usage write before it is given up. */
export const RETRY_ATTEMPTS = 6;
/** Wait before the first retry of a failed usage write; doubled for each next one (200 ms … 6.4 s, 12.6 s in all). */
export const RETRY_BASE_MS = 200;

export interface UsageMeterOptions {
  /** How long usage is buffered before one write per key and day. @default METER_FLUSH_MS (200 ms) */
  flushMs?: number;
  /** Wait before the first retry of a failed write (doubled each time). @default RETRY_BASE_MS (200 ms) */
  retryBaseMs?: number;
  /** Attempts per write. @default RETRY_ATTEMPTS (6) */
  attempts?: number;
}

/** One usage write of a key and day; `writeId` makes a retried write idempotent in the ledger. */
export interface UsageWrite {
  day: string;
  calls: number;
  inputElements: number;
  writeId: string;
}

/** One write: `record` of a key's ledger (tests may pass another). */
export type RecordCall = (keyId: string, usage: UsageWrite) => Promise<void>;

interface Counts {
  calls: number;
  inputElements: number;
}

function newWriteId(): string {
  let id = "";
  for (const b of crypto.getRandomValues(new Uint8Array(16))) id += b.toString(16).padStart(2, "0");
  return id;
}

export class UsageMeter {
  private readonly flushMs: number;
  private readonly retryBaseMs: number;
  private readonly attempts: number;
  /** keyId → day → counts not yet handed to the ledger. */
  private pending = new Map<string, Map<string, Counts>>();
  private scheduled: Promise<void> | null = null;
  /** Writes under way (a reader waits for them). */
  private readonly writing = new Set<Promise<void>>();
  /** Ledger `record` calls made, retries included (tests and benchmarks). */
  writes = 0;
  /** Writes given up after every attempt failed. */
  dropped = 0;

  constructor(options: UsageMeterOptions = {}) {
    this.flushMs = options.flushMs ?? METER_FLUSH_MS;
    this.retryBaseMs = options.retryBaseMs ?? RETRY_BASE_MS;
    this.attempts = options.attempts ?? RETRY_ATTEMPTS;
    if (!(this.flushMs >= 0)) throw new RangeError(`flushMs must be ≥ 0, got ${options.flushMs}`);
    if (!(this.retryBaseMs >= 0)) throw new RangeError(`retryBaseMs must be ≥ 0, got ${options.retryBaseMs}`);
    if (!(Number.isInteger(this.attempts) && this.attempts >= 1)) {
      throw new RangeError(`attempts must be an integer ≥ 1, got ${options.attempts}`);
    }
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
    const writes: { keyId: string; usage: UsageWrite }[] = [];
    for (const [keyId, days] of batch) {
      for (const [day, c] of days) {
        writes.push({ keyId, usage: { day, calls: c.calls, inputElements: c.inputElements, writeId: newWriteId() } });
      }
    }
    const done = this.deliver(writes, record);
    this.writing.add(done);
    try {
      await done;
    } finally {
      this.writing.delete(done);
    }
  }

  /** Writes each usage, retrying the failed ones with the same id and counts (exactly once in the ledger). */
  private async deliver(writes: { keyId: string; usage: UsageWrite }[], record: RecordCall): Promise<void> {
    let left = writes;
    for (let attempt = 1; left.length > 0; attempt++) {
      if (attempt > 1) {
        await new Promise((resolve) => setTimeout(resolve, this.retryBaseMs * 2 ** (attempt - 2)));
      }
      this.writes += left.length;
      const results = await Promise.allSettled(left.map((w) => record(w.keyId, w.usage)));
      const failed = left.filter((_, i) => results[i]!.status === "rejected");
      if (failed.length > 0 && attempt >= this.attempts) {
        this.dropped += failed.length;
        for (const [i, r] of results.entries()) {
          if (r.status === "rejected") console.error("fedge: metering write given up", left[i]!.keyId, r.reason);
        }
        return;
      }
      left = failed;
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
