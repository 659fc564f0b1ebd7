/**
 * @module
 * `Payloads` owns the bytes of the updates this coordinator accepted: `payload_parts` (pending, in SQLite),
 * `payload_sealed` (where a sealed payload sits in its R2 segment) and `payload_segments` (the segment objects it wrote).
 *
 * An accepted payload is written by `insert` inside the commit's own transaction (with the dedupe read, the index row
 * and the round's counter; `UploadAdmission.commit`), so an upload costs one Durable Object call and one SQLite
 * transaction, as a bare durable write does, and no payload exists without its commit or a commit without its payload.
 *
 * Storage stays bounded: the object keeps a running count of its pending bytes and asks for its alarm once they pass
 * `SEAL_THRESHOLD_BYTES` (`sealDue`), which moves them into R2 segments (≤ 32 MiB each) while the round still collects,
 * and a closed round is sealed at once. A SQLite-backed Durable Object holds at most 10 GB, and a row or BLOB at most
 * 2 MB (https://developers.cloudflare.com/durable-objects/platform/limits/); payloads are split into ≤ 1 MiB rows, and
 * what is pending stays near the threshold whatever the round's size (docs/SCALE.md).
 *
 * Seals and purges await R2, and other calls reach the object meanwhile; they run one at a time (`exclusive`), so a
 * purge never lists a round's segments while a seal is still writing one of them. Each segment is written before the
 * rows that point into it change, so a crash mid-seal only repeats work.
 *
 * Payloads accepted before this table existed live in the round's UpdateStore shards (and, older still, one R2 object
 * per update); `locate` answers null for them and the caller looks there.
 */
import type { CoordinatorHost } from "./host.ts";

/** The object seals its pending payloads into R2 once they pass this many bytes, bounding its own storage. */
export const SEAL_THRESHOLD_BYTES = 64 * 1024 * 1024;
/** Largest segment object; a seal writes as many as it needs. */
const SEGMENT_MAX_BYTES = 32 * 1024 * 1024;
/** SQLite rows in a Durable Object are capped at 2 MB; updates go up to 16 MiB. */
const PART_BYTES = 1024 * 1024;

/** Where an accepted payload is now: its bytes (pending in SQLite), or a range of an R2 segment. */
export type PayloadLocation =
  { at: "sqlite"; bytes: Uint8Array } | { at: "r2"; key: string; offset: number; length: number };

type Pending = { round_seq: number; device_id: string; round_id: string; byte_length: number };

/** The slice of the RoundCoordinator the payload table needs. */
export interface PayloadsHost extends Pick<CoordinatorHost, "sql" | "env"> {
  /** Runs `write` as one SQLite transaction. */
  transaction(write: () => void): void;
}

export class Payloads {
  private readonly host: PayloadsHost;
  /** Names this object's segments (its Durable Object id), unique across the coordinator's shards. */
  private readonly objectId: string;
  /** Bytes pending in SQLite, counted once per object start and kept up to date by every write. */
  private pending: number | null = null;
  /** Whether the alarm was already asked to seal the pending payloads past the threshold. */
  private sealAsked = false;
  /** The last seal or purge queued (see `exclusive`). */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(host: PayloadsHost, objectId: string) {
    this.host = host;
    this.objectId = objectId;
  }

  /** Stores an accepted payload of round `seq`; called inside the commit's transaction. */
  insert(seq: number, deviceId: string, bytes: Uint8Array): void {
    const parts = Math.max(1, Math.ceil(bytes.length / PART_BYTES));
    for (let p = 0; p < parts; p++) {
      this.host.sql.exec(
        "INSERT INTO payload_parts (round_seq, device_id, part, data) VALUES (?, ?, ?, ?)",
        seq,
        deviceId,
        p,
        bytes.subarray(p * PART_BYTES, Math.min(bytes.length, (p + 1) * PART_BYTES)),
      );
    }
    this.pending = this.pendingBytes() + bytes.length;
  }

  /** Whether the pending bytes passed the threshold: the alarm should seal now. */
  sealDue(): boolean {
    return this.pendingBytes() >= SEAL_THRESHOLD_BYTES;
  }

  /** True once each time the pending bytes pass the threshold: the caller sets the alarm (one write, not one per upload). */
  askSeal(): boolean {
    if (this.sealAsked || !this.sealDue()) return false;
    this.sealAsked = true;
    return true;
  }

  /** Where the payload of `deviceId` in round `seq` is; null when this object never stored it. */
  locate(seq: number, deviceId: string): PayloadLocation | null {
    const sql = this.host.sql;
    const sealed = sql
      .exec<{ segment: string; segment_offset: number; byte_length: number }>(
        "SELECT segment, segment_offset, byte_length FROM payload_sealed WHERE round_seq = ? AND device_id = ?",
        seq,
        deviceId,
      )
      .toArray()[0];
    if (sealed) return { at: "r2", key: sealed.segment, offset: sealed.segment_offset, length: sealed.byte_length };
    const parts = sql
      .exec<{ data: ArrayBuffer }>(
        "SELECT data FROM payload_parts WHERE round_seq = ? AND device_id = ? ORDER BY part",
        seq,
        deviceId,
      )
      .toArray();
    if (parts.length === 0) return null;
    if (parts.length === 1) return { at: "sqlite", bytes: new Uint8Array(parts[0]!.data) };
    const out = new Uint8Array(parts.reduce((s, p) => s + p.data.byteLength, 0));
    let at = 0;
    for (const p of parts) {
      out.set(new Uint8Array(p.data), at);
      at += p.data.byteLength;
    }
    return { at: "sqlite", bytes: out };
  }

