/**
 * @module
 * UpdateStore: where accepted update payloads lived before the coordinator stored them in its commit's own transaction
 * (`round-coordinator/payloads.ts`, one Durable Object call per accepted update instead of two). It is kept for rounds
 * opened before that (`rounds.update_store_payloads = 1`): their payloads are still read, sealed and purged here, and
 * the upload route no longer calls `put`. Once every such round's retention has run, the class can go with a
 * `deleted_classes` migration. One SQLite-backed Durable Object per (round, shard); a device's shard is a hash of its id.
 *
 * Why not R2 first: an upload is acknowledged once its bytes are durable, and a Durable Object's SQLite write is durable
 * when the call returns (and several times cheaper per update than an R2 put, which dominated ingestion). R2 still gets
 * every payload: `seal` writes a shard's pending payloads into one R2 segment object (`rounds/<round>/segments/…`) when the
 * round closes or the shard holds more than `SEAL_THRESHOLD_BYTES`, then drops the SQLite copies. `read` is
 * location-transparent (SQLite before sealing, an R2 range read after), so the aggregator never needs to know.
 *
 * A shard creates its tables on its first `put`, so the coordinator can ask all of a round's shards to seal or purge
 * (orphaned payloads included) without leaving storage behind in the shards that never held anything.
 *
 * Seals and purges run one at a time, whoever asks (the shard's own alarm, any coordinator of the round), and a purged
 * shard stores nothing more: an upload whose payload arrives after the purge (its commit is refused, the round being
 * closed) is answered `false`, so no payload outlives its round's purge in a shard that held any.
 *
 * Payloads are split into ≤ 1 MiB rows (SQLite rows in a Durable Object are capped at 2 MB; updates go up to 16 MiB).
 * `put` is idempotent per key, and keys name round, device and the update's signed digest (`updateDigestHex`, the hash
 * its signature covers), so a retried upload stores nothing twice.
 */
import { DurableObject } from "cloudflare:workers";
import type { Bindings } from "../env.ts";

/** Shards per round. */
export const UPDATE_STORE_SHARDS = 16;
/** A shard seals its pending payloads into R2 once they pass this many bytes, bounding its own storage. */
export const SEAL_THRESHOLD_BYTES = 64 * 1024 * 1024;
/** Largest segment object; a seal writes as many as it needs. */
const SEGMENT_MAX_BYTES = 32 * 1024 * 1024;
const PART_BYTES = 1024 * 1024;

/** Storage key of an accepted update: names its round, device and signed digest (hex). */
export function updateStorageKey(roundId: string, deviceId: string, sha256: string): string {
  return `rounds/${roundId}/${deviceId}/${sha256}`;
}

/** The shard of a device within a round (FNV-1a of the id; ids are random, so shards fill evenly). */
export function updateShard(deviceId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < deviceId.length; i++) {
    h ^= deviceId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % UPDATE_STORE_SHARDS;
}

/** Deletes R2 objects by key, at most 1,000 per call (R2's limit for one delete). */
export async function deleteObjects(bucket: R2Bucket, keys: string[]): Promise<void> {
  for (let i = 0; i < keys.length; i += 1000) await bucket.delete(keys.slice(i, i + 1000));
}

export function updateStoreStub(env: Bindings, roundId: string, shard: number) {
  return env.UPDATE_STORE.getByName(`round:${roundId}:shard:${shard}`);
}

/** The store instance holding `deviceId`'s update for `roundId`. */
export function updateStoreFor(env: Bindings, roundId: string, deviceId: string) {
  return updateStoreStub(env, roundId, updateShard(deviceId));
}

type EntryRow = {
  key: string;
  round_id: string;
  byte_length: number;
  parts: number;
  segment: string | null;
  segment_offset: number | null;
};

