/**
 * @module
 * `ShardFanout`: how a sharded population's object talks to its coordinator shards, and how a shard answers it.
 *
 * Population side (round `shard_count` > 1, `shard_index` null): tell every shard the round opened (`open`), close
 * every shard once the round stopped here and sum their final counters (`settle`), walk the shards in order when the
 * aggregator lists a round's updates (`listUpdates`), find a device's update or check-ins on the shard its keyed hash
 * names, and pass a revocation (`revoke`) or a deleted device (`forget`) on to every shard. What a shard did not
 * answer is retried from the alarm (`retry`, `nextWake`).
 *
 * Shard side (`model#i`): take the population's opening of a round (`acceptOpening`) and report its counters, closing
 * first when the population's round stopped (`report`).
 *
 * It owns no table: its progress is the round's `shards_opened_at` and `shards_settled_at` (through `Rounds`), and a
 * shard's copy of the opening is written to `rounds`, `population`, `revoked_devices` and `sharding` in one
 * transaction the host runs. Naming, cursors and cap splits are the pure helpers in `shards.ts`.
 */
import { DEFAULT_TENANT, roundIdFor, type AcceptedUpdate, type CloseReason, type RoundParams } from "@fedge/protocol";
import { shardOf } from "../../training/shard-of.ts";
import { fail, type Result } from "../../training/result.ts";
import type { CoordinatorHost } from "./host.ts";
import type { Population } from "./population.ts";
import type { Revocations } from "./revocations.ts";
import { isCollecting, paramsOf, type RoundRow, type Rounds, type ShardTotals } from "./rounds.ts";
import { SEAL_RETRY_MS } from "./retention.ts";
import type { Sharding, ShardTerms } from "./sharding.ts";
import { shardCursor, shardParams, shardStub, splitCursor } from "./shards.ts";

/** What a shard is told when its population opens a sharded round. */
export interface ShardOpening {
  model: string;
  seq: number;
  shard: number;
  shards: number;
  /** The round's parameters with its count caps split between the shards (`shardParams`). */
  params: RoundParams;
  deadline: number;
  openedAt: number;
  owner: string;
  /** A DP round's charge on the population's ledger, for the receipts the shard signs (null: uncharged). */
  terms: ShardTerms | null;
  /** Every device revoked in the population so far (a device that moved shard stays refused). */
  revoked: { device_id: string; at: number }[];
}

/** A shard's counters for a round, and whether it still collects (null: the shard never heard of the round). */
export type ShardReport = (ShardTotals & { collecting: boolean; closeReason: CloseReason | null }) | null;

/** The slice of the RoundCoordinator the fan-out needs. */
export interface ShardFanoutHost extends Pick<CoordinatorHost, "env" | "now"> {
  /** Runs `write` as one SQLite transaction over the object's tables (a rollback also forgets the cached round). */
  transaction(write: () => void): void;
  /** The population's owning tenant; null before any round. */
  owner(): string | null;
  /** A charged round's receipt terms (null: uncharged). */
  terms(r: RoundRow): ShardTerms | null;
}

/** The tables the fan-out reads and, on a shard, writes the population's opening into. */
export interface ShardFanoutTables {
  rounds: Rounds;
  population: Population;
  revocations: Revocations;
  sharding: Sharding;
}

/** A round of the population's own object whose devices are served by shards (`model#i`), not by this object. */
export function isShardedPopulationRound(r: RoundRow): boolean {
  return r.shard_count > 1 && r.shard_index === null;
}

export class ShardFanout {
  private readonly host: ShardFanoutHost;
  private readonly tables: ShardFanoutTables;

  constructor(host: ShardFanoutHost, tables: ShardFanoutTables) {
    this.host = host;
    this.tables = tables;
  }

  // ── population side ───────────────────────────────────────────────────────────────────────────────────────────

  /** Tells every shard of a sharded round that it opened; true when all answered. */
  async open(r: RoundRow): Promise<boolean> {
    const shards = r.shard_count;
    const base = {
      model: r.model,
      seq: r.seq,
      shards,
      params: shardParams(paramsOf(r), shards),
      deadline: r.deadline,
      openedAt: r.opened_at,
      owner: this.host.owner() ?? DEFAULT_TENANT,
      terms: this.host.terms(r),
      revoked: this.tables.revocations.all(),
    };
    const answers = await Promise.allSettled(
      Array.from({ length: shards }, (_, shard) =>
        shardStub(this.host.env, r.model, shard, shards).openShardRound({ ...base, shard }),
      ),
    );
    if (answers.some((a) => a.status === "rejected" || !a.value.ok)) return false;
    this.tables.rounds.markShardsOpened(r.seq, this.host.now());
    return true;
  }

