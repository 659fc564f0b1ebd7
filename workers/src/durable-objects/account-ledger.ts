/**
 * @module
 * AccountLedger: one Durable Object per API key (named `key:<id>`), the single writer of that key's record, its
 * rate-limit bucket and its daily usage. One object per key keeps every check strongly consistent without making
 * one object the bottleneck of all traffic.
 *
 * Keys are stored as SHA-256 of the whole key string. A fedge key carries 256 random bits, so a fast hash is
 * enough: nobody can guess or brute-force a preimage, and a slow password hash (scrypt, Argon2) would only add CPU
 * time to every request. A leaked ledger therefore reveals no usable key.
 */
import { DurableObject } from "cloudflare:workers";
import { DEFAULT_TENANT, type ApiKeyInfo, type UsageDay, type UsageReport } from "@fedge/protocol";
import type { Bindings } from "../env.ts";
import { leaseTokens, returnTokens, takeTokens, type BucketState } from "../middleware/rate-limit.ts";

/** What `authenticate` answers; the middleware turns it into 401/403/429 or a context variable. */
export type AuthVerdict =
  | { status: "ok"; key: ApiKeyInfo; remaining: number }
  | { status: "unknown" }
  | { status: "revoked"; key: ApiKeyInfo }
  | { status: "rate_limited"; key: ApiKeyInfo; retryAfterSeconds: number };

/** One lease request of an isolate's key cache (middleware/auth/key-cache.ts). */
export interface LeaseInput {
  /** Lowercase hex SHA-256 of the whole key string. */
  hash: string;
  /** Take tokens (false: authenticate only, `granted` is 0). */
  rateLimit: boolean;
  /** Most tokens to lease; the ledger grants at most `leaseTokens(limit, leaseMs, maxTokens)`, at least 1. */
  maxTokens: number;
  /** How long the caller will keep the lease (bounds the lease to that much refill). */
  leaseMs: number;
  /** Unspent tokens of the caller's previous lease, put back first (only when the hash matches). */
  giveBack: number;
}

/**
 * What `lease` answers. `remaining`: whole tokens left in the bucket after the grant. An `unknown` answer for a key id
 * that exists (the secret was wrong) carries the stored hash, so the isolate can refuse other wrong secrets for that id
 * without asking again (key-cache.ts: the hash is the worker's own, never sent to a client).
 */
export type LeaseVerdict =
  | { status: "ok"; key: ApiKeyInfo; granted: number; remaining: number }
  | { status: "unknown"; storedHash?: string }
  | { status: "revoked"; key: ApiKeyInfo }
  | { status: "rate_limited"; key: ApiKeyInfo; retryAfterMs: number; retryAfterSeconds: number };

export interface CreateKeyInput {
  id: string;
  name: string;
  /** The tenant the key belongs to. @default DEFAULT_TENANT */
  tenant?: string;
  /** Lowercase hex SHA-256 of the full key string. */
  hash: string;
  rateLimitPerMinute: number;
  /** Epoch milliseconds. */
  now: number;
}

interface KeyRow extends Record<string, SqlStorageValue> {
  id: string;
  name: string;
  tenant: string;
  hash: string;
  rate_limit: number;
  created_at: number;
  revoked_at: number | null;
}

function toInfo(row: KeyRow): ApiKeyInfo {
  return {
    id: row.id,
    name: row.name,
    rate_limit_per_minute: row.rate_limit,
    tenant: row.tenant,
    created_at: new Date(row.created_at).toISOString(),
    revoked_at: row.revoked_at === null ? null : new Date(row.revoked_at).toISOString(),
  };
}

/** Constant-time equality of two equal-length hex strings (hashes). */
function hashesEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** How long a ledger remembers the id of an applied usage write (far longer than a writer retries). */
const WRITE_LOG_MS = 2 * 86_400_000;

/** The UTC day (`YYYY-MM-DD`) of an epoch-millisecond instant. */
export function utcDay(epochMs: number): string {
  return new Date(epochMs).toISOString().slice(0, 10);
}

