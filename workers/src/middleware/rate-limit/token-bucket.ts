/**
 * @module
 * Token bucket (pure: the caller passes the clock). A key limited to `perMinute` requests holds at most `perMinute`
 * tokens and regains `perMinute / 60` tokens per second; each request takes one token.
 */

export interface BucketState {
  /** Tokens left (fractional while refilling). */
  tokens: number;
  /** Epoch milliseconds of the last update. */
  updatedAt: number;
}

export type TakeResult =
  | { allowed: true; state: BucketState; remaining: number }
  | { allowed: false; state: BucketState; retryAfterSeconds: number };

/** Refill `state` up to `now` and try to take one token. A missing state is a full bucket. */
export function takeToken(state: BucketState | null, now: number, perMinute: number): TakeResult {
  if (!(perMinute > 0)) throw new RangeError(`perMinute must be positive, got ${perMinute}`);
  const capacity = perMinute;
  const perMs = perMinute / 60_000;
  const prev = state ?? { tokens: capacity, updatedAt: now };
  const elapsed = Math.max(0, now - prev.updatedAt);
  const tokens = Math.min(capacity, prev.tokens + elapsed * perMs);
  if (tokens >= 1) {
    const next = { tokens: tokens - 1, updatedAt: now };
    return { allowed: true, state: next, remaining: Math.floor(next.tokens) };
  }
  const waitMs = (1 - tokens) / perMs;
  return {
    allowed: false,
    state: { tokens, updatedAt: now },
    retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)),
  };
}
