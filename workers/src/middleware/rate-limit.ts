/**
 * @module
 * Token bucket (pure: the caller passes the clock). A key limited to `perMinute` requests holds at most `perMinute`
 * tokens and regains `perMinute / 60` tokens per second; each request takes one token. `takeTokens` takes several
 * at once (a lease for an isolate-local cache, see middleware/auth/key-cache.ts) and `returnTokens` gives unspent
 * ones back.
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

function refill(state: BucketState | null, now: number, perMinute: number): number {
  if (!(perMinute > 0)) throw new RangeError(`perMinute must be positive, got ${perMinute}`);
  const prev = state ?? { tokens: perMinute, updatedAt: now };
  const elapsed = Math.max(0, now - prev.updatedAt);
  return Math.min(perMinute, prev.tokens + (elapsed * perMinute) / 60_000);
}

/**
 * Refill `state` up to `now` and take between 1 and `want` whole tokens (as many as the bucket holds). A missing
 * state is a full bucket. Refused only when not even one token is there; `retryAfterMs` is the time to the next one.
 */
export function takeTokens(state: BucketState | null, now: number, perMinute: number, want: number): TakeResult {
  if (!(Number.isInteger(want) && want >= 1)) throw new RangeError(`want must be an integer ≥ 1, got ${want}`);
  const tokens = refill(state, now, perMinute);
  if (tokens >= 1) {
    const granted = Math.min(want, Math.floor(tokens));
    const next = { tokens: tokens - granted, updatedAt: now };
    return { allowed: true, state: next, remaining: Math.floor(next.tokens), granted };
  }
  const retryAfterMs = Math.ceil(((1 - tokens) * 60_000) / perMinute);
  return {
    allowed: false,
    state: { tokens, updatedAt: now },
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
  return { tokens: Math.min(perMinute, refill(state, now, perMinute) + count), updatedAt: now };
}

/**
 * Tokens one lease may take: what the bucket refills in `leaseMs` (so a lease stranded in an idle isolate costs at
 * most `leaseMs` of refill), capped at `maxTokens`, at least 1.
 */
export function leaseTokens(perMinute: number, leaseMs: number, maxTokens: number): number {
  return Math.max(1, Math.min(Math.floor(maxTokens), Math.floor((perMinute * leaseMs) / 60_000)));
}
