/**
 * @module
 * `Rounds` owns the `rounds` table: a population's rounds in order (`seq`), their lifecycle state, counters, and when
 * their payloads were sealed into R2 and deleted. The newest round is kept in memory (`latest`), since nearly every
 * call is about it; writes re-read it.
 *
 * Lifecycle: `open` → `collecting` (first update accepted) → `closed` (deadline, `max_reports`, or an admin) →
 * `aggregated`. Closing asks the host for the alarm at once (the alarm seals the round's payloads).
 */
import {
  roundIdFor,
  type CloseReason,
  type RecordedRoundRelease,
  type RoundParams,
  type RoundState,
  type RoundStatus,
} from "@fedge/protocol";
import type { CoordinatorHost } from "./host.ts";

/** A shard's counters for one round. */
export type ShardTotals = Pick<RoundRow, "checked_in" | "selected" | "accepted">;

export type RoundRow = {
  seq: number;
  round_id: string;
  model: string;
  state: RoundState;
  /** The round's `RoundParams` as JSON (immutable once open). */
  params: string;
  opened_at: number;
  deadline: number;
  closed_at: number | null;
  close_reason: CloseReason | null;
  aggregated_at: number | null;
  published_version: number | null;
  checked_in: number;
  selected: number;
  accepted: number;
  /** When every shard holding the round's updates sealed them into R2 (null while collecting or still sealing). */
  sealed_at: number | null;
  /** When the payloads were given up after the retention: from then on reads answer 404 (null while kept). */
  payloads_purged_at: number | null;
  /** When every shard and R2 object of them was deleted (after `payloads_purged_at`; null until then). */
  payloads_deleted_at: number | null;
  /** Coordinator shards the round runs on (1: this object serves its devices itself). */
  shard_count: number;
  /** On a shard: which shard of the round this object is (null on the population's own object). */
  shard_index: number | null;
  /** Population object, sharded round: when every shard confirmed the round open (null while some are still told). */
  shards_opened_at: number | null;
  /** Population object, sharded round: when every shard was closed and its final counters summed here. */
  shards_settled_at: number | null;
  /** DP rounds: the `RecordedRoundRelease` the aggregator reported, as JSON (null until it did; written once). */
  dp_release: string | null;
  /** 1 for a round opened before the coordinator stored payloads: some may sit in its UpdateStore shards. */
  update_store_payloads: number;
};

/** A round's id and position, for the seal and purge steps. */
export type RoundRef = Pick<
  RoundRow,
  "seq" | "round_id" | "model" | "shard_count" | "shard_index" | "update_store_payloads"
>;

const REF = "seq, round_id, model, shard_count, shard_index, update_store_payloads";

/**
 * The rounds whose payloads this object purges: its own unsharded ones, and a sharded round once every shard stopped
 * and was counted (`shards_settled_at`). A shard never purges on its own: a shard that filled its share of `max_reports`
 * closes while the others still accept, so its own retention would run out while the round still collects elsewhere;
 * the population's object purges every shard's payloads once all stopped (`PayloadRetention`).
 */
const PURGED_HERE = "shard_index IS NULL AND (shard_count = 1 OR shards_settled_at IS NOT NULL)";

export const iso = (ms: number) => new Date(ms).toISOString();
export const isCollecting = (s: RoundState) => s === "open" || s === "collecting";
export const paramsOf = (r: RoundRow) => JSON.parse(r.params) as RoundParams;

export class Rounds {
  private readonly host: Pick<CoordinatorHost, "sql" | "wake">;
  private newest: RoundRow | null = null;

  constructor(host: Pick<CoordinatorHost, "sql" | "wake">) {
    this.host = host;
  }

  /** Reads the newest round (once the tables exist). */
  load(): void {
    this.newest = this.host.sql.exec<RoundRow>("SELECT * FROM rounds ORDER BY seq DESC LIMIT 1").toArray()[0] ?? null;
  }

