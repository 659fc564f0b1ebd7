/**
 * @module
 * Isolate-local cache of authenticated API keys with rate-limit token leases: the hot path of `apiKeyAuth()`.
 *
 * Without it every request makes one AccountLedger Durable Object round trip (hash check, revocation, one token).
 * With it, one ledger call answers for a short while and for several requests:
 *
 * - **Lease.** A ledger call that admits a request also takes a small batch of tokens from the key's bucket (at most
 *   what the bucket refills in `ttlMs`, at most `maxLeaseTokens`, at least 1) and hands them to this isolate, which
 *   spends them locally until they run out or `ttlMs` passes. Tokens are debited in the ledger *before* they are
 *   spent, so the isolates of the world together never admit more than the ledger's bucket allows: **no
 *   over-admission**. Leftover tokens of an expired lease are given back on the next ledger call of the isolate; an
 *   isolate that goes idle or is evicted strands at most one lease (≤ `ttlMs` worth of refill, ≤ `maxLeaseTokens`)
 *   per key, which the bucket refills within `ttlMs` anyway (under-admission, never over-admission).
 * - **Staleness (revocation).** A cached answer is trusted for `ttlMs` after the ledger gave it. A key revoked by
 *   another isolate is therefore still accepted here for at most `ttlMs` (and at most the tokens of this isolate's
 *   lease). The isolate that revokes calls `forget(id)` and refuses the key at once; answers of ledger calls that
 *   were in flight during the revocation are used for their own request only, never cached.
 * - **429.** A `rate_limited` answer is remembered until the bucket has a token again (but never longer than
 *   `ttlMs` without asking the ledger), so a client over its limit does not hammer the ledger.
 * - Unknown keys (wrong secret, no such id) are never cached: every such request asks the ledger. The cache is keyed
 *   by key id, so only keys that exist take space; each entry remembers the SHA-256 it was proven with and a request
 *   with another secret for the same id misses.
 */
import type { ApiKeyInfo } from "@fedge/protocol";
import type { AuthVerdict, LeaseInput, LeaseVerdict } from "../../durable-objects/account-ledger.ts";

/** How long an isolate trusts an answer of a key's ledger: the revocation staleness window (milliseconds). */
export const AUTH_CACHE_TTL_MS = 1_000;
/** Most rate-limit tokens one ledger call leases to an isolate. */
export const MAX_LEASE_TOKENS = 64;

export interface KeyCacheOptions {
  /** How long a ledger answer (and its token lease) is trusted. @default AUTH_CACHE_TTL_MS (1000 ms) */
  ttlMs?: number;
  /** Most tokens leased per ledger call. @default MAX_LEASE_TOKENS (64) */
  maxLeaseTokens?: number;
  /** Most keys remembered; the oldest entry is dropped first (its lease is stranded, see the module doc). @default 10000 */
  maxEntries?: number;
  /** Clock (epoch milliseconds). @default Date.now */
  now?: () => number;
}

/** One ledger call: `lease()` of the key's AccountLedger (tests may pass another ledger's stub). */
export type LeaseCall = (input: LeaseInput) => Promise<LeaseVerdict>;

interface Entry {
  hash: string;
  key: ApiKeyInfo;
  revoked: boolean;
  /** Trusted until (epoch ms). */
  expiresAt: number;
  /** Leased tokens not yet spent. */
  tokens: number;
  /** Tokens left in the ledger's bucket when the lease was taken. */
  ledgerRemaining: number;
  /** 429 until (epoch ms); 0 when not limited. */
  blockedUntil: number;
}

/** Counters for tests and benchmarks. */
export interface KeyCacheStats {
  /** Requests answered from the cache. */
  hits: number;
  /** Ledger calls made. */
  ledgerCalls: number;
}

/** Constant-time equality of two equal-length hex strings. */
function hashesEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

function retrySeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

export class KeyCache {
  private readonly ttlMs: number;
  private readonly maxLeaseTokens: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private readonly entries = new Map<string, Entry>();
  /** In-flight ledger call per key id (concurrent misses of one key share it). */
  private readonly inflight = new Map<string, Promise<unknown>>();
  /** Bumped by `forget(id)`: a ledger answer that started under an older epoch is not cached. */
  private readonly epochs = new Map<string, number>();
  readonly stats: KeyCacheStats = { hits: 0, ledgerCalls: 0 };

  constructor(options: KeyCacheOptions = {}) {
    this.ttlMs = options.ttlMs ?? AUTH_CACHE_TTL_MS;
    this.maxLeaseTokens = options.maxLeaseTokens ?? MAX_LEASE_TOKENS;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.now = options.now ?? Date.now;
    if (!(this.ttlMs >= 0)) throw new RangeError(`ttlMs must be ≥ 0, got ${options.ttlMs}`);
    if (!(Number.isInteger(this.maxLeaseTokens) && this.maxLeaseTokens >= 1)) {
      throw new RangeError(`maxLeaseTokens must be an integer ≥ 1, got ${options.maxLeaseTokens}`);
    }
    if (!(this.maxEntries >= 1)) throw new RangeError(`maxEntries must be ≥ 1, got ${options.maxEntries}`);
  }