export class UpdateStore extends DurableObject<Bindings> {
  private readonly sql: SqlStorage;
  /** The last seal or purge queued: they run one at a time (see `exclusive`). */
  private tail: Promise<unknown> = Promise.resolve();
  /** Whether this shard ever stored anything (its tables exist). */
  private hasTables = false;
  /** Whether its payloads were purged (the `purged` row), kept in memory: every `put` asks. */
  private purged = false;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    // A shard that stored something has its tables; one created before the `purged` table gets it now.
    if (this.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'entries'").toArray().length > 0) {
      this.createTables();
    }
  }

  private createTables(): void {
    this.sql.exec(`CREATE TABLE IF NOT EXISTS entries (
      key TEXT PRIMARY KEY, round_id TEXT NOT NULL, byte_length INTEGER NOT NULL, parts INTEGER NOT NULL,
      segment TEXT, segment_offset INTEGER)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS parts (
      key TEXT NOT NULL, part INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (key, part))`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS segments (n INTEGER PRIMARY KEY, r2_key TEXT NOT NULL)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS purged (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL)`);
    this.purged = this.sql.exec("SELECT 1 FROM purged").toArray().length > 0;
    this.hasTables = true;
  }

  /**
   * Stores `bytes` under `key` (one transaction); a key already stored is left as it is. False, storing nothing, once
   * the shard's payloads were purged: an upload that reaches it that late belongs to a round long closed, and a
   * payload stored now would outlive the purge that already ran.
   */
  async put(roundId: string, key: string, bytes: Uint8Array): Promise<boolean> {
    if (!this.hasTables) this.createTables();
    if (this.purged) return false;
    if (this.entry(key)) return true;
    const parts = Math.max(1, Math.ceil(bytes.length / PART_BYTES));
    this.ctx.storage.transactionSync(() => {
      for (let p = 0; p < parts; p++) {
        this.sql.exec(
          "INSERT INTO parts (key, part, data) VALUES (?, ?, ?)",
          key,
          p,
          bytes.subarray(p * PART_BYTES, Math.min(bytes.length, (p + 1) * PART_BYTES)),
        );
      }
      this.sql.exec(
        "INSERT INTO entries (key, round_id, byte_length, parts) VALUES (?, ?, ?, ?)",
        key,
        roundId,
        bytes.length,
        parts,
      );
    });
    if (this.pendingBytes() >= SEAL_THRESHOLD_BYTES) await this.ctx.storage.setAlarm(Date.now());
    return true;
  }

  /** The bytes stored under `key`, wherever they are now; `null` when unknown. */
  async read(key: string): Promise<Uint8Array | null> {
    const e = this.entry(key);
    if (!e) {
      // Payloads accepted before the store existed were written to R2 one object per update, under the same key.
      const legacy = await this.env.UPDATES.get(key);
      return legacy ? new Uint8Array(await legacy.arrayBuffer()) : null;
    }
    if (e.segment === null) {
      const out = new Uint8Array(e.byte_length);
      let at = 0;
      for (const row of this.sql.exec<{ data: ArrayBuffer }>(
        "SELECT data FROM parts WHERE key = ? ORDER BY part",
        key,
      )) {
        const part = new Uint8Array(row.data);
        out.set(part, at);
        at += part.length;
      }
      return out;
    }
    const object = await this.env.UPDATES.get(e.segment, {
      range: { offset: e.segment_offset!, length: e.byte_length },
    });
    if (!object) throw new Error(`segment ${e.segment} is missing from R2`);
    return new Uint8Array(await object.arrayBuffer());
  }

  /** Forgets `key` (an upload that lost its commit race); its bytes go with it unless already sealed. */
  async remove(key: string): Promise<void> {
    if (!this.hasTables) return;
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("DELETE FROM parts WHERE key = ?", key);
      this.sql.exec("DELETE FROM entries WHERE key = ?", key);
    });
  }

  /**
   * Moves every pending payload into R2 segment objects, then drops their SQLite copies; returns how many it moved.
   * Each segment is written before the rows that point into it change, so a crash mid-seal only repeats work.
   */
  async seal(): Promise<number> {
    return this.exclusive(() => this.sealPending());
  }

  /**
   * Runs `step` after every seal and purge queued before it. They await R2, and other calls reach the object while
   * they do (the alarm, a coordinator's close, its retention): a purge running beside a seal would list the segments
   * before the seal wrote its own, then delete the seal's rows, leaving that segment in R2 with nothing pointing at it.
   */
  private exclusive<T>(step: () => Promise<T>): Promise<T> {
    const run = this.tail.catch(() => undefined).then(step);
    this.tail = run;
    return run;
  }

  private async sealPending(): Promise<number> {
    if (!this.hasTables) return 0;
    let moved = 0;
    for (;;) {
      const batch: EntryRow[] = [];
      let bytes = 0;
      for (const e of this.sql.exec<EntryRow>("SELECT * FROM entries WHERE segment IS NULL ORDER BY key")) {
        if (batch.length > 0 && bytes + e.byte_length > SEGMENT_MAX_BYTES) break;
        batch.push({ ...e });
        bytes += e.byte_length;
      }
      if (batch.length === 0) return moved;
      const body = new Uint8Array(bytes);
      const offsets: number[] = [];
      let at = 0;
      for (const e of batch) {
        offsets.push(at);
        body.set((await this.read(e.key))!, at);
        at += e.byte_length;
      }
      const n = (this.sql.exec<{ n: number | null }>("SELECT MAX(n) AS n FROM segments").one().n ?? 0) + 1;
      const segment = `rounds/${batch[0]!.round_id}/segments/${this.ctx.id.toString()}-${n}`;
      await this.env.UPDATES.put(segment, body, {
        customMetadata: { round_id: batch[0]!.round_id, updates: String(batch.length) },
      });
      this.ctx.storage.transactionSync(() => {
        this.sql.exec("INSERT INTO segments (n, r2_key) VALUES (?, ?)", n, segment);
        batch.forEach((e, i) => {
          this.sql.exec(
            "UPDATE entries SET segment = ?, segment_offset = ? WHERE key = ?",
            segment,
            offsets[i]!,
            e.key,
          );
          this.sql.exec("DELETE FROM parts WHERE key = ?", e.key);
        });
      });
      moved += batch.length;
    }
  }

  /**
   * Deletes every payload of this shard: its R2 segments, then its rows (the round was aggregated and its retention
   * passed). Returns how many payloads it held.
   */
  async purge(): Promise<number> {
    return this.exclusive(() => this.purgeAll());
  }

  private async purgeAll(): Promise<number> {
    if (!this.hasTables) return 0;
    // Given up first: from here on `put` stores nothing (see `put`), so no payload lands behind the deletes below.
    if (!this.purged) this.sql.exec("INSERT INTO purged (id, at) VALUES (1, ?)", Date.now());
    this.purged = true;
    const segments = this.sql
      .exec<{ r2_key: string }>("SELECT r2_key FROM segments")
      .toArray()
      .map((s) => s.r2_key);
    await deleteObjects(this.env.UPDATES, segments);
    const n = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM entries").one().n;
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("DELETE FROM parts");
      this.sql.exec("DELETE FROM entries");
      this.sql.exec("DELETE FROM segments");
    });
    return n;
  }

  /** How many payloads are still in SQLite and how many are in R2 segments. */
  async counts(): Promise<{ pending: number; sealed: number; segments: number }> {
    if (!this.hasTables) return { pending: 0, sealed: 0, segments: 0 };
    const c = this.sql
      .exec<{ pending: number; sealed: number }>(
        "SELECT COALESCE(SUM(segment IS NULL), 0) AS pending, COALESCE(SUM(segment IS NOT NULL), 0) AS sealed FROM entries",
      )
      .one();
    const segments = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM segments").one().n;
    return { pending: c.pending, sealed: c.sealed, segments };
  }

  /** The shard grew past its threshold: seal now. */
  override async alarm(): Promise<void> {
    await this.seal();
  }

  private entry(key: string): EntryRow | null {
    if (!this.hasTables) return null;
    return this.sql.exec<EntryRow>("SELECT * FROM entries WHERE key = ?", key).toArray()[0] ?? null;
  }

  private pendingBytes(): number {
    return this.sql
      .exec<{ n: number }>("SELECT COALESCE(SUM(byte_length), 0) AS n FROM entries WHERE segment IS NULL")
      .one().n;
  }
}
