/**
 * @module
 * Per-client-IP limits, kept in each isolate (no Durable Object: a limit that creates an object per address would let
 * every new address cost the edge one). Two limiters use it:
 *
 * - `uploadsPerIp`: update uploads per minute from one address (`FEDGE_UPLOADS_PER_MINUTE_PER_IP`, default 3000), on
 *   top of the API key's own limit;
 * - `authFailuresPerIp`: failed credentials (an unknown or wrong API key, a refused admin credential) per minute from
 *   one address (`FEDGE_AUTH_FAILURES_PER_MINUTE_PER_IP`, default 60). Once an address used them up, its requests that
 *   need a credential are answered 429 before the credential is looked at (no ledger, KV or Durable Object call).
 *
 * The address is `CF-Connecting-IP`, which Cloudflare sets on every request and a client cannot forge; a request
 * without it (the workerd test harness) is not limited here. The limits are per isolate, so they bound what one
 * address costs each isolate; a zone-wide limit belongs to Cloudflare's WAF rate-limiting rules in front of the
 * Worker. Each limiter remembers at most `maxEntries` addresses (the oldest is dropped first).
 */
import type { Context, MiddlewareHandler } from "hono";
import { FedgeError } from "@fedge/protocol";
import type { AppEnv, Bindings } from "../env.ts";
import { takeToken, type BucketState } from "./rate-limit.ts";

/** Default update uploads per minute from one address (per isolate). */
export const DEFAULT_UPLOADS_PER_MINUTE_PER_IP = 3000;
/** Default failed credentials per minute from one address (per isolate). */
export const DEFAULT_AUTH_FAILURES_PER_MINUTE_PER_IP = 60;

export interface IpLimiterOptions {
  /** Addresses remembered. @default 10000 */
  maxEntries?: number;
  /** Clock (epoch milliseconds). @default Date.now */
  now?: () => number;
}

export type IpVerdict = { allowed: true } | { allowed: false; retryAfterSeconds: number };

export class IpLimiter {
  private readonly buckets = new Map<string, BucketState>();
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(options: IpLimiterOptions = {}) {
    this.maxEntries = options.maxEntries ?? 10_000;
    this.now = options.now ?? Date.now;
    if (!(Number.isInteger(this.maxEntries) && this.maxEntries >= 1)) {
      throw new RangeError(`maxEntries must be an integer ≥ 1, got ${options.maxEntries}`);
    }
  }

  /** Takes one token from `ip`'s bucket of `perMinute`. */
  take(ip: string, perMinute: number): IpVerdict {
    return this.decide(ip, perMinute, true);
  }

  /** Whether `ip` has a token left, without taking it. */
  peek(ip: string, perMinute: number): IpVerdict {
    return this.decide(ip, perMinute, false);
  }

  /** Forget every address (tests). */
  clear(): void {
    this.buckets.clear();
  }

  private decide(ip: string, perMinute: number, spend: boolean): IpVerdict {
    const prev = this.buckets.get(ip) ?? null;
    const taken = takeToken(prev, this.now(), perMinute);
    if (!taken.allowed) return { allowed: false, retryAfterSeconds: taken.retryAfterSeconds };
    if (spend) {
      this.buckets.delete(ip);
      this.buckets.set(ip, taken.state);
      while (this.buckets.size > this.maxEntries) this.buckets.delete(this.buckets.keys().next().value!);
    }
    return { allowed: true };
  }
}

/** This isolate's limiters. */
export const uploadsPerIp = new IpLimiter();
export const authFailuresPerIp = new IpLimiter();

/** The client's address (`CF-Connecting-IP`), or null where the runtime does not set it. */
export function clientIp(c: Context): string | null {
  return c.req.header("cf-connecting-ip") ?? null;
}

function perMinute(value: string | undefined, fallback: number): number {
  const n = Number(value ?? "");
  return value !== undefined && Number.isFinite(n) && n > 0 ? n : fallback;
}

export function uploadsPerMinutePerIp(env: Bindings): number {
  return perMinute(env.FEDGE_UPLOADS_PER_MINUTE_PER_IP, DEFAULT_UPLOADS_PER_MINUTE_PER_IP);
}

export function authFailuresPerMinutePerIp(env: Bindings): number {
  return perMinute(env.FEDGE_AUTH_FAILURES_PER_MINUTE_PER_IP, DEFAULT_AUTH_FAILURES_PER_MINUTE_PER_IP);
}

function limited(what: string, retryAfterSeconds: number): FedgeError {
  return new FedgeError("rate_limited", 429, `${what} from this address; retry in ${retryAfterSeconds} s`);
}

/** 429 when the client's address used up its failed credentials (call before looking at a credential). */
export function refuseIfAuthFailuresExhausted(c: Context<AppEnv>): void {
  const ip = clientIp(c);
  if (ip === null) return;
  const v = authFailuresPerIp.peek(ip, authFailuresPerMinutePerIp(c.env));
  if (!v.allowed) {
    c.header("Retry-After", String(v.retryAfterSeconds));
    throw limited("too many failed credentials", v.retryAfterSeconds);
  }
}

/** Counts one failed credential against the client's address. */
export function chargeAuthFailure(c: Context<AppEnv>): void {
  const ip = clientIp(c);
  if (ip !== null) authFailuresPerIp.take(ip, authFailuresPerMinutePerIp(c.env));
}

/** Route middleware: one token of the address's upload budget per request, 429 with `Retry-After` when none is left. */
export function uploadIpLimit(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const ip = clientIp(c);
    if (ip !== null) {
      const v = uploadsPerIp.take(ip, uploadsPerMinutePerIp(c.env));
      if (!v.allowed) {
        c.header("Retry-After", String(v.retryAfterSeconds));
        throw limited("too many uploads", v.retryAfterSeconds);
      }
    }
    return next();
  };
}