  /** Keys remembered. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Decide one request of key `keyId` proven by `hash` (lowercase hex SHA-256 of the whole key): from the cached
   * lease when it is fresh and has a token, otherwise with one `ledger` call (shared by concurrent misses).
   * `rateLimit: false` only authenticates (no token is taken).
   */
  async admit(keyId: string, hash: string, rateLimit: boolean, ledger: LeaseCall): Promise<AuthVerdict> {
    // A few rounds at most: a waiter re-checks after the shared call and may find the lease already spent.
    for (let round = 0; round < 4; round++) {
      const local = this.fromCache(keyId, hash, rateLimit);
      if (local) {
        this.stats.hits++;
        return local;
      }
      const pending = this.inflight.get(keyId);
      if (!pending) return this.refresh(keyId, hash, rateLimit, ledger);
      await pending.catch(() => undefined);
    }
    return this.refresh(keyId, hash, rateLimit, ledger);
  }

  /** Drop everything cached for a key (the revoking isolate calls this: the key is refused here at once). */
  forget(keyId: string): void {
    this.entries.delete(keyId);
    this.epochs.set(keyId, (this.epochs.get(keyId) ?? 0) + 1);
  }

  /** Drop every entry (tests). */
  clear(): void {
    for (const id of [...this.entries.keys()]) this.forget(id);
  }

  private fromCache(keyId: string, hash: string, rateLimit: boolean): AuthVerdict | null {
    const e = this.entries.get(keyId);
    if (!e || !hashesEqual(e.hash, hash)) return null;
    const t = this.now();
    if (t >= e.expiresAt) return null;
    if (e.revoked) return { status: "revoked", key: e.key };
    if (!rateLimit) return { status: "ok", key: e.key, remaining: e.tokens + e.ledgerRemaining };
    if (e.blockedUntil > t) {
      return { status: "rate_limited", key: e.key, retryAfterSeconds: retrySeconds(e.blockedUntil - t) };
    }
    if (e.tokens >= 1) {
      e.tokens--;
      return { status: "ok", key: e.key, remaining: e.tokens + e.ledgerRemaining };
    }
    return null;
  }

  private async refresh(keyId: string, hash: string, rateLimit: boolean, ledger: LeaseCall): Promise<AuthVerdict> {
    const epoch = this.epochs.get(keyId) ?? 0;
    const prev = this.entries.get(keyId);
    // Give back what is left of this isolate's previous lease (only for the same, already proven key).
    let giveBack = 0;
    if (prev && hashesEqual(prev.hash, hash) && !prev.revoked) {
      giveBack = prev.tokens;
      prev.tokens = 0;
    }
    const t = this.now();
    const call = ledger({
      hash,
      now: t,
      rateLimit,
      maxTokens: rateLimit ? this.maxLeaseTokens : 0,
      leaseMs: this.ttlMs,
      giveBack,
    });
    this.stats.ledgerCalls++;
    this.inflight.set(keyId, call);
    let verdict: LeaseVerdict;
    try {
      // If the ledger does not answer, the error reaches the request (500) and nothing is cached.
      verdict = await call;
    } finally {
      if (this.inflight.get(keyId) === call) this.inflight.delete(keyId);
    }
    const cacheable = (this.epochs.get(keyId) ?? 0) === epoch;
    switch (verdict.status) {
      case "unknown":
        // Never cached; an entry proven with another secret stays.
        return verdict;
      case "revoked":
        if (cacheable)
          this.store(keyId, {
            hash,
            key: verdict.key,
            revoked: true,
            expiresAt: t + this.ttlMs,
            tokens: 0,
            ledgerRemaining: 0,
            blockedUntil: 0,
          });
        return verdict;
      case "rate_limited":
        if (cacheable) {
          this.store(keyId, {
            hash,
            key: verdict.key,
            revoked: false,
            expiresAt: t + this.ttlMs,
            tokens: 0,
            ledgerRemaining: 0,
            blockedUntil: t + verdict.retryAfterMs,
          });
        }
        return { status: "rate_limited", key: verdict.key, retryAfterSeconds: verdict.retryAfterSeconds };
      case "ok": {
        // This request spends one of the granted tokens; the rest stay leased to this isolate.
        const left = rateLimit ? Math.max(0, verdict.granted - 1) : 0;
        if (cacheable) {
          this.store(keyId, {
            hash,
            key: verdict.key,
            revoked: false,
            expiresAt: t + this.ttlMs,
            tokens: left,
            ledgerRemaining: verdict.remaining,
            blockedUntil: 0,
          });
        }
        return { status: "ok", key: verdict.key, remaining: left + verdict.remaining };
      }
    }
  }

  private store(keyId: string, entry: Entry): void {
    this.entries.delete(keyId);
    this.entries.set(keyId, entry);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }
}

/** The isolate's key cache, used by `apiKeyAuth()`. */
export const keyCache = new KeyCache();
