/**
 * @module
 * `Sharding` owns the `sharding` table (one row: the population's shard count S, and the expected size it was derived
 * from) and, on a shard, `shard_terms` (what each DP round charged on the population's ledger, copied when the round
 * opens, so the shard signs its devices' receipts from the same numbers without charging anything itself).
 *
 * On the population's object the row is the S its next round opens with (no row: 1, the single coordinator). On a
 * shard it is the S the shard last heard of, so a check-in routed with an S that is out of date is told the new one.
 */
import type { ChargeRow } from "./budget.ts";
import type { CoordinatorHost } from "./host.ts";

export type ShardingRow = { shards: number; expected_devices: number | null; set_at: number };

/** What a DP round charged, as a shard keeps it for the receipts it signs. */
export type ShardTerms = { charge: ChargeRow; delta: number };

export class Sharding {
  private readonly host: Pick<CoordinatorHost, "sql">;

  constructor(host: Pick<CoordinatorHost, "sql">) {
    this.host = host;
  }

  /** The recorded S, or null while the population has the default single coordinator. */
  current(): ShardingRow | null {
    return (
      this.host.sql
        .exec<ShardingRow>("SELECT shards, expected_devices, set_at FROM sharding WHERE id = 1")
        .toArray()[0] ?? null
    );
  }

  /** S, 1 when none was recorded. */
  shards(): number {
    return this.current()?.shards ?? 1;
  }

  /** Records S (a shard keeps the largest S it heard of: S never shrinks, and messages may arrive out of order). */
  set(row: ShardingRow): void {
    this.host.sql.exec(
      `INSERT INTO sharding (id, shards, expected_devices, set_at) VALUES (1, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET shards = MAX(shards, excluded.shards), expected_devices = excluded.expected_devices,
         set_at = excluded.set_at`,
      row.shards,
      row.expected_devices,
      row.set_at,
    );
  }

  terms(seq: number): ShardTerms | null {
    const row = this.host.sql
      .exec<{ charge: string; delta: number }>("SELECT charge, delta FROM shard_terms WHERE round_seq = ?", seq)
      .toArray()[0];
    return row ? { charge: JSON.parse(row.charge) as ChargeRow, delta: row.delta } : null;
  }

  setTerms(seq: number, terms: ShardTerms): void {
    this.host.sql.exec(
      "INSERT OR IGNORE INTO shard_terms (round_seq, charge, delta) VALUES (?, ?, ?)",
      seq,
      JSON.stringify(terms.charge),
      terms.delta,
    );
  }
}