  /** The newest round, or null before the first one. */
  get latest(): RoundRow | null {
    return this.newest;
  }

  get(roundId: string): RoundRow | null {
    if (this.newest && this.newest.round_id === roundId) return this.newest;
    return this.host.sql.exec<RoundRow>("SELECT * FROM rounds WHERE round_id = ?", roundId).toArray()[0] ?? null;
  }

  bySeq(seq: number): RoundRow | null {
    return this.host.sql.exec<RoundRow>("SELECT * FROM rounds WHERE seq = ?", seq).toArray()[0] ?? null;
  }

  /** Newest first. */
  list(limit: number): RoundRow[] {
    return this.host.sql.exec<RoundRow>("SELECT * FROM rounds ORDER BY seq DESC LIMIT ?", limit).toArray();
  }

  /** The `seq` the population's next round gets. */
  nextSeq(): number {
    return (this.newest?.seq ?? 0) + 1;
  }

  /**
   * Inserts the population's next round (the caller checked that none is collecting); it becomes `latest`. A shard is
   * handed the `seq` its population's object gave the round.
   */
  open(input: {
    model: string;
    params: RoundParams;
    deadline: number;
    now: number;
    shards?: number;
    seq?: number;
    shardIndex?: number;
  }): RoundRow {
    const seq = input.seq ?? this.nextSeq();
    const roundId = roundIdFor(input.model, seq);
    this.host.sql.exec(
      `INSERT INTO rounds (seq, round_id, model, state, params, opened_at, deadline, shard_count, shard_index)
       VALUES (?, ?, ?, 'open', ?, ?, ?, ?, ?)`,
      seq,
      roundId,
      input.model,
      JSON.stringify(input.params),
      input.now,
      input.deadline,
      input.shards ?? 1,
      input.shardIndex ?? null,
    );
    this.newest = this.get(roundId);
    return this.newest!;
  }

  /** When the alarm must close the collecting round (its deadline); null while none collects. */
  nextWake(): number | null {
    const r = this.newest;
    return r && isCollecting(r.state) ? r.deadline : null;
  }

  /** Closes the collecting round if its deadline has passed. */
  expire(now: number): void {
    const r = this.newest;
    if (r && isCollecting(r.state) && now >= r.deadline) {
      this.close(r.seq, "deadline", now);
      this.refresh(r.seq);
    }
  }

  /** Stops a collecting round (a no-op for one that is not) and wakes the alarm, which seals its payloads. */
  close(seq: number, reason: CloseReason, now: number): void {
    this.host.sql.exec(
      "UPDATE rounds SET state = 'closed', closed_at = ?, close_reason = ? WHERE seq = ? AND state IN ('open', 'collecting')",
      now,
      reason,
      seq,
    );
    this.refresh(seq);
    // The alarm seals the round's payloads into R2 (and re-arms the next deadline).
    this.host.wake(now);
  }

  /** Marks a closed round aggregated, or links a version to an aggregated one that has none (the caller checked). */
  markAggregated(r: RoundRow, publishedVersion: number | undefined, now: number): void {
    if (r.state === "closed") {
      this.host.sql.exec(
        "UPDATE rounds SET state = 'aggregated', aggregated_at = ?, published_version = ? WHERE seq = ?",
        now,
        publishedVersion ?? null,
        r.seq,
      );
    } else if (publishedVersion !== undefined && r.published_version === null) {
      this.host.sql.exec("UPDATE rounds SET published_version = ? WHERE seq = ?", publishedVersion, r.seq);
    }
    this.refresh(r.seq);
  }

  /** Records what the aggregator released for round `seq` (the caller checked it); a second report changes nothing. */
  recordRelease(seq: number, release: RecordedRoundRelease): void {
    this.host.sql.exec(
      "UPDATE rounds SET dp_release = ? WHERE seq = ? AND dp_release IS NULL",
      JSON.stringify(release),
      seq,
    );
    this.refresh(seq);
  }

