/**
 * @module
 * `Revocations` owns the `revoked_devices` table: devices an admin revoked, pushed here by each device's DeviceRegistry
 * instance (for every population it checked in to), so check-ins and uploads are refused without asking it.
 */
import type { CoordinatorHost } from "./host.ts";

export class Revocations {
  private readonly host: Pick<CoordinatorHost, "sql">;
  /**
   * Whether the table holds any device; null until read. Rows are only ever added (through `add`, which sets it), so
   * while it is false no device is revoked here and every upload's commit and check-in skips the per-device read.
   */
  private any: boolean | null = null;

  constructor(host: Pick<CoordinatorHost, "sql">) {
    this.host = host;
  }

  has(deviceId: string): boolean {
    this.any ??= this.host.sql.exec("SELECT 1 FROM revoked_devices LIMIT 1").toArray().length > 0;
    if (!this.any) return false;
    return this.host.sql.exec("SELECT 1 FROM revoked_devices WHERE device_id = ?", deviceId).toArray().length > 0;
  }

  /** Every revoked device (handed to each shard when a round opens, so a device that moved is still refused). */
  all(): { device_id: string; at: number }[] {
    return this.host.sql.exec<{ device_id: string; at: number }>("SELECT device_id, at FROM revoked_devices").toArray();
  }

  /** Idempotent: the first revocation's time is kept. */
  add(deviceId: string, at: number): void {
    this.host.sql.exec("INSERT OR IGNORE INTO revoked_devices (device_id, at) VALUES (?, ?)", deviceId, at);
    // Set even if the caller's transaction rolls back: true only costs the per-device read.
    this.any = true;
  }
}
