/**
 * @module
 * AdminNonces: the single-use memory of the aggregator's signed admin requests, one SQLite-backed instance per
 * aggregator key (`key:<public key>`), so a captured request cannot be replayed inside its freshness window.
 *
 * Only a request whose signature already verified under a trusted key reaches it (middleware/aggregator-signature.ts),
 * so nobody else can make it store anything, and it keeps each nonce only until the request's timestamp has left the
 * window (the edge refuses it as stale from then on). The table is created with the first nonce.
 */
import { DurableObject } from "cloudflare:workers";
import type { Bindings } from "../env.ts";

export function adminNoncesStub(env: Bindings, publicKey: string) {
  return env.ADMIN_NONCES.getByName(`key:${publicKey}`);
}

export class AdminNonces extends DurableObject<Bindings> {
  private readonly sql: SqlStorage;
  private hasTable: boolean;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.hasTable =
      this.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'nonces'").toArray().length > 0;
  }

  /**
   * Records `nonce` as used until `expiresAt` (epoch ms); false when it was used before (a replay). Expired nonces are
   * dropped first, by this object's own clock.
   */
  async claim(nonce: string, expiresAt: number): Promise<boolean> {
    if (!this.hasTable) {
      this.sql.exec("CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)");
      this.hasTable = true;
    }
    this.sql.exec("DELETE FROM nonces WHERE expires_at <= ?", Date.now());
    const inserted = this.sql.exec("INSERT OR IGNORE INTO nonces (nonce, expires_at) VALUES (?, ?)", nonce, expiresAt);
    return inserted.rowsWritten > 0;
  }

  /** Whether `nonce` is remembered (claimed and not yet expired): the dashboard's ended sessions (dashboard/session.ts). */
  async seen(nonce: string, now: number): Promise<boolean> {
    if (!this.hasTable) return false;
    return this.sql.exec("SELECT 1 FROM nonces WHERE nonce = ? AND expires_at > ?", nonce, now).toArray().length > 0;
  }

  /** How many nonces are remembered (tests). */
  async size(): Promise<number> {
    if (!this.hasTable) return 0;
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM nonces").one().n;
  }
}
