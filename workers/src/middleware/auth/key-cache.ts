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
 * - **Unknown keys** are cached for `negativeTtlMs` (a short negative cache): an id with no key is refused without a
 *   ledger call for that long, and for an id whose secret was wrong the ledger hands back the stored SHA-256, so every
 *   other wrong secret for that id is refused here too (only the right one asks the ledger). A fresh entry proven with
 *   one hash refuses other hashes of its id the same way (a key has one hash). So neither made-up ids nor guessed
 *   secrets for a real id reach a ledger more than once per isolate and `negativeTtlMs`. A key created or rotated in
 *   this isolate is `forget`-ten first; ids are 80 random bits, so no other isolate has a negative entry for a new one.
 *   Both maps are bounded (`maxEntries`, oldest dropped first).
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
  /** How long an "unknown key" answer is trusted (the negative cache). @default NEGATIVE_CACHE_TTL_MS (5000 ms) */
  negativeTtlMs?: number;
  /** Clock (epoch milliseconds). @default Date.now */
  now?: () => number;
}

/** How long an isolate refuses an unknown key id (or a wrong secret for a known id) without asking its ledger. */
export const NEGATIVE_CACHE_TTL_MS = 5_000;

interface Negative {
  /** Trusted until (epoch ms). */
  expiresAt: number;
  /** The hash the ledger holds for this id; null when there is no key with this id. */
  storedHash: string | null;
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
  /** Requests refused as unknown without a ledger call. */
  negativeHits: number;
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
  private readonly negativeTtlMs: number;
  private readonly entries = new Map<string, Entry>();
  private readonly negatives = new Map<string, Negative>();
  /** In-flight ledger call per key id (concurrent misses of one key share it). */
  private readonly inflight = new Map<string, Promise<unknown>>();
  /** Bumped by `forget(id)`: a ledger answer that started under an older epoch is not cached. */
  private readonly epochs = new Map<string, number>();
  readonly stats: KeyCacheStats = { hits: 0, ledgerCalls: 0, negativeHits: 0 };

  constructor(options: KeyCacheOptions = {}) {
    this.ttlMs = options.ttlMs ?? AUTH_CACHE_TTL_MS;
    this.maxLeaseTokens = options.maxLeaseTokens ?? MAX_LEASE_TOKENS;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.negativeTtlMs = options.negativeTtlMs ?? NEGATIVE_CACHE_TTL_MS;
    this.now = options.now ?? Date.now;
    if (!(this.negativeTtlMs >= 0)) throw new RangeError(`negativeTtlMs must be ≥ 0, got ${options.negativeTtlMs}`);
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
    if (this.knownWrong(keyId, hash)) {
      this.stats.negativeHits++;
      return { status: "unknown" };
    }
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
    this.negatives.delete(keyId);
    this.epochs.set(keyId, (this.epochs.get(keyId) ?? 0) + 1);
  }

  /** Drop every entry (tests). */
  clear(): void {
    for (const id of [...this.entries.keys()]) this.forget(id);
  }

  /** Whether `hash` is certainly not the key of `keyId`: a fresh negative entry, or a fresh entry with another hash. */
  private knownWrong(keyId: string, hash: string): boolean {
    const t = this.now();
    const neg = this.negatives.get(keyId);
    if (neg) {
      if (t >= neg.expiresAt) this.negatives.delete(keyId);
      else if (neg.storedHash === null || !hashesEqual(neg.storedHash, hash)) return true;
    }
    const e = this.entries.get(keyId);
    return e !== undefined && t < e.expiresAt && !hashesEqual(e.hash, hash);
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
        // Remembered for negativeTtlMs (an entry proven with another secret stays).
        if (cacheable) {
          this.negatives.delete(keyId);
          this.negatives.set(keyId, { expiresAt: t + this.negativeTtlMs, storedHash: verdict.storedHash ?? null });
          while (this.negatives.size > this.maxEntries) this.negatives.delete(this.negatives.keys().next().value!);
        }
        return { status: "unknown" };
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
    this.negatives.delete(keyId);
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
