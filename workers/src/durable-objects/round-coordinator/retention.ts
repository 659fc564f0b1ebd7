/**
 * @module
 * `PayloadRetention` moves a round's payloads through their life after it closes, from the alarm:
 * - seal: the coordinator's pending payloads of a closed round go into R2 segments (`Payloads.seal`); a round opened
 *   before the coordinator stored payloads also asks its 16 UpdateStore shards (shards that never stored anything
 *   answer at once); the round is recorded sealed once all of it is done. Pending payloads of a collecting round are
 *   sealed too once they pass the threshold (`Payloads.sealDue`), so storage stays bounded during a large round;
 * - purge: the payloads of a round closed longer ago than the retention (`FEDGE_UPDATE_RETENTION_DAYS`) are deleted
 *   from SQLite and R2, whether or not it was aggregated (a round under `min_reports`, or abandoned, is purged the
 *   same way); the updates' metadata stays. A sharded round is purged by its population's object alone, once every
 *   coordinator shard stopped and was counted (`Rounds.purgeDue`): it asks each shard to purge its own payloads
 *   (`purgeShardPayloads`), so a shard that closed early never deletes under a round that still collects elsewhere.
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
import type { Payloads } from "./payloads.ts";
import type { RoundRef, Rounds } from "./rounds.ts";
import { shardStub } from "./shards.ts";
import type { UpdateIndex } from "./update-index.ts";

/** How soon a failed seal or purge is tried again. */
export const SEAL_RETRY_MS = 30_000;

const allShards = () => Array.from({ length: UPDATE_STORE_SHARDS }, (_, k) => k);

export class PayloadRetention {
  private readonly host: Pick<CoordinatorHost, "env" | "now">;
  private readonly rounds: Rounds;
  private readonly updates: UpdateIndex;
  private readonly payloads: Payloads;

  constructor(host: Pick<CoordinatorHost, "env" | "now">, rounds: Rounds, updates: UpdateIndex, payloads: Payloads) {
    this.host = host;
    this.rounds = rounds;
    this.updates = updates;
    this.payloads = payloads;
  }

  /** Seals every closed round not sealed yet, then purges every round due at `now`; whether all of it succeeded. */
  async run(now: number): Promise<boolean> {
    let sealed = await this.eachRound(this.rounds.unsealed(), "sealing", (r) => this.seal(r));
    if (this.payloads.sealDue()) {
      // A round still collecting passed the threshold: its pending payloads go to R2 now.
      sealed =
        (await this.payloads.seal(null).then(
          () => true,
          (e: unknown) => (console.error(`sealing pending payloads failed; retrying in ${SEAL_RETRY_MS} ms`, e), false),
        )) && sealed;
    }
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
    if (this.rounds.hasUnsealed() || this.rounds.hasUnfinishedPurge() || this.payloads.sealDue()) {
      times.push(this.host.now());
    }
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
    await this.payloads.seal(r.seq);
    if (r.update_store_payloads) {
      await Promise.all(allShards().map((k) => updateStoreStub(this.host.env, r.round_id, k).seal()));
    }
    this.rounds.markSealed(r.seq, this.host.now());
  }

  /** Two steps: give the payloads up (reads answer 404 from now on), then delete them; a failed delete is retried. */
  private async purge(r: RoundRef): Promise<void> {
    this.rounds.markPurged(r.seq, this.host.now());
    await this.payloads.purge(r.seq);
    if (r.shard_count > 1 && r.shard_index === null) {
      const { env } = this.host;
      await Promise.all(
        Array.from({ length: r.shard_count }, (_, i) =>
          shardStub(env, r.model, i, r.shard_count).purgeShardPayloads(r.round_id, this.host.now()),
        ),
      );
    }
    if (r.update_store_payloads) {
      const keys = this.updates.storageKeys(r.seq);
      await Promise.all(allShards().map((k) => updateStoreStub(this.host.env, r.round_id, k).purge()));
      // Older still: one R2 object per update, under the update's key.
      await deleteObjects(this.host.env.UPDATES, keys);
    }
    this.rounds.markDeleted(r.seq, this.host.now());
  }
}
