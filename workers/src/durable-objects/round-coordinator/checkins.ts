/**
 * @module
 * `Checkins` owns the `checkins` table: per round and device, the Poisson coin flipped at the device's first check-in,
 * its single-use nonce (selected devices only), and the device's public key and API key at that time (so an upload is
 * verified here, without a read of the device's own Durable Object).
 */
import type { CoordinatorHost } from "./host.ts";

export type CheckinRow = {
  /** 1 when the coin selected the device. */
  selected: number;
  nonce: string | null;
  public_key: string | null;
  api_key_id: string | null;
};

/** A recorded check-in: the row and when the device first checked in (ms). */
export type RecordedCheckin = CheckinRow & { at: number };

export class Checkins {
  private readonly host: Pick<CoordinatorHost, "sql">;

  constructor(host: Pick<CoordinatorHost, "sql">) {
    this.host = host;
  }

  get(seq: number, deviceId: string): RecordedCheckin | null {
    return (
      this.host.sql
        .exec<RecordedCheckin>(
          "SELECT selected, nonce, public_key, api_key_id, at FROM checkins WHERE round_seq = ? AND device_id = ?",
          seq,
          deviceId,
        )
        .toArray()[0] ?? null
    );
  }

  /** Records a device's first check-in of round `seq` (inside the caller's transaction, with the round's counters). */
  record(seq: number, deviceId: string, row: CheckinRow, now: number): void {
    this.host.sql.exec(
      "INSERT INTO checkins (round_seq, device_id, selected, nonce, at, public_key, api_key_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
      seq,
      deviceId,
      row.selected,
      row.nonce,
      now,
      row.public_key,
      row.api_key_id,
    );
  }
}
