/**
 * @module
 * DeviceRegistry: device identity, strongly consistent so that a revocation takes effect on the very next check-in or upload.
 *
 * One class, two kinds of instance (SQLite-backed, single writer each):
 * - `device:<device_id>` holds one device: its Ed25519 public key, the API key that registered it, and its revocation.
 *   Every check-in and upload reads it, so devices spread over as many instances as there are devices.
 * - `owner:<api_key_id>` holds the set of active devices of one API key and its device quota, so registration cannot
 *   overshoot the quota however many requests race.
 * Methods return plain data (`Result`), never throw domain errors across RPC; routes turn failures into `FedgeError`s.
 */
import { DurableObject } from "cloudflare:workers";
import type { Bindings } from "../env.ts";

export interface DeviceRecord {
  device_id: string;
  /** base64url Ed25519 public key. */
  public_key: string;
  api_key_id: string;
  platform: string | null;
  created_at: number;
  revoked_at: number | null;
}

export type SlotResult =
  | {
      ok: true;
      active: number;
      /** set when this public key already has an active device under the key */ existing?: string;
    }
  | { ok: false; code: "quota_exceeded"; active: number; max: number }
  | { ok: false; code: "device_revoked"; deviceId: string };

export function deviceStub(env: Bindings, deviceId: string) {
  return env.DEVICES.getByName(`device:${deviceId}`);
}

export function ownerStub(env: Bindings, apiKeyId: string) {
  return env.DEVICES.getByName(`owner:${apiKeyId}`);
}

type DeviceRow = {
  device_id: string;
  public_key: string;
  api_key_id: string;
  platform: string | null;
  created_at: number;
  revoked_at: number | null;
};

export class DeviceRegistry extends DurableObject<Bindings> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    void ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(`CREATE TABLE IF NOT EXISTS device (
        device_id TEXT PRIMARY KEY, public_key TEXT NOT NULL, api_key_id TEXT NOT NULL, platform TEXT,
        created_at INTEGER NOT NULL, revoked_at INTEGER)`);
      this.sql.exec(`CREATE TABLE IF NOT EXISTS slot (device_id TEXT PRIMARY KEY, created_at INTEGER NOT NULL)`);
      // Public key → device id, so a registration retried after a lost response gets the same device, not a second one.
      this.sql.exec(`CREATE TABLE IF NOT EXISTS owner_key (public_key TEXT PRIMARY KEY, device_id TEXT NOT NULL)`);
      this.sql.exec(
        `CREATE TABLE IF NOT EXISTS quota (id INTEGER PRIMARY KEY CHECK (id = 1), max_devices INTEGER NOT NULL)`,
      );
    });
  }

  // ── device:<id> ────────────────────────────────────────────────────────────────────────────────────────────────

  /** Stores this instance's device; `false` when it already holds one (ids are random, so that means a collision). */
  async createDevice(record: Omit<DeviceRecord, "revoked_at">): Promise<boolean> {
    const existing = this.sql.exec("SELECT 1 FROM device").toArray();
    if (existing.length > 0) return false;
    this.sql.exec(
      "INSERT INTO device (device_id, public_key, api_key_id, platform, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, NULL)",
      record.device_id,
      record.public_key,
      record.api_key_id,
      record.platform,
      record.created_at,
    );
    return true;
  }

  async getDevice(): Promise<DeviceRecord | null> {
    const row = this.sql.exec<DeviceRow>("SELECT * FROM device LIMIT 1").toArray()[0];
    return row ? { ...row } : null;
  }

  /** Revokes this device (idempotent: keeps the first revocation time); `null` when there is no device. */
  async revokeDevice(now: number): Promise<DeviceRecord | null> {
    this.sql.exec("UPDATE device SET revoked_at = ? WHERE revoked_at IS NULL", now);
    return this.getDevice();
  }

  // ── owner:<api key id> ─────────────────────────────────────────────────────────────────────────────────────────

  /**
   * Takes one of the key's device slots for `deviceId` unless the key already has `defaultMax` (or its own quota).
   * A public key registered before answers with its existing device (`existing`) while that device is active, and
   * with `device_revoked` once an admin revoked it: a revoked key never comes back under a new id.
   */
  async reserveSlot(deviceId: string, publicKey: string, defaultMax: number, now: number): Promise<SlotResult> {
    const known = this.sql
      .exec<{ device_id: string }>("SELECT device_id FROM owner_key WHERE public_key = ?", publicKey)
      .toArray()[0];
    if (known) {
      const active = this.sql.exec("SELECT 1 FROM slot WHERE device_id = ?", known.device_id).toArray().length > 0;
      return active
        ? { ok: true, active: this.activeCount(), existing: known.device_id }
        : { ok: false, code: "device_revoked", deviceId: known.device_id };
    }
    const max = this.maxDevices(defaultMax);
    const active = this.activeCount();
    if (active >= max) return { ok: false, code: "quota_exceeded", active, max };
    this.sql.exec("INSERT OR IGNORE INTO slot (device_id, created_at) VALUES (?, ?)", deviceId, now);
    this.sql.exec("INSERT INTO owner_key (public_key, device_id) VALUES (?, ?)", publicKey, deviceId);
    return { ok: true, active: this.activeCount() };
  }

  /** Frees the slot of a revoked device; the public key stays known (and refused). */
  async releaseSlot(deviceId: string): Promise<void> {
    this.sql.exec("DELETE FROM slot WHERE device_id = ?", deviceId);
  }

  /** Undoes a reservation whose device was never created, forgetting its public key too. */
  async cancelReservation(deviceId: string): Promise<void> {
    this.sql.exec("DELETE FROM slot WHERE device_id = ?", deviceId);
    this.sql.exec("DELETE FROM owner_key WHERE device_id = ?", deviceId);
  }

  async setQuota(max: number): Promise<{ max_devices: number; active_devices: number }> {
    this.sql.exec(
      "INSERT INTO quota (id, max_devices) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET max_devices = ?",
      max,
      max,
    );
    return { max_devices: max, active_devices: this.activeCount() };
  }

  async getQuota(defaultMax: number): Promise<{ max_devices: number; active_devices: number }> {
    return { max_devices: this.maxDevices(defaultMax), active_devices: this.activeCount() };
  }

  private maxDevices(defaultMax: number): number {
    const row = this.sql.exec<{ max_devices: number }>("SELECT max_devices FROM quota WHERE id = 1").toArray()[0];
    return row ? row.max_devices : defaultMax;
  }

  private activeCount(): number {
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM slot").one().n;
  }
}