  /**
   * A sharded round's counters, summed from its shards. Once the round stopped here (deadline, admin), every shard is
   * closed first: a shard whose own alarm is late stops now, so nothing is accepted after the round closed and the
   * aggregator lists every accepted update. When every shard filled its share of `max_reports`, the round closes.
   * Settled rounds (and rounds that are not sharded) are not asked. Throws when a shard does not answer (the caller,
   * or the alarm, retries).
   */
  async settle(r: RoundRow, now: number): Promise<void> {
    if (!isShardedPopulationRound(r) || r.shards_settled_at !== null) return;
    if (r.shards_opened_at === null && !(await this.open(r))) {
      throw new Error(`round ${r.round_id}: not every shard could be told it opened`);
    }
    const closing: CloseReason | null = isCollecting(r.state) ? null : (r.close_reason ?? "deadline");
    const reports = await Promise.all(
      Array.from({ length: r.shard_count }, (_, i) =>
        shardStub(this.host.env, r.model, i, r.shard_count).shardReport(r.round_id, closing, now),
      ),
    );
    const totals: ShardTotals = { checked_in: 0, selected: 0, accepted: 0 };
    for (const rep of reports) {
      if (!rep) throw new Error(`round ${r.round_id}: a shard does not know the round`);
      totals.checked_in += rep.checked_in;
      totals.selected += rep.selected;
      totals.accepted += rep.accepted;
    }
    if (closing === null && reports.every((rep) => rep && !rep.collecting)) {
      // Every shard stopped on its own (each filled its share of max_reports, or its deadline passed first).
      const reason = reports.every((rep) => rep?.closeReason === "max_reports") ? "max_reports" : "deadline";
      this.tables.rounds.close(r.seq, reason, now);
      this.tables.rounds.recordShardTotals(r.seq, totals, now);
      return;
    }
    this.tables.rounds.recordShardTotals(r.seq, totals, closing === null ? null : now);
  }

  /** One page of a sharded round's updates: from the cursor's shard on, the shards in order (or `onlyShard`). */
  async listUpdates(
    r: RoundRow,
    cursor: number,
    limit: number,
    now: number,
    withPayloads: boolean,
    onlyShard: number | undefined,
  ): Promise<Result<{ items: AcceptedUpdate[]; next_cursor: string | null }>> {
    if (onlyShard !== undefined && onlyShard >= r.shard_count) {
      return fail(
        "validation_failed",
        400,
        `round ${r.round_id} runs on ${r.shard_count} shards: no shard ${onlyShard}`,
      );
    }
    await this.settle(r, now);
    let { shard, after } = splitCursor(cursor);
    if (onlyShard !== undefined && shard !== onlyShard) {
      if (shard > onlyShard) return { ok: true, items: [], next_cursor: null };
      shard = onlyShard;
      after = 0;
    }
    const last = onlyShard ?? r.shard_count - 1;
    const items: AcceptedUpdate[] = [];
    while (shard <= last) {
      const page = await shardStub(this.host.env, r.model, shard, r.shard_count).listUpdates(
        r.round_id,
        after,
        limit - items.length,
        now,
        withPayloads,
      );
      if (!page.ok) return page; // a shard's refusal (its payloads purged) is the round's answer
      for (const u of page.items) items.push({ ...u, seq: shardCursor(shard, u.seq) });
      if (page.next_cursor !== null) {
        return { ok: true, items, next_cursor: String(shardCursor(shard, Number(page.next_cursor))) };
      }
      shard += 1;
      after = 0;
      if (items.length >= limit) break;
    }
    return { ok: true, items, next_cursor: shard <= last ? String(shardCursor(shard, 0)) : null };
  }

  /** The shard object that served `deviceId` in sharded round `r` (its keyed hash under the round's S). */
  async shardOfDevice(r: Pick<RoundRow, "model" | "shard_count">, deviceId: string) {
    const index = await shardOf(this.host.env, deviceId, r.shard_count);
    return shardStub(this.host.env, r.model, index, r.shard_count);
  }