  /** Moves the pending payloads of round `seq` (every round when null) into R2 segments; how many it moved. */
  seal(seq: number | null): Promise<number> {
    return this.exclusive(() => this.sealPending(seq));
  }

  /** Deletes every payload of round `seq`: its R2 segments, then its rows; how many payloads it held. */
  purge(seq: number): Promise<number> {
    return this.exclusive(() => this.purgeRound(seq));
  }

  /** How many payloads of round `seq` are pending in SQLite and how many sealed, and its segments. */
  counts(seq: number): { pending: number; sealed: number; segments: number } {
    const n = (q: string) => this.host.sql.exec<{ n: number }>(q, seq).one().n;
    return {
      pending: n("SELECT COUNT(DISTINCT device_id) AS n FROM payload_parts WHERE round_seq = ?"),
      sealed: n("SELECT COUNT(*) AS n FROM payload_sealed WHERE round_seq = ?"),
      segments: n("SELECT COUNT(*) AS n FROM payload_segments WHERE round_seq = ?"),
    };
  }

  private pendingBytes(): number {
    this.pending ??= this.host.sql
      .exec<{ n: number }>("SELECT COALESCE(SUM(length(data)), 0) AS n FROM payload_parts")
      .one().n;
    return this.pending;
  }

  /**
   * Runs `step` after every seal and purge queued before it: a purge running beside a seal would list the segments
   * before the seal wrote its own, then delete the seal's rows, leaving that segment in R2 with nothing pointing at it.
   */
  private exclusive<T>(step: () => Promise<T>): Promise<T> {
    const run = this.tail.catch(() => undefined).then(step);
    this.tail = run;
    return run;
  }

  private pendingOf(seq: number | null): Pending[] {
    const rows = this.host.sql.exec<Pending>(
      `SELECT p.round_seq, p.device_id, r.round_id, SUM(length(p.data)) AS byte_length
       FROM payload_parts p JOIN rounds r ON r.seq = p.round_seq
       WHERE ? IS NULL OR p.round_seq = ? GROUP BY p.round_seq, p.device_id ORDER BY p.round_seq, p.device_id`,
      seq,
      seq,
    );
    return rows.toArray().map((r) => ({ ...r }));
  }

  private async sealPending(seq: number | null): Promise<number> {
    const sql = this.host.sql;
    let moved = 0;
    const pending = this.pendingOf(seq);
    while (pending.length > 0) {
      // One segment holds payloads of one round (its key names the round) up to SEGMENT_MAX_BYTES.
      const batch: Pending[] = [];
      let bytes = 0;
      for (const p of pending) {
        if (batch.length > 0 && (p.round_seq !== batch[0]!.round_seq || bytes + p.byte_length > SEGMENT_MAX_BYTES)) {
          break;
        }
        batch.push(p);
        bytes += p.byte_length;
      }
      pending.splice(0, batch.length);
      const round = batch[0]!;
      const body = new Uint8Array(bytes);
      const offsets: number[] = [];
      let at = 0;
      for (const p of batch) {
        const found = this.locate(p.round_seq, p.device_id);
        if (found?.at !== "sqlite") throw new Error(`payload of ${p.device_id} vanished while sealing`);
        offsets.push(at);
        body.set(found.bytes, at);
        at += found.bytes.length;
      }
      const n =
        (sql
          .exec<{ n: number | null }>("SELECT MAX(n) AS n FROM payload_segments WHERE round_seq = ?", round.round_seq)
          .one().n ?? 0) + 1;
      const segment = `rounds/${round.round_id}/segments/${this.objectId}-c${n}`;
      await this.host.env.UPDATES.put(segment, body, {
        customMetadata: { round_id: round.round_id, updates: String(batch.length) },
      });
      // A purge of the round cannot have run meanwhile (`exclusive`), so every row below still exists.
      this.host.transaction(() => {
        sql.exec("INSERT INTO payload_segments (round_seq, n, r2_key) VALUES (?, ?, ?)", round.round_seq, n, segment);
        batch.forEach((p, i) => {
          sql.exec(
            "INSERT INTO payload_sealed (round_seq, device_id, segment, segment_offset, byte_length) VALUES (?, ?, ?, ?, ?)",
            p.round_seq,
            p.device_id,
            segment,
            offsets[i]!,
            p.byte_length,
          );
          sql.exec("DELETE FROM payload_parts WHERE round_seq = ? AND device_id = ?", p.round_seq, p.device_id);
        });
      });
      this.pending = this.pendingBytes() - bytes;
      moved += batch.length;
    }
    // Under the threshold again (a closed round's seal can get it there too): the next crossing asks again.
    if (!this.sealDue()) this.sealAsked = false;
    return moved;
  }

  private async purgeRound(seq: number): Promise<number> {
    const sql = this.host.sql;
    const segments = sql
      .exec<{ r2_key: string }>("SELECT r2_key FROM payload_segments WHERE round_seq = ?", seq)
      .toArray()
      .map((s) => s.r2_key);
    for (let i = 0; i < segments.length; i += 1000) await this.host.env.UPDATES.delete(segments.slice(i, i + 1000));
    const c = this.counts(seq);
    const freed = sql
      .exec<{ n: number }>("SELECT COALESCE(SUM(length(data)), 0) AS n FROM payload_parts WHERE round_seq = ?", seq)
      .one().n;
    this.host.transaction(() => {
      sql.exec("DELETE FROM payload_parts WHERE round_seq = ?", seq);
      sql.exec("DELETE FROM payload_sealed WHERE round_seq = ?", seq);
      sql.exec("DELETE FROM payload_segments WHERE round_seq = ?", seq);
    });
    this.pending = this.pendingBytes() - freed;
    if (!this.sealDue()) this.sealAsked = false;
    return c.pending + c.sealed;
  }
}