  /** Counts a first check-in (inside the caller's transaction; `refresh` after it). */
  countCheckin(seq: number, selected: boolean): void {
    this.host.sql.exec(
      "UPDATE rounds SET checked_in = checked_in + 1, selected = selected + ? WHERE seq = ?",
      selected ? 1 : 0,
      seq,
    );
  }

  /** Counts the `n`th accepted update (inside the caller's transaction; `acceptedCounted` after it commits). */
  countAccepted(seq: number, n: number): void {
    this.host.sql.exec("UPDATE rounds SET accepted = ?, state = 'collecting' WHERE seq = ?", n, seq);
  }

  /**
   * After the transaction of `countAccepted(seq, n)` committed: the cached newest round takes the same two changes in
   * memory instead of being read again (one SQLite read less per accepted update). A round the same transaction closed
   * was refreshed by `close` and keeps its state.
   */
  acceptedCounted(seq: number, n: number): void {
    const r = this.newest;
    if (r && r.seq === seq) this.newest = { ...r, accepted: n, state: r.state === "open" ? "collecting" : r.state };
  }

  // ── shards (population object) ──────────────────────────────────────────────────────────────────────────────────

  /** Every shard confirmed round `seq` open. */
  markShardsOpened(seq: number, at: number): void {
    this.host.sql.exec("UPDATE rounds SET shards_opened_at = ? WHERE seq = ?", at, seq);
    this.refresh(seq);
  }

  /**
   * The counters of a sharded round, summed from its shards; `settledAt` once every shard is closed (they are final
   * then). The first update accepted anywhere makes the round `collecting`.
   */
  recordShardTotals(seq: number, totals: ShardTotals, settledAt: number | null): void {
    this.host.sql.exec(
      `UPDATE rounds SET checked_in = ?, selected = ?, accepted = ?, shards_settled_at = ?,
         state = CASE WHEN state = 'open' AND ? > 0 THEN 'collecting' ELSE state END
       WHERE seq = ?`,
      totals.checked_in,
      totals.selected,
      totals.accepted,
      settledAt,
      totals.accepted,
      seq,
    );
    this.refresh(seq);
  }

  /** Sharded rounds whose shards are still to be told the round opened, or, once closed, still to be settled. */
  shardWorkDue(): RoundRow[] {
    return this.host.sql
      .exec<RoundRow>(
        `SELECT * FROM rounds WHERE shard_count > 1 AND shard_index IS NULL AND (shards_opened_at IS NULL
           OR (state NOT IN ('open', 'collecting') AND shards_settled_at IS NULL))`,
      )
      .toArray();
  }

  /** The most shards any round of this population (population object) ran on: where a revocation must reach. */
  maxShards(): number {
    return (
      this.host.sql
        .exec<{ s: number | null }>("SELECT MAX(shard_count) AS s FROM rounds WHERE shard_index IS NULL")
        .one().s ?? 1
    );
  }

  /** The population object's sharded rounds (seq → S), to find a device's check-ins in them. */
  shardedRounds(): Map<number, number> {
    const rows = this.host.sql
      .exec<{ seq: number; shard_count: number }>(
        "SELECT seq, shard_count FROM rounds WHERE shard_count > 1 AND shard_index IS NULL",
      )
      .toArray();
    return new Map(rows.map((r) => [r.seq, r.shard_count]));
  }

  // ── payload bookkeeping (for PayloadRetention) ──────────────────────────────────────────────────────────────────

  /** Rounds no longer collecting whose payloads are not sealed yet. */
  unsealed(): RoundRef[] {
    return this.host.sql
      .exec<RoundRef>(`SELECT ${REF} FROM rounds WHERE state NOT IN ('open', 'collecting') AND sealed_at IS NULL`)
      .toArray();
  }

  hasUnsealed(): boolean {
    return (
      this.host.sql
        .exec("SELECT 1 FROM rounds WHERE state NOT IN ('open', 'collecting') AND sealed_at IS NULL LIMIT 1")
        .toArray().length > 0
    );
  }