  /**
   * When `deviceId` first checked in to each sharded round, read from the shard it had under that round's S (a device
   * may have moved shard since): round seq → time and coin.
   */
  async checkinTimes(model: string, deviceId: string): Promise<Map<number, { at: number; selected: number }>> {
    const times = new Map<number, { at: number; selected: number }>();
    const sharded = this.tables.rounds.shardedRounds();
    for (const shards of new Set(sharded.values())) {
      const stub = await this.shardOfDevice({ model, shard_count: shards }, deviceId);
      for (const t of await stub.checkinTimes(deviceId)) {
        if (sharded.get(t.round_seq) === shards) times.set(t.round_seq, { at: t.at, selected: t.selected });
      }
    }
    return times;
  }

  /**
   * Passes a revocation on to every shard any of the population's rounds ran on (awaited: if one does not answer,
   * this throws and the device's registry retries the whole push). Shards opened later get the full list in `open`.
   */
  async revoke(model: string, deviceId: string, at: number): Promise<void> {
    const shards = this.tables.rounds.maxShards();
    if (shards <= 1) return;
    await Promise.all(
      Array.from({ length: shards }, (_, i) => shardStub(this.host.env, model, i, shards).revokeDevice(deviceId, at)),
    );
  }

  /** Passes a deleted device on to every shard any of the population's rounds ran on (`forgetDevice`; awaited). */
  async forget(model: string, deviceId: string): Promise<void> {
    const shards = this.tables.rounds.maxShards();
    if (shards <= 1) return;
    await Promise.all(
      Array.from({ length: shards }, (_, i) => shardStub(this.host.env, model, i, shards).forgetDevice(deviceId)),
    );
  }

  /** Retries what a sharded round still owes its shards (opening, settling); true when nothing is left. */
  async retry(now: number): Promise<boolean> {
    let done = true;
    for (const r of this.tables.rounds.shardWorkDue()) {
      try {
        await this.settle(r, now);
      } catch {
        done = false;
      }
    }
    return done && this.tables.rounds.shardWorkDue().length === 0;
  }

  /** When the alarm should retry shard work: soon while a round still owes its shards something; null when none. */
  nextWake(): number | null {
    return this.tables.rounds.shardWorkDue().length > 0 ? this.host.now() + SEAL_RETRY_MS : null;
  }

  // ── shard side ────────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * Records the population's opening of round `seq` on this shard; `opened: false` when it was already recorded (the
   * population's object retries until every shard answered). A round of this shard still collecting is closed: the
   * population's object opens a round only once the previous one stopped.
   */
  acceptOpening(input: ShardOpening): Result<{ opened: boolean }> {
    const { rounds, population, revocations, sharding } = this.tables;
    if (rounds.get(roundIdFor(input.model, input.seq))) return { ok: true, opened: false };
    // A row already holding the round's seq (under another id) would fail the insert below: refused as an answer, so no
    // exception crosses the RPC and nothing is written (the population's alarm tells this shard again).
    const taken = rounds.bySeq(input.seq);
    if (taken)
      return fail("conflict", 409, `shard ${input.shard} already holds round ${taken.round_id} as seq ${input.seq}`);
    const previous = rounds.latest;
    this.host.transaction(() => {
      if (previous && isCollecting(previous.state)) rounds.close(previous.seq, "admin", input.openedAt);
      if (population.recordedOwner() === null) population.setOwner(input.owner);
      for (const r of input.revoked) revocations.add(r.device_id, r.at);
      sharding.set({ shards: input.shards, expected_devices: null, set_at: input.openedAt });
      if (input.terms) sharding.setTerms(input.seq, input.terms);
      rounds.open({
        model: input.model,
        params: input.params,
        deadline: input.deadline,
        now: input.openedAt,
        shards: input.shards,
        seq: input.seq,
        shardIndex: input.shard,
      });
    });
    return { ok: true, opened: true };
  }

  /**
   * This shard's counters for a round, closing it first when the population's round stopped (`closeReason`). After a
   * close nothing more is accepted here, so the counters are final.
   */
  report(roundId: string, closeReason: CloseReason | null, now: number): ShardReport {
    const { rounds } = this.tables;
    rounds.expire(now);
    const r = rounds.get(roundId);
    if (!r) return null;
    if (closeReason !== null && isCollecting(r.state)) rounds.close(r.seq, closeReason, now);
    const after = rounds.get(roundId)!;
    return {
      checked_in: after.checked_in,
      selected: after.selected,
      accepted: after.accepted,
      collecting: isCollecting(after.state),
      closeReason: after.close_reason,
    };
  }
}
