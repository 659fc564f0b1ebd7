/**
 * @module
 * Token bucket (pure: the caller passes the clock). A key limited to `perMinute` requests holds at most `perMinute`
 * tokens and regains `perMinute / 60` tokens per second; each request takes one token. `takeTokens` takes several
 * at once (a lease for an isolate-local cache, see middleware/auth/key-cache.ts) and `returnTokens` gives unspent
 * ones back.
 *
 * Time only moves forward here: a state is stamped `max(its time, now)`, so a clock that steps back and then forward
 * again never refills the same interval twice (the AccountLedger passes its own clock, not a caller's).
 */

export interface BucketState {
  /** Tokens left (fractional while refilling). */
  tokens: number;
  /** Epoch milliseconds of the last update. */
  updatedAt: number;
}

export type TakeResult =
  | { allowed: true; state: BucketState; remaining: number; granted: number }
  | { allowed: false; state: BucketState; retryAfterSeconds: number; retryAfterMs: number };

/** The bucket refilled up to `now`, stamped at `max(state's time, now)`. */
function refill(state: BucketState | null, now: number, perMinute: number): BucketState {
  if (!(perMinute > 0)) throw new RangeError(`perMinute must be positive, got ${perMinute}`);
  const prev = state ?? { tokens: perMinute, updatedAt: now };
  const at = Math.max(prev.updatedAt, now);
  return { tokens: Math.min(perMinute, prev.tokens + ((at - prev.updatedAt) * perMinute) / 60_000), updatedAt: at };
}

/**
 * Refill `state` up to `now` and take between 1 and `want` whole tokens (as many as the bucket holds). A missing
 * state is a full bucket. Refused only when not even one token is there; `retryAfterMs` is the time to the next one.
 */
export function takeTokens(state: BucketState | null, now: number, perMinute: number, want: number): TakeResult {
  if (!(Number.isInteger(want) && want >= 1)) throw new RangeError(`want must be an integer ≥ 1, got ${want}`);
  const { tokens, updatedAt } = refill(state, now, perMinute);
  if (tokens >= 1) {
    const granted = Math.min(want, Math.floor(tokens));
    const next = { tokens: tokens - granted, updatedAt };
    return { allowed: true, state: next, remaining: Math.floor(next.tokens), granted };
  }
  const retryAfterMs = Math.ceil(((1 - tokens) * 60_000) / perMinute) + (updatedAt - now);
  return {
    allowed: false,
    state: { tokens, updatedAt },
    retryAfterMs,
    retryAfterSeconds: Math.max(1, Math.ceil(retryAfterMs / 1000)),
  };
}

/** Refill `state` up to `now` and try to take one token. A missing state is a full bucket. */
export function takeToken(state: BucketState | null, now: number, perMinute: number): TakeResult {
  return takeTokens(state, now, perMinute, 1);
}

/** Put `count` unspent tokens back (after refilling to `now`), never above the capacity. */
export function returnTokens(state: BucketState | null, now: number, perMinute: number, count: number): BucketState {
  if (!(count >= 0)) throw new RangeError(`count must be ≥ 0, got ${count}`);
  const refilled = refill(state, now, perMinute);
  return { tokens: Math.min(perMinute, refilled.tokens + count), updatedAt: refilled.updatedAt };
}

/**
 * Tokens one lease may take: what the bucket refills in `leaseMs` (so a lease stranded in an idle isolate costs at
 * most `leaseMs` of refill), capped at `maxTokens`, at least 1.
 */
export function leaseTokens(perMinute: number, leaseMs: number, maxTokens: number): number {
  return Math.max(1, Math.min(Math.floor(maxTokens), Math.floor((perMinute * leaseMs) / 60_000)));
}
