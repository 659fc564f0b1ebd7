/**
 * @module
 * DeviceRegistry: device identity, strongly consistent so that a revocation takes effect on the very next check-in or upload.
 *
 * One class, two kinds of instance (SQLite-backed, single writer each):
 * - `device:<device_id>` holds one device: its Ed25519 public key, the API key that registered it, its revocation, and the
 *   populations it checked in to. Every check-in reads it (recording the population first), so devices spread over as
 *   many instances as there are devices. Uploads do not read it: each population's RoundCoordinator holds the key from
 *   the check-in, and a revocation is pushed to every population recorded here, and the device's quota slot released
 *   in its key's `owner:` instance, from outboxes written with the revocation and retried by the alarm until each has
 *   answered (so a revocation never half-happens). Recording the population before the coordinator learns the key closes the race
 *   with a concurrent revocation: whichever comes second sees the other.
 * - `owner:<api_key_id>` holds the set of active devices of one API key and its device quota, so registration cannot
 *   overshoot the quota however many requests race.
 * Methods return plain data (`Result`), never throw domain errors across RPC; routes turn failures into `FedgeError`s.
 */
import { DurableObject } from "cloudflare:workers";
import { checkinSigningBytes, devicePrivacySigningBytes, fromBase64Url } from "@fedge/protocol";
import type { Bindings } from "../env.ts";
import { verifyEd25519 } from "../training/ed25519.ts";

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

/** Populations one device may join (a revocation is pushed to each of them). */
export const MAX_POPULATIONS_PER_DEVICE = 256;
/** How soon an undelivered revocation is pushed again. */
export const REVOCATION_RETRY_MS = 5_000;

export interface CheckinClaim {
  model: string;
  /** The API key the check-in came with: a device of another key is "not found". */
  apiKeyId: string;
  timestamp: string;
  /** base64url Ed25519 signature over `checkinSigningBytes(model, device_id, timestamp)`. */
  signature: string;
}

export type CheckinDeviceResult =
  | { ok: true; device: DeviceRecord }
  | { ok: false; code: "device_not_found" | "bad_signature" | "device_revoked" | "too_many_populations" };

/** A revocation as the device's registry holds it: the device, and the populations the push has not reached yet. */
export interface RevocationState {
  device: DeviceRecord;
  /**
   * Populations whose coordinator has not acknowledged the revocation yet (pushed again every few seconds): until it is
   * empty a check-in an isolate answers from what it remembers (verified-devices.ts) may still reach one of them.
   */
  unreached: string[];
}

export type DeleteDeviceResult =
  | { ok: true }
  | { ok: false; code: "device_not_found" }
  | { ok: false; code: "revocation_pending"; unreached: string[] };

export type PrivacyReaderResult =
  { ok: true; device: DeviceRecord; populations: string[] } | { ok: false; code: "device_not_found" | "bad_signature" };

export function deviceStub(env: Bindings, deviceId: string) {
  return env.DEVICES.getByName(`device:${deviceId}`);
}

export function ownerStub(env: Bindings, apiKeyId: string) {
  return env.DEVICES.getByName(`owner:${apiKeyId}`);
}

