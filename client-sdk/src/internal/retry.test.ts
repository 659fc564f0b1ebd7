import { describe, expect, it } from "vitest";
import {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIUserAbortError,
  FedgeAPIError,
  InvalidInputError,
} from "../core/errors.ts";
import {
  backoffDelayMs,
  isRetryableStatus,
  MAX_RETRY_DELAY_MS,
  retryDelayMs,
  shouldRetry,
  sleep,
  withRetries,
} from "./retry.ts";

const apiError = (status: number, headers?: Record<string, string>) =>
  FedgeAPIError.generate(status, { error: { code: "x", message: "m" } }, new Headers(headers));

describe("backoffDelayMs", () => {
  it("doubles from 0.5 s and caps at 8 s without jitter", () => {
    expect([0, 1, 2, 3, 4, 5, 10, 50].map((r) => backoffDelayMs(r, 0))).toEqual([
      500, 1000, 2000, 4000, 8000, 8000, 8000, 8000,
    ]);
  });
  it("jitter takes off at most 25 %", () => {
    for (const r of [0, 3, 7]) {
      const full = backoffDelayMs(r, 0);
      expect(backoffDelayMs(r, 0.999999)).toBeGreaterThan(full * 0.75);
      expect(backoffDelayMs(r, 0.5)).toBeCloseTo(full * 0.875, 9);
      expect(backoffDelayMs(r, 0.999999)).toBeLessThanOrEqual(MAX_RETRY_DELAY_MS);
    }
  });
  it("rejects bad arguments", () => {
    expect(() => backoffDelayMs(-1, 0)).toThrow(RangeError);
    expect(() => backoffDelayMs(1.5, 0)).toThrow(RangeError);
    expect(() => backoffDelayMs(0, 1)).toThrow(RangeError);
    expect(() => backoffDelayMs(0, Number.NaN)).toThrow(RangeError);
  });
});

describe("which failures are retried", () => {
  it("408, 429 and 5xx only", () => {
    for (const s of [408, 429, 500, 502, 503, 504, 599]) expect(isRetryableStatus(s)).toBe(true);
    for (const s of [400, 401, 403, 404, 409, 413, 415, 422]) expect(isRetryableStatus(s)).toBe(false);
  });
  it("connection errors and timeouts yes; aborts and local errors no", () => {
    expect(shouldRetry(new APIConnectionError())).toBe(true);
    expect(shouldRetry(new APIConnectionTimeoutError())).toBe(true);
    expect(shouldRetry(new APIUserAbortError())).toBe(false);
    expect(shouldRetry(new InvalidInputError("x", "bad"))).toBe(false);
    expect(shouldRetry(new Error("boom"))).toBe(false);
    expect(shouldRetry(apiError(409))).toBe(false);
    expect(shouldRetry(apiError(503))).toBe(true);
  });
  it("Retry-After wins over backoff, up to 60 s", () => {
    const now = 0;
    expect(retryDelayMs(apiError(429, { "retry-after": "2" }), 0, 0, now)).toBe(2000);
    expect(retryDelayMs(apiError(503, { "retry-after": "1" }), 3, 0, now)).toBe(1000);
    expect(retryDelayMs(apiError(429, { "retry-after": "120" }), 0, 0, now)).toBeUndefined();
    expect(retryDelayMs(apiError(429), 2, 0, now)).toBe(2000);
    expect(retryDelayMs(apiError(400, { "retry-after": "1" }), 0, 0, now)).toBeUndefined();
  });
});

describe("withRetries", () => {
  it("stops at the first success and at a non-retryable error", async () => {
    let calls = 0;
    const ok = await withRetries(
      async () => {
        calls++;
        if (calls < 3) throw apiError(503, { "retry-after-ms": "1" });
        return "done";
      },
      { maxRetries: 5, uniform: () => 0 },
    );
    expect(ok).toBe("done");
    expect(calls).toBe(3);

    calls = 0;
    await expect(
      withRetries(
        async () => {
          calls++;
          throw apiError(404);
        },
        { maxRetries: 5, uniform: () => 0 },
      ),
    ).rejects.toBeInstanceOf(FedgeAPIError);
    expect(calls).toBe(1);
  });
  it("gives up after maxRetries and rethrows the last error", async () => {
    let calls = 0;
    const err = await withRetries(
      async () => {
        calls++;
        throw apiError(500, { "retry-after-ms": "1" });
      },
      { maxRetries: 2, uniform: () => 0 },
    ).catch((e: unknown) => e);
    expect(calls).toBe(3);
    expect((err as FedgeAPIError).status).toBe(500);
  });
  it("an abort during the wait ends it at once", async () => {
    const ac = new AbortController();
    const started = Date.now();
    const p = withRetries(
      async () => {
        throw apiError(503, { "retry-after": "30" });
      },
      { maxRetries: 2, uniform: () => 0, signal: ac.signal },
    );
    setTimeout(() => ac.abort(), 20);
    await expect(p).rejects.toBeInstanceOf(APIUserAbortError);
    expect(Date.now() - started).toBeLessThan(5000);
    await expect(sleep(10, AbortSignal.abort())).rejects.toBeInstanceOf(APIUserAbortError);
  });
});
