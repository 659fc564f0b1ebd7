/**
 * @module
 * Retry policy: exponential backoff from 0.5 s, doubling, capped at 8 s, with up to 25 % jitter taken off (openai-node
 * `calculateDefaultRetryTimeoutMillis`, src/client.ts); the server's `Retry-After` wins when it is between 0 and 60 s.
 * Retried: 408, 429, every 5xx, connection errors and per-attempt timeouts. Never retried: any other 4xx, a user abort.
 * The jitter comes from the CSPRNG (never a non-cryptographic PRNG). `backoffDelayMs` and `shouldRetry` are pure.
 */
import {
  APIConnectionError,
  APIUserAbortError,
  FedgeAPIError,
  FedgeClientError,
  parseRetryAfterMs,
} from "../core/errors.ts";

/** First retry waits about this long. */
export const INITIAL_RETRY_DELAY_MS = 500;
/** No computed wait is longer than this. */
export const MAX_RETRY_DELAY_MS = 8000;
/** Largest fraction of the delay the jitter removes. */
export const RETRY_JITTER = 0.25;
/** A server-sent Retry-After above this is not waited for: the error is raised instead. */
export const MAX_RETRY_AFTER_MS = 60_000;

/**
 * Delay before retry number `retry` (0 for the first retry): `min(0.5 s · 2^retry, 8 s) · (1 − 0.25·u)`, where
 * `u ∈ [0, 1)` is a uniform draw supplied by the caller (so this function stays pure).
 */
export function backoffDelayMs(retry: number, u: number): number {
  if (!Number.isInteger(retry) || retry < 0) throw new RangeError(`retry must be an integer >= 0, got ${retry}`);
  if (!(u >= 0 && u < 1)) throw new RangeError(`u must be in [0, 1), got ${u}`);
  const base = Math.min(INITIAL_RETRY_DELAY_MS * 2 ** retry, MAX_RETRY_DELAY_MS);
  return base * (1 - RETRY_JITTER * u);
}

/** Whether an HTTP status is worth retrying: 408, 429 and 5xx only. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** Whether an error raised by one attempt is worth retrying. */
export function shouldRetry(err: unknown): boolean {
  if (err instanceof APIUserAbortError) return false;
  if (err instanceof APIConnectionError) return true; // includes timeouts
  if (err instanceof FedgeAPIError && err.status !== undefined) return isRetryableStatus(err.status);
  return false;
}

/**
 * How long to wait before retrying after `err`, or undefined when it must not be retried: the server's
 * `retry-after-ms`/`Retry-After` when present and ≤ 60 s, else {@link backoffDelayMs}.
 */
export function retryDelayMs(err: unknown, retry: number, u: number, nowMs: number): number | undefined {
  if (!shouldRetry(err)) return undefined;
  const headers = err instanceof FedgeAPIError ? err.headers : undefined;
  const serverMs = headers ? parseRetryAfterMs(headers, nowMs) : undefined;
  if (serverMs !== undefined) return serverMs <= MAX_RETRY_AFTER_MS ? serverMs : undefined;
  return backoffDelayMs(retry, u);
}

export interface RetryOptions {
  /** Retries after the first attempt. */
  maxRetries: number;
  signal?: AbortSignal | undefined;
  /** Uniform [0, 1) source for jitter (from the CSPRNG). */
  uniform: () => number;
  /** Called before each wait, e.g. for logging. */
  onRetry?: ((info: { retry: number; delayMs: number; error: unknown }) => void) | undefined;
}

/** Runs `attempt(n)` until it succeeds, fails with a non-retryable error, or `maxRetries` retries are spent. */
export async function withRetries<T>(attempt: (n: number) => Promise<T>, options: RetryOptions): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (n >= options.maxRetries) throw err;
      const delay = retryDelayMs(err, n, options.uniform(), Date.now());
      if (delay === undefined) throw err;
      options.onRetry?.({ retry: n, delayMs: delay, error: err });
      await sleep(delay, options.signal);
    }
  }
}

/** Waits `ms`, or rejects with {@link APIUserAbortError} as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The error for an aborted signal: the caller's own reason if it is a FedgeClientError, else APIUserAbortError. */
export function abortError(signal: AbortSignal): FedgeClientError {
  const reason: unknown = signal.reason;
  if (reason instanceof FedgeClientError) return reason;
  return new APIUserAbortError({ cause: reason });
}