/** Every table `createTables` makes (a stored object missing one was created before it existed). */
const REGISTRY_TABLES = [
  "device",
  "slot",
  "owner_key",
  "quota",
  "population",
  "revocation_outbox",
  "slot_outbox",
] as const;

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
  /**
   * Whether the tables exist. They are created by the first legitimate write (a registration's `reserveSlot` and
   * `createDevice`, an admin's quota), so an object addressed by an unknown device id or key id keeps no storage.
   */
  private hasTables: boolean;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    const present = new Set(
      this.sql
        .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
        .toArray()
        .map((r) => r.name),
    );
    this.hasTables = present.has("device");
    // Tables added since an object was created. Only when one is missing: every check-in of a device whose object went
    // idle constructs it again, and seven no-op CREATE statements were a measurable part of that (docs/SCALE.md).
    if (this.hasTables && REGISTRY_TABLES.some((t) => !present.has(t))) this.createTables(true);
  }

  private createTables(upgrade = false): void {
    if (this.hasTables && !upgrade) return;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS device (
      device_id TEXT PRIMARY KEY, public_key TEXT NOT NULL, api_key_id TEXT NOT NULL, platform TEXT,
      created_at INTEGER NOT NULL, revoked_at INTEGER)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS slot (device_id TEXT PRIMARY KEY, created_at INTEGER NOT NULL)`);
    // Public key → device id, so a registration retried after a lost response gets the same device, not a second one.
    this.sql.exec(`CREATE TABLE IF NOT EXISTS owner_key (public_key TEXT PRIMARY KEY, device_id TEXT NOT NULL)`);
    this.sql.exec(
      `CREATE TABLE IF NOT EXISTS quota (id INTEGER PRIMARY KEY CHECK (id = 1), max_devices INTEGER NOT NULL)`,
    );
    this.sql.exec(`CREATE TABLE IF NOT EXISTS population (model TEXT PRIMARY KEY)`);
    // Populations a revocation has not reached yet.
    this.sql.exec(`CREATE TABLE IF NOT EXISTS revocation_outbox (model TEXT PRIMARY KEY, at INTEGER NOT NULL)`);
    // The quota slot a revocation has not released yet (in the owner: instance of the device's API key).
    this.sql.exec(`CREATE TABLE IF NOT EXISTS slot_outbox (api_key_id TEXT PRIMARY KEY)`);
    this.hasTables = true;
  }

  // ── device:<id> ────────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * Stores this instance's device. Idempotent: the same device again (a retry after a lost answer) is `true`; `false`
   * when it holds another one (ids are random, so that means a collision).
   */
  async createDevice(record: Omit<DeviceRecord, "revoked_at">): Promise<boolean> {
    this.createTables();
    const existing = this.sql
      .exec<{ device_id: string; public_key: string }>("SELECT device_id, public_key FROM device")
      .toArray()[0];
    if (existing) return existing.device_id === record.device_id && existing.public_key === record.public_key;
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
    if (!this.hasTables) return null;
    const row = this.sql.exec<DeviceRow>("SELECT * FROM device LIMIT 1").toArray()[0];
    return row ? { ...row } : null;
  }

  /**
   * Checks a check-in to `claim.model` (device of this API key, signature, not revoked, in that order) and records the
   * population, so that a revocation from now on is pushed there too. Only a verified check-in records anything, so
   * nobody but the device itself can use up its populations.
   */
  async checkinDevice(claim: CheckinClaim): Promise<CheckinDeviceResult> {
    const device = await this.getDevice();
    if (!device || device.api_key_id !== claim.apiKeyId) return { ok: false, code: "device_not_found" };
    const signed = checkinSigningBytes(claim.model, device.device_id, claim.timestamp);
    const publicKey = fromBase64Url(device.public_key);
    if (!(await verifyEd25519(publicKey, fromBase64Url(claim.signature), signed, device.public_key))) {
      return { ok: false, code: "bad_signature" };
    }
    if (device.revoked_at !== null) return { ok: false, code: "device_revoked" };
    const known = this.sql.exec("SELECT 1 FROM population WHERE model = ?", claim.model).toArray().length > 0;
    if (!known) {
      const n = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM population").one().n;
      if (n >= MAX_POPULATIONS_PER_DEVICE) return { ok: false, code: "too_many_populations" };
      this.sql.exec("INSERT INTO population (model) VALUES (?)", claim.model);
    }
    return { ok: true, device };
  }

  /**
   * Checks a signed read of the device's own privacy record (device of this API key, signature over
   * `devicePrivacySigningBytes`; a revoked device may still read it) and answers the populations it checked in to.
   */
  async privacyReader(claim: Omit<CheckinClaim, "model">): Promise<PrivacyReaderResult> {
    const device = await this.getDevice();
    if (!device || device.api_key_id !== claim.apiKeyId) return { ok: false, code: "device_not_found" };
    let signed: Uint8Array;
    try {
      signed = devicePrivacySigningBytes(device.device_id, claim.timestamp);
    } catch {
      return { ok: false, code: "bad_signature" };
    }
    const publicKey = fromBase64Url(device.public_key);
    if (!(await verifyEd25519(publicKey, fromBase64Url(claim.signature), signed, device.public_key))) {
      return { ok: false, code: "bad_signature" };
    }
    const populations = this.sql
      .exec<{ model: string }>("SELECT model FROM population ORDER BY model")
      .toArray()
      .map((r) => r.model);
    return { ok: true, device, populations };
  }

  /**
   * Revokes this device (idempotent: keeps the first revocation time), pushes the revocation to every population it
   * checked in to and releases its quota slot; `null` when there is no device. The revocation and its outbox are one
   * transaction; a push or release that fails stays in the outbox for the alarm to retry, and the populations it has
   * not reached are answered (`unreached`), so the caller does not report a revocation in force that is not yet.
   */
  async revokeDevice(now: number): Promise<RevocationState | null> {
    const before = await this.getDevice();
    if (!before) return null;
    if (before.revoked_at === null) {
      this.ctx.storage.transactionSync(() => {
        this.sql.exec("UPDATE device SET revoked_at = ? WHERE revoked_at IS NULL", now);
        this.sql.exec("INSERT OR IGNORE INTO revocation_outbox (model, at) SELECT model, ? FROM population", now);
        this.sql.exec("INSERT OR IGNORE INTO slot_outbox (api_key_id) VALUES (?)", before.api_key_id);
      });
    }
    await this.deliverRevocations();
    return { device: (await this.getDevice())!, unreached: this.unreachedPopulations() };
  }

  /**
   * Deletes this device's identity (an admin's `DELETE /v1/admin/devices/:id`, e.g. a failed audit's canaries). It is
   * revoked first and its revocation must have reached every population (`revocation_pending` until then: nothing is
   * deleted, repeat the call), because an isolate may still remember the device (verified-devices.ts) and only the
   * coordinators' revocation refuses those check-ins once the record here is gone. Then each population drops the
   * device's check-ins that no privacy charge depends on (`RoundCoordinator.forgetDevice`; the ledger's record of
   * charged rounds stays), the quota slot is released, and this instance's storage is deleted. The public key stays
   * known, and refused, in its API key's `owner:` instance, so it never comes back under a new id. A failure half way
   * throws and deletes nothing here; repeating the call goes on from there.
   */
  async deleteDevice(now: number): Promise<DeleteDeviceResult> {
    const revoked = await this.revokeDevice(now);
    if (!revoked) return { ok: false, code: "device_not_found" };
    if (revoked.unreached.length > 0) return { ok: false, code: "revocation_pending", unreached: revoked.unreached };
    const { device_id, api_key_id } = revoked.device;
    const populations = this.sql.exec<{ model: string }>("SELECT model FROM population").toArray();
    await Promise.all(populations.map(({ model }) => this.env.ROUNDS.getByName(model).forgetDevice(device_id)));
    // Released by the revocation unless that failed; releasing twice is a no-op.
    await this.env.DEVICES.getByName(`owner:${api_key_id}`).releaseSlot(device_id);
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.hasTables = false;
    return { ok: true };
  }

  /**
   * Populations the revocation has not reached yet (empty once delivered everywhere); `owner:<key id>` while the
   * device's quota slot is not released yet.
   */
  async pendingRevocations(): Promise<string[]> {
    if (!this.hasTables) return [];
    const models = this.unreachedPopulations();
    const slots = this.sql
      .exec<{ api_key_id: string }>("SELECT api_key_id FROM slot_outbox")
      .toArray()
      .map((r) => `owner:${r.api_key_id}`);
    return [...models, ...slots];
  }

  override async alarm(): Promise<void> {
    await this.deliverRevocations();
  }

  /** Populations the revocation has not reached yet. */
  private unreachedPopulations(): string[] {
    return this.sql
      .exec<{ model: string }>("SELECT model FROM revocation_outbox ORDER BY model")
      .toArray()
      .map((r) => r.model);
  }

  /** Whether the revocation still has to reach a population or release the quota slot. */
  private outboxEmpty(): boolean {
    return (
      this.sql.exec("SELECT 1 FROM revocation_outbox").toArray().length === 0 &&
      this.sql.exec("SELECT 1 FROM slot_outbox").toArray().length === 0
    );
  }

  private async deliverRevocations(): Promise<void> {
    if (!this.hasTables) return;
    const device = this.sql.exec<DeviceRow>("SELECT * FROM device LIMIT 1").toArray()[0];
    const pending = this.sql.exec<{ model: string; at: number }>("SELECT model, at FROM revocation_outbox").toArray();
    const slots = this.sql.exec<{ api_key_id: string }>("SELECT api_key_id FROM slot_outbox").toArray();
    if (!device || (pending.length === 0 && slots.length === 0)) return;
    // Armed first, so a crash mid-delivery is retried too.
    await this.ctx.storage.setAlarm(Date.now() + REVOCATION_RETRY_MS);
    await Promise.all([
      ...pending.map(async ({ model, at }) => {
        try {
          await this.env.ROUNDS.getByName(model).revokeDevice(device.device_id, at);
          this.sql.exec("DELETE FROM revocation_outbox WHERE model = ?", model);
        } catch (e) {
          console.error(`revocation of ${device.device_id} not yet delivered to ${model}`, e);
        }
      }),
      ...slots.map(async ({ api_key_id }) => {
        try {
          await this.env.DEVICES.getByName(`owner:${api_key_id}`).releaseSlot(device.device_id);
          this.sql.exec("DELETE FROM slot_outbox WHERE api_key_id = ?", api_key_id);
        } catch (e) {
          console.error(`quota slot of revoked device ${device.device_id} not yet released`, e);
        }
      }),
    ]);
    if (this.outboxEmpty()) await this.ctx.storage.deleteAlarm();
  }

  // ── owner:<api key id> ─────────────────────────────────────────────────────────────────────────────────────────

  /**
   * Takes one of the key's device slots for `deviceId` unless the key already has `defaultMax` (or its own quota).
   * A public key registered before answers with its existing device (`existing`) while that device is active, and
   * with `device_revoked` once an admin revoked it: a revoked key never comes back under a new id.
   */
  async reserveSlot(deviceId: string, publicKey: string, defaultMax: number, now: number): Promise<SlotResult> {
    this.createTables();
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
    if (!this.hasTables) return;
    this.sql.exec("DELETE FROM slot WHERE device_id = ?", deviceId);
  }

  /** Undoes a reservation whose device was never created, forgetting its public key too. */
  async cancelReservation(deviceId: string): Promise<void> {
    if (!this.hasTables) return;
    this.sql.exec("DELETE FROM slot WHERE device_id = ?", deviceId);
    this.sql.exec("DELETE FROM owner_key WHERE device_id = ?", deviceId);
  }

  async setQuota(max: number): Promise<{ max_devices: number; active_devices: number }> {
    this.createTables();
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
    if (!this.hasTables) return defaultMax;
    const row = this.sql.exec<{ max_devices: number }>("SELECT max_devices FROM quota WHERE id = 1").toArray()[0];
    return row ? row.max_devices : defaultMax;
  }

  private activeCount(): number {
    if (!this.hasTables) return 0;
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM slot").one().n;
  }
}
