/**
 * @module
 * Whether an API key is revoked, by key id, for requests that do not carry the key: an upload is authenticated by the
 * device's signature, but the device checked in under an API key, and a revoked key's devices must not report either.
 *
 * Same staleness contract as the authenticating cache (key-cache.ts): an answer of the key's AccountLedger is trusted
 * for `AUTH_CACHE_TTL_MS`, the isolate that revokes a key marks it at once, and a revocation elsewhere is seen within
 * that window. A revoked key never comes back, so its answer is kept for good.
 */
import { AUTH_CACHE_TTL_MS } from "./key-cache.ts";

export type KeyStatus = "active" | "revoked" | "unknown";

export class KeyStatusCache {
  private readonly entries = new Map<string, { status: KeyStatus; expiresAt: number }>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(options: { ttlMs?: number; maxEntries?: number; now?: () => number } = {}) {
    this.ttlMs = options.ttlMs ?? AUTH_CACHE_TTL_MS;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** The key's status, asking its ledger (`ask`) at most once per `ttlMs` while it is active. */
  async status(keyId: string, ask: () => Promise<KeyStatus>): Promise<KeyStatus> {
    const hit = this.entries.get(keyId);
    if (hit && (hit.status === "revoked" || hit.expiresAt > this.now())) return hit.status;
    const status = await ask();
    if (this.entries.size >= this.maxEntries) this.entries.clear();
    this.entries.set(keyId, { status, expiresAt: this.now() + this.ttlMs });
    return status;
  }

  /** This isolate revoked the key: refuse it from now on without asking. */
  markRevoked(keyId: string): void {
    this.entries.set(keyId, { status: "revoked", expiresAt: Infinity });
  }
}

/** The isolate's cache. */
export const keyStatus = new KeyStatusCache();
