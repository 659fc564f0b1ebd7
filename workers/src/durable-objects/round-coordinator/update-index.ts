/**
 * @module
 * `UpdateIndex` owns the `updates` table: one row per accepted update, keyed by (round, device), numbered in
 * acceptance order (`n`, the page cursor), with the key it was verified under, its name (the hex SHA-256 of its signed
 * bytes, the digest its signature covers), size, and where its payload
 * is stored (`storage_key`, in the round's UpdateStore shard). The payloads themselves are never here.
 */
import type { CoordinatorHost } from "./host.ts";

export type UpdateRow = {
  n: number;
  device_id: string;
  public_key: string;
  sha256: string;
  byte_length: number;
  storage_key: string;
  received_at: number;
  /**
   * What `sha256` hashes: the signed digest (every update accepted now), or the whole body (accepted before updates
   * were named by their signed digest; `migrations.ts`).
   */
  named_by: "signed_digest" | "body";
};

export class UpdateIndex {
  private readonly host: Pick<CoordinatorHost, "sql">;

  constructor(host: Pick<CoordinatorHost, "sql">) {
    this.host = host;
  }

  /** The device's accepted update in round `seq`, or null. */
  get(seq: number, deviceId: string): UpdateRow | null {
    return (
      this.host.sql
        .exec<UpdateRow>("SELECT * FROM updates WHERE round_seq = ? AND device_id = ?", seq, deviceId)
        .toArray()[0] ?? null
    );
  }

  /** Up to `limit` updates of round `seq` after cursor `after`, in acceptance order; `more` when others follow. */
  page(seq: number, after: number, limit: number): { rows: UpdateRow[]; more: boolean } {
    const rows = this.host.sql
      .exec<UpdateRow>("SELECT * FROM updates WHERE round_seq = ? AND n > ? ORDER BY n LIMIT ?", seq, after, limit + 1)
      .toArray();
    return { rows: rows.slice(0, limit), more: rows.length > limit };
  }

  /** Records an accepted update of round `seq` (inside the caller's transaction, with the round's counter). */
  insert(seq: number, row: UpdateRow): void {
    this.host.sql.exec(
      `INSERT INTO updates (round_seq, device_id, n, public_key, sha256, byte_length, storage_key, received_at, named_by)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      seq,
      row.device_id,
      row.n,
      row.public_key,
      row.sha256,
      row.byte_length,
      row.storage_key,
      row.received_at,
      row.named_by,
    );
  }

  /** Where round `seq`'s payloads are stored. */
  storageKeys(seq: number): string[] {
    return this.host.sql
      .exec<{ storage_key: string }>("SELECT storage_key FROM updates WHERE round_seq = ?", seq)
      .toArray()
      .map((u) => u.storage_key);
  }
}