export class AccountLedger extends DurableObject<Bindings> {
  private readonly sql: SqlStorage;
  /**
   * Whether this key's tables exist. They are created by the first legitimate write (`create`/`ensure`, admin or
   * bootstrap only), so an object addressed by an unknown key id answers "unknown" and keeps no storage.
   */
  private hasTables: boolean;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.hasTables =
      this.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'api_key'").toArray().length > 0;
    // Keys created before tenants existed belong to the default tenant.
    if (
      this.hasTables &&
      !this.sql
        .exec<{ name: string }>("PRAGMA table_info(api_key)")
        .toArray()
        .some((c) => c.name === "tenant")
    ) {
      this.sql.exec(`ALTER TABLE api_key ADD COLUMN tenant TEXT NOT NULL DEFAULT '${DEFAULT_TENANT}'`);
    }
    if (this.hasTables) this.createWriteLog();
  }

  private createTables(): void {
    this.sql.exec(`CREATE TABLE IF NOT EXISTS api_key (
      id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL, rate_limit INTEGER NOT NULL,
      created_at INTEGER NOT NULL, revoked_at INTEGER, tenant TEXT NOT NULL DEFAULT '${DEFAULT_TENANT}')`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS bucket (one INTEGER PRIMARY KEY CHECK (one = 1),
      tokens REAL NOT NULL, updated_at INTEGER NOT NULL)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS usage (day TEXT PRIMARY KEY, calls INTEGER NOT NULL,
      input_elements INTEGER NOT NULL)`);
    this.createWriteLog();
    this.hasTables = true;
  }

  /** Ids of the usage writes applied in the last `WRITE_LOG_MS` (a retried write is applied once). */
  private createWriteLog(): void {
    this.sql.exec("CREATE TABLE IF NOT EXISTS usage_writes (id TEXT PRIMARY KEY, at INTEGER NOT NULL)");
    this.sql.exec("CREATE INDEX IF NOT EXISTS usage_writes_at ON usage_writes (at)");
  }

  private row(): KeyRow | null {
    if (!this.hasTables) return null;
    const rows = this.sql.exec<KeyRow>("SELECT * FROM api_key LIMIT 1").toArray();
    return rows[0] ?? null;
  }

  /** Create this key; `null` when a key with this id already exists (ids are random, so a clash is a caller bug). */
  async create(input: CreateKeyInput): Promise<ApiKeyInfo | null> {
    if (this.row()) return null;
    if (!this.hasTables) this.createTables();
    this.sql.exec(
      "INSERT INTO api_key (id, name, hash, rate_limit, created_at, revoked_at, tenant) VALUES (?, ?, ?, ?, ?, NULL, ?)",
      input.id,
      input.name,
      input.hash,
      input.rateLimitPerMinute,
      input.now,
      input.tenant ?? DEFAULT_TENANT,
    );
    return toInfo(this.row()!);
  }

  /**
   * Create the local bootstrap key if it is absent (only called for `FEDGE_DEV_API_KEY` when `FEDGE_ENV` is
   * `local`); a different existing hash is replaced, so rotating `.dev.vars` keeps working.
   */
  async ensure(input: CreateKeyInput): Promise<void> {
    const row = this.row();
    if (!row) {
      await this.create(input);
    } else if (!hashesEqual(row.hash, input.hash)) {
      this.sql.exec("UPDATE api_key SET hash = ? WHERE id = ?", input.hash, row.id);
    }
  }

  /** Check the key hash, its revocation and (when `rateLimit`) take one token from its bucket. */
  async authenticate(input: { hash: string; rateLimit: boolean }): Promise<AuthVerdict> {
    const v = this.decide({ ...input, maxTokens: 1, leaseMs: 0, giveBack: 0 });
    switch (v.status) {
      case "ok":
        return { status: "ok", key: v.key, remaining: v.remaining };
      case "rate_limited":
        return { status: "rate_limited", key: v.key, retryAfterSeconds: v.retryAfterSeconds };
      case "unknown":
        return { status: "unknown" };
      default:
        return v;
    }
  }

  /**
   * `authenticate` for an isolate-local cache: the same checks in the same call, but an admitted request also
   * leases up to `leaseTokens(limit, leaseMs, maxTokens)` tokens (debited here now, spent by the caller later), and
   * the caller's unspent tokens of its previous lease come back first.
   */
  async lease(input: LeaseInput): Promise<LeaseVerdict> {
    return this.decide(input);
  }

  private decide(input: LeaseInput): LeaseVerdict {
    const row = this.row();
    if (!row) return { status: "unknown" };
    if (!hashesEqual(row.hash, input.hash)) return { status: "unknown", storedHash: row.hash };
    const key = toInfo(row);
    if (row.revoked_at !== null) return { status: "revoked", key };
    if (!input.rateLimit) return { status: "ok", key, granted: 0, remaining: row.rate_limit };
    const prev = this.sql
      .exec<{ tokens: number; updated_at: number }>("SELECT tokens, updated_at FROM bucket WHERE one = 1")
      .toArray()[0];
    let state: BucketState | null = prev ? { tokens: prev.tokens, updatedAt: prev.updated_at } : null;
    const giveBack = Math.floor(input.giveBack);
    // The ledger's own clock: an isolate whose clock runs ahead cannot mint tokens (and rate-limit.ts never lets
    // this clock step back and refill an interval twice).
    const now = Date.now();
    if (giveBack > 0) state = returnTokens(state, now, row.rate_limit, giveBack);
    const want = leaseTokens(row.rate_limit, input.leaseMs, input.maxTokens);
    const taken = takeTokens(state, now, row.rate_limit, want);
    this.sql.exec(
      "INSERT INTO bucket (one, tokens, updated_at) VALUES (1, ?, ?) ON CONFLICT(one) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at",
      taken.state.tokens,
      taken.state.updatedAt,
    );
    if (!taken.allowed) {
      return {
        status: "rate_limited",
        key,
        retryAfterMs: taken.retryAfterMs,
        retryAfterSeconds: taken.retryAfterSeconds,
      };
    }
    return { status: "ok", key, granted: taken.granted, remaining: taken.remaining };
  }

  /** Whether the key exists and is active (read-only: no token is taken). */
  async status(): Promise<"active" | "revoked" | "unknown"> {
    const row = this.row();
    if (!row) return "unknown";
    return row.revoked_at === null ? "active" : "revoked";
  }

  /** Revoke the key; `null` when it does not exist. Idempotent: a second revoke keeps the first time. */
  async revoke(now: number): Promise<ApiKeyInfo | null> {
    const row = this.row();
    if (!row) return null;
    if (row.revoked_at === null) this.sql.exec("UPDATE api_key SET revoked_at = ? WHERE id = ?", now, row.id);
    return toInfo(this.row()!);
  }

  /**
   * Add metered usage to a UTC day. A write with a `writeId` this ledger applied in the last two days is a retry of
   * one whose answer was lost: it adds nothing.
   */
  async record(input: { day: string; calls: number; inputElements: number; writeId?: string }): Promise<void> {
    if (!this.row()) return;
    const now = Date.now();
    this.ctx.storage.transactionSync(() => {
      if (input.writeId !== undefined) {
        this.sql.exec("DELETE FROM usage_writes WHERE at < ?", now - WRITE_LOG_MS);
        const fresh = this.sql.exec("INSERT OR IGNORE INTO usage_writes (id, at) VALUES (?, ?)", input.writeId, now);
        if (fresh.rowsWritten === 0) return;
      }
      this.sql.exec(
        "INSERT INTO usage (day, calls, input_elements) VALUES (?, ?, ?) ON CONFLICT(day) DO UPDATE SET calls = calls + excluded.calls, input_elements = input_elements + excluded.input_elements",
        input.day,
        input.calls,
        input.inputElements,
      );
    });
  }

  /** The key and its usage per UTC day within `[from, to]` (inclusive); `null` when the key does not exist. */
  async usage(range: { from?: string | undefined; to?: string | undefined } = {}): Promise<UsageReport | null> {
    const row = this.row();
    if (!row) return null;
    const days = this.sql
      .exec<{ day: string; calls: number; input_elements: number }>(
        "SELECT day, calls, input_elements FROM usage WHERE day >= ? AND day <= ? ORDER BY day",
        range.from ?? "0000-00-00",
        range.to ?? "9999-99-99",
      )
      .toArray()
      .map((d): UsageDay => ({ day: d.day, calls: d.calls, input_elements: d.input_elements }));
    const total = days.reduce(
      (t, d) => ({ calls: t.calls + d.calls, input_elements: t.input_elements + d.input_elements }),
      { calls: 0, input_elements: 0 },
    );
    return { key: toInfo(row), days, total };
  }
}
