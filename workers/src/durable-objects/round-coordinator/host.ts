/**
 * @module
 * What the RoundCoordinator's capabilities need from the Durable Object. Each capability owns one table (or, for
 * `PayloadRetention`, one duty) and takes only the slice of this interface it uses, so none of them can reach the
 * object's storage, alarm or bindings beyond it. The object keeps the RPC surface, the transactions that span tables,
 * and the single alarm: capabilities report when they next need it (`nextWake`) or ask for it now (`wake`).
 */
import type { Bindings } from "../../env.ts";

export interface CoordinatorHost {
  /** The object's SQLite database (`ctx.storage.sql`). */
  readonly sql: SqlStorage;
  /** The worker's bindings: the UpdateStore namespace, the UPDATES bucket, `FEDGE_UPDATE_RETENTION_DAYS`. */
  readonly env: Bindings;
  /** The clock for work the alarm does on its own (RPC methods are handed their `now` by the caller). */
  now(): number;
  /**
   * Sets the object's one alarm to `at`. Not awaited: the alarm write is durable together with the SQL writes around
   * it, as every storage write of one event is.
   */
  wake(at: number): void;
}
