import { describe, expect, it } from "vitest";
import { leaseTokens, returnTokens, takeToken, takeTokens, type BucketState } from "../src/middleware/rate-limit.ts";

describe("takeToken", () => {
  it("allows a burst of perMinute requests, then refuses with the time to the next token", () => {
    let state: BucketState | null = null;
    for (let i = 0; i < 3; i++) {
      const r = takeToken(state, 1_000, 3);
      expect(r.allowed).toBe(true);
      state = r.state;
    }
    const refused = takeToken(state, 1_000, 3);
    expect(refused).toMatchObject({ allowed: false, retryAfterSeconds: 20 });
  });

  it("refills at perMinute/60 tokens per second, capped at the burst size", () => {
    const empty: BucketState = { tokens: 0, updatedAt: 0 };
    expect(takeToken(empty, 19_999, 3).allowed).toBe(false);
    expect(takeToken(empty, 20_000, 3).allowed).toBe(true);
    const r = takeToken(empty, 3_600_000, 3);
    expect(r.allowed && r.remaining).toBe(2);
  });

  it("never lets a clock step backwards mint tokens", () => {
    const r = takeToken({ tokens: 0.5, updatedAt: 10_000 }, 5_000, 60);
    expect(r.allowed).toBe(false);
  });

  it("never refills the same interval twice when the clock steps back and then forward", () => {
    // Drained at t = 60 s; the clock steps back a minute, then forward to 60 s again: no time has passed.
    const back = takeToken({ tokens: 0, updatedAt: 60_000 }, 0, 60);
    expect(back.allowed).toBe(false);
    expect(back.state.updatedAt).toBe(60_000);
    expect(takeToken(back.state, 60_000, 60).allowed).toBe(false);
    expect(takeToken(back.state, 61_000, 60).allowed).toBe(true);
    const returned = returnTokens({ tokens: 0, updatedAt: 60_000 }, 0, 60, 0);
    expect(returned).toEqual({ tokens: 0, updatedAt: 60_000 });
  });

  it("rejects a non-positive limit", () => {
    expect(() => takeToken(null, 0, 0)).toThrow(/perMinute/);
  });
});

describe("takeTokens / returnTokens / leaseTokens", () => {
  it("grants up to the wanted tokens, as many as the bucket holds", () => {
    const full = takeTokens(null, 0, 10, 4);
    expect(full).toMatchObject({ allowed: true, granted: 4, remaining: 6 });
    const partial = takeTokens({ tokens: 2.5, updatedAt: 0 }, 0, 10, 4);
    expect(partial).toMatchObject({ allowed: true, granted: 2, remaining: 0 });
    expect(partial.state.tokens).toBeCloseTo(0.5);
    const none = takeTokens({ tokens: 0.5, updatedAt: 0 }, 0, 10, 4);
    // 0.5 token short at 10/min: 3 s.
    expect(none).toMatchObject({ allowed: false, retryAfterMs: 3_000, retryAfterSeconds: 3 });
    expect(() => takeTokens(null, 0, 10, 0)).toThrow(/want/);
    expect(() => takeTokens(null, 0, 10, 1.5)).toThrow(/want/);
  });

  it("puts unspent tokens back, never above the capacity", () => {
    expect(returnTokens({ tokens: 1, updatedAt: 0 }, 0, 10, 3)).toEqual({ tokens: 4, updatedAt: 0 });
    expect(returnTokens({ tokens: 9, updatedAt: 0 }, 6_000, 10, 3)).toEqual({ tokens: 10, updatedAt: 6_000 });
    expect(returnTokens(null, 5, 10, 3)).toEqual({ tokens: 10, updatedAt: 5 });
    expect(() => returnTokens(null, 0, 10, -1)).toThrow(/count/);
  });

  it("sizes a lease as the refill over the lease time, between 1 and the cap", () => {
    expect(leaseTokens(600, 1_000, 64)).toBe(10);
    expect(leaseTokens(1_000_000, 1_000, 64)).toBe(64);
    expect(leaseTokens(3, 1_000, 64)).toBe(1);
    expect(leaseTokens(600, 0, 64)).toBe(1);
  });
});
