import { describe, expect, it } from "vitest";
import { takeToken, type BucketState } from "../src/middleware/rate-limit/index.ts";

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

  it("rejects a non-positive limit", () => {
    expect(() => takeToken(null, 0, 0)).toThrow(/perMinute/);
  });
});
