/**
 * @module
 * `PayloadRetention` moves a round's payloads through their life after it closes, from the alarm:
 * - seal: every UpdateStore shard of a closed round writes its payloads into R2 segments (shards that never stored
 *   anything answer at once); the round is recorded sealed once all 16 answered;
 * - purge: the payloads of a round closed longer ago than the retention (`FEDGE_UPDATE_RETENTION_DAYS`) are deleted
 *   from its shards and R2 (and objects written one per update before the shards existed), whether or not it was
 *   aggregated (a round under `min_reports`, or abandoned, is purged the same way); the updates' metadata stays.
 *   Every shard is asked, so a payload whose commit never happened is deleted too. A sharded round is purged by its
 *   population's object alone, once every coordinator shard stopped and was counted (`Rounds.purgeDue`): the
 *   UpdateStore shards hold every coordinator shard's payloads.
 *
 * A purge has two steps so that a failure half way is never visible: the round's payloads are first given up
 * (`payloads_purged_at`: reads answer 404), then deleted (`payloads_deleted_at` once every shard and R2 object is
 * gone); the alarm retries the second step until it is done.
 *
 * It owns no table: it keeps its progress in the round's `sealed_at`, `payloads_purged_at` and `payloads_deleted_at`
 * (through `Rounds`), and
 * tells the object's alarm when it next has work (`nextWake`). A step that fails is retried after `SEAL_RETRY_MS`.
 */
import { updateRetentionMs } from "../../training/retention.ts";
import { UPDATE_STORE_SHARDS, deleteObjects, updateStoreStub } from "../update-store.ts";
import type { CoordinatorHost } from "./host.ts";
import type { RoundRef, Rounds } from "./rounds.ts";
import type { UpdateIndex } from "./update-index.ts";

/** How soon a failed seal or purge is tried again. */
export const SEAL_RETRY_MS = 30_000;

const allShards = () => Array.from({ length: UPDATE_STORE_SHARDS }, (_, k) => k);

export class PayloadRetention {
  private readonly host: Pick<CoordinatorHost, "env" | "now">;
  private readonly rounds: Rounds;
  private readonly updates: UpdateIndex;

  constructor(host: Pick<CoordinatorHost, "env" | "now">, rounds: Rounds, updates: UpdateIndex) {
    this.host = host;
    this.rounds = rounds;
    this.updates = updates;
  }

  /** Seals every closed round not sealed yet, then purges every round due at `now`; whether all of it succeeded. */
  async run(now: number): Promise<boolean> {
    const sealed = await this.eachRound(this.rounds.unsealed(), "sealing", (r) => this.seal(r));
    const due = this.rounds.purgeDue(this.retentionMs(), now);
    const purged = await this.eachRound(due, "deleting the payloads of", (r) => this.purge(r));
    return sealed && purged;
  }

  /**
   * Gives up and deletes the payloads of every round now, whatever its retention (the population is being deleted);
   * how many rounds it purged. Throws on the first failure, with what it did recorded: a repeated call goes on.
   */
  async purgeAll(): Promise<number> {
    const rounds = this.rounds.undeleted();
    for (const r of rounds) await this.purge(r);
    return rounds.length;
  }

  /** When there is work next: now while a round waits to be sealed, and the earliest purge; null when none. */
  nextWake(): number | null {
    const times: number[] = [];
    if (this.rounds.hasUnsealed() || this.rounds.hasUnfinishedPurge()) times.push(this.host.now());
    const closed = this.rounds.oldestKeptClose();
    if (closed !== null) times.push(closed + this.retentionMs());
    return times.length > 0 ? Math.min(...times) : null;
  }

  private retentionMs(): number {
    const { ms, error } = updateRetentionMs(this.host.env.FEDGE_UPDATE_RETENTION_DAYS);
    if (error) console.error(error);
    return ms;
  }

  /** Runs `step` for each round, logging failures; whether all succeeded. */
  private async eachRound(rounds: RoundRef[], what: string, step: (r: RoundRef) => Promise<void>): Promise<boolean> {
    let ok = true;
    for (const r of rounds) {
      try {
        await step(r);
      } catch (e) {
        console.error(`${what} round ${r.round_id} failed; retrying in ${SEAL_RETRY_MS} ms`, e);
        ok = false;
      }
    }
    return ok;
  }

  private async seal(r: RoundRef): Promise<void> {
    await Promise.all(allShards().map((k) => updateStoreStub(this.host.env, r.round_id, k).seal()));
    this.rounds.markSealed(r.seq, this.host.now());
  }

  /** Two steps: give the payloads up (reads answer 404 from now on), then delete them; a failed delete is retried. */
  private async purge(r: RoundRef): Promise<void> {
    this.rounds.markPurged(r.seq, this.host.now());
    const keys = this.updates.storageKeys(r.seq);
    await Promise.all(allShards().map((k) => updateStoreStub(this.host.env, r.round_id, k).purge()));
    await deleteObjects(this.host.env.UPDATES, keys);
    this.rounds.markDeleted(r.seq, this.host.now());
  }
}