  /**
   * Rounds that stopped collecting at least `retentionMs` before `now` and whose payloads are still kept: aggregated or
   * not (a round under `min_reports`, or one nobody aggregated, is purged too). The retention counts from the close.
   */
  purgeDue(retentionMs: number, now: number): RoundRef[] {
    return this.host.sql
      .exec<RoundRef>(
        `SELECT ${REF} FROM rounds WHERE state NOT IN ('open', 'collecting') AND payloads_deleted_at IS NULL
         AND ${PURGED_HERE} AND (payloads_purged_at IS NOT NULL OR closed_at + ? <= ?)`,
        retentionMs,
        now,
      )
      .toArray();
  }

  /** Every round whose payloads are not deleted yet, whatever its state or retention. */
  undeleted(): RoundRef[] {
    return this.host.sql
      .exec<RoundRef>(`SELECT ${REF} FROM rounds WHERE payloads_deleted_at IS NULL ORDER BY seq`)
      .toArray();
  }

  /** Whether a purge was started and its deletes are not all done (the alarm retries it). */
  hasUnfinishedPurge(): boolean {
    return (
      this.host.sql
        .exec("SELECT 1 FROM rounds WHERE payloads_purged_at IS NOT NULL AND payloads_deleted_at IS NULL LIMIT 1")
        .toArray().length > 0
    );
  }

  /** When the earliest closed round whose payloads are still kept was closed; null when none. */
  oldestKeptClose(): number | null {
    return this.host.sql
      .exec<{ at: number | null }>(
        `SELECT MIN(closed_at) AS at FROM rounds WHERE state NOT IN ('open', 'collecting') AND payloads_purged_at IS NULL
         AND ${PURGED_HERE}`,
      )
      .one().at;
  }

  markSealed(seq: number, at: number): void {
    this.host.sql.exec("UPDATE rounds SET sealed_at = ? WHERE seq = ?", at, seq);
    this.refresh(seq);
  }

  /**
   * Gives the payloads up, before anything is deleted: from now on reads answer 404, so a purge that fails half way
   * is never visible as a missing payload (and sealed, for a round whose seal never finished: nothing is left to seal).
   */
  markPurged(seq: number, at: number): void {
    this.host.sql.exec(
      "UPDATE rounds SET payloads_purged_at = COALESCE(payloads_purged_at, ?), sealed_at = COALESCE(sealed_at, ?) WHERE seq = ?",
      at,
      at,
      seq,
    );
    this.refresh(seq);
  }

  /** Records every payload of the round deleted (shards and R2). */
  markDeleted(seq: number, at: number): void {
    this.host.sql.exec("UPDATE rounds SET payloads_deleted_at = ? WHERE seq = ?", at, seq);
    this.refresh(seq);
  }

  /** Re-reads `latest` if it is round `seq` (after a write to it). */
  refresh(seq: number): void {
    if (this.newest && this.newest.seq === seq) {
      this.newest = this.host.sql.exec<RoundRow>("SELECT * FROM rounds WHERE seq = ?", seq).toArray()[0] ?? null;
    }
  }
}

/** The wire form of a round. */
export function toStatus(r: RoundRow): RoundStatus {
  return {
    round_id: r.round_id,
    model: r.model,
    state: r.state,
    params: paramsOf(r),
    opened_at: iso(r.opened_at),
    deadline: iso(r.deadline),
    closed_at: r.closed_at === null ? null : iso(r.closed_at),
    close_reason: r.close_reason,
    aggregated_at: r.aggregated_at === null ? null : iso(r.aggregated_at),
    payloads_purged_at: r.payloads_purged_at === null ? null : iso(r.payloads_purged_at),
    published_version: r.published_version,
    checked_in: r.checked_in,
    selected: r.selected,
    accepted: r.accepted,
    shards: r.shard_count,
    release: r.dp_release === null ? null : (JSON.parse(r.dp_release) as RecordedRoundRelease),
  };
}
