/**
 * @module
 * `Checkins` owns the `checkins` table: per round and device, the Poisson coin flipped at the device's first check-in,
 * its single-use nonce (selected devices only), and the device's public key and API key at that time (so an upload is
 * verified here, without a read of the device's own Durable Object). Beside it, `key_selections` counts the devices of
 * each API key the coin selected in a round (the per-key cap on selections).
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

  /** When `deviceId` first checked in, and its coin, per round it checked in for here. */
  timesOf(deviceId: string): { round_seq: number; at: number; selected: number }[] {
    return this.host.sql
      .exec<{ round_seq: number; at: number; selected: number }>(
        "SELECT round_seq, at, selected FROM checkins WHERE device_id = ? ORDER BY round_seq",
        deviceId,
      )
      .toArray();
  }

  /**
   * Deletes `deviceId`'s check-ins of rounds that stopped collecting and charged nothing (no charge on this object's
   * ledger, no charge a shard was handed); a charged round's check-in is the device's privacy history and stays.
   */
  forgetUncharged(deviceId: string): void {
    this.host.sql.exec(
      `DELETE FROM checkins WHERE device_id = ?
         AND round_seq IN (SELECT seq FROM rounds WHERE state NOT IN ('open', 'collecting'))
         AND round_seq NOT IN (SELECT round_seq FROM privacy_charges)
         AND round_seq NOT IN (SELECT round_seq FROM shard_terms)`,
      deviceId,
    );
  }

  /** How many devices of API key `apiKeyId` the coin selected in round `seq`. */
  selectedFor(seq: number, apiKeyId: string): number {
    return (
      this.host.sql
        .exec<{ selected: number }>(
          "SELECT selected FROM key_selections WHERE round_seq = ? AND api_key_id = ?",
          seq,
          apiKeyId,
        )
        .toArray()[0]?.selected ?? 0
    );
  }

  /** Records a device's first check-in of round `seq` (inside the caller's transaction, with the round's counters). */
  record(seq: number, deviceId: string, row: CheckinRow, now: number): void {
    if (row.selected === 1 && row.api_key_id !== null) {
      this.host.sql.exec(
        `INSERT INTO key_selections (round_seq, api_key_id, selected) VALUES (?, ?, 1)
         ON CONFLICT(round_seq, api_key_id) DO UPDATE SET selected = selected + 1`,
        seq,
        row.api_key_id,
      );
    }
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
