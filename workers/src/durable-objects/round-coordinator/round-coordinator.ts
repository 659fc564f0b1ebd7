/**
 * @module
 * RoundCoordinator: one SQLite-backed Durable Object per training population (model name), the single writer of its rounds.
 *
 * Lifecycle: `open` (check-ins answered, tasks issued) → `collecting` (first update accepted) → `closed` (deadline alarm,
 * `max_reports` accepted, or an admin) → `aggregated` (the aggregator marked it, optionally with the published model version).
 * One round at a time collects; dropouts (selected devices that never report) are normal.
 *
 * Sampling: a device's first check-in in a round flips a CSPRNG coin with probability q (`poissonCoin`) and records it with
 * the device's single-use nonce; every later check-in in that round reads the record, so the answer never changes.
 *
 * Device keys: a check-in records the device's Ed25519 public key beside its coin, so an upload is verified against the key
 * held here (`preflightUpload`) without a read of the device's own Durable Object. Revocation reaches this object by push:
 * the device's DeviceRegistry instance records every population it checks in to (before this object learns the key) and
 * calls `revokeDevice` on each of them when an admin revokes it, retrying from an outbox until each has answered.
 *
 * Ingestion: the route checks the update (`uploadTarget`, `preflightUpload`), then `commitUpload` brings the payload
 * here and records it in one SQLite transaction keyed by (round, device): dedupe, index row, payload (`Payloads`) and
 * counter. One Durable Object call and one transaction per accepted update, as a bare durable write costs; nothing is
 * acknowledged before that transaction, and no payload is stored without its commit. A second commit for the same
 * device and bytes returns the first receipt with `duplicate: true` and stores nothing. A route that verified the
 * signature under the key it saw at the device's check-in skips the preflight; its commit (`unchecked`) then also
 * checks the tenant and that this key is the one held here, and a refusal writes nothing. Payloads go to R2 segments
 * when their round closes, or sooner once the pending ones pass a threshold (`PayloadRetention`).
 *
 * Privacy budget: the population's ledger lives here too (`PopulationLedger`), because opening a round and charging it
 * must be one atomic step: the budget check reads the ledger and the round and its charge are written in one SQLite
 * transaction, with no `await` between the read and the write, in the population's single-writer object. A refused
 * open (409 `budget_exceeded`) writes nothing; a charge is never taken back (abandoned rounds stay charged).
 *
 * Layout: this class is the RPC surface, the transactions that span tables, and the single alarm. Each table is owned
 * by a capability behind a slice of `CoordinatorHost` (`Rounds`, `Checkins`, `UpdateIndex`, `Revocations`,
 * `PopulationLedger`); `PayloadRetention` seals and purges payloads; `ShardFanout` talks to a sharded population's
 * coordinator shards; `UploadAdmission` preflights and commits uploads; `Payloads` holds the accepted bytes;
 * `PopulationPrivacy` sets the budget and answers the population's and a device's privacy record; the rules are pure functions in `admission.ts`, `budget.ts` and `shards.ts`; the schema and its
 * upgrades are in `migrations.ts`.
 *
 * Every RPC method returns a `Result` (no domain errors thrown across RPC). State is loaded under `blockConcurrencyWhile`;
 * the deadline is an alarm, and every method also closes an expired round lazily in case the alarm is late.
 */
import { DurableObject } from "cloudflare:workers";
import {
  roundIdFor,
  isAuditShadowName,
  DEFAULT_TENANT,
  toBase64Url,
  type AcceptedUpdate,
  type CheckinReceiptBody,
  type CheckinResponse,
  type CloseReason,
  type PopulationSharding,
  type PopulationPrivacyStatus,
  type PrivacyBudgetRequest,
  type RoundParams,
  type RoundRelease,
  type RoundStatus,
  type UpdateReceipt,
} from "@fedge/protocol";
import type { Bindings } from "../../env.ts";
import { poissonCoin } from "../../training/sampling.ts";
import { fail, type Result } from "../../training/result.ts";
import {
  aggregateVerdict,
  capSelection,
  checkinAnswer,
  checkinPrecheck,
  cohortCapVerdict,
  coversCheckedIn,
  listUpdatesVerdict,
  openVerdict,
  payloadsPurged,
  ownerVerdict,
  roundNotFound,
  tenantVerdict,
  uploadTarget,
  type SecAggMembership,
  type UploadPreflight,
  type UploadTarget,
} from "./admission.ts";
import { chargeVerdict, checkinReceiptOf } from "./budget.ts";
import { Checkins, type CheckinRow, type RecordedCheckin } from "./checkins.ts";
import type { CoordinatorHost } from "./host.ts";
import { hasSchema, migrate } from "./migrations.ts";
import { PopulationLedger } from "./population-ledger.ts";
import { PopulationPrivacy } from "./population-privacy.ts";
import { Payloads, type PayloadLocation } from "./payloads.ts";
import { Population } from "./population.ts";
import { PayloadRetention, SEAL_RETRY_MS } from "./retention.ts";
import { releaseVerdict } from "./release.ts";
import { Revocations } from "./revocations.ts";
import { Rounds, iso, isCollecting, paramsOf, toStatus, type RoundRow } from "./rounds.ts";
import { ShardFanout, isShardedPopulationRound, type ShardOpening, type ShardReport } from "./shard-fanout.ts";
import { Sharding, type ShardTerms } from "./sharding.ts";
import { misrouted, shardingChangeVerdict, type Misrouted } from "./shards.ts";
import { UpdateIndex } from "./update-index.ts";
import { UploadAdmission, type CommitInput, type PreflightInput } from "./upload-admission.ts";

export type { ShardOpening, ShardReport } from "./shard-fanout.ts";
export type { CommitInput } from "./upload-admission.ts";

export function roundsStub(env: Bindings, model: string) {
  return env.ROUNDS.getByName(model);
}

export interface StoredUpdate {
  storage_key: string;
  sha256: string;
  byte_length: number;
  public_key: string;
  /**
   * Where its payload is: here (its bytes, or a range of an R2 segment), or null for an update accepted before the
   * coordinator stored payloads (in the round's UpdateStore shard under `storage_key`).
   */
  payload: PayloadLocation | null;
}

export class RoundCoordinator extends DurableObject<Bindings> {
  // The capabilities, built by `attach` (again after `retire` emptied the storage their caches read).
  private rounds!: Rounds;
  private checkins!: Checkins;
  private updates!: UpdateIndex;
  private revocations!: Revocations;
  private retention!: PayloadRetention;
  private ledger!: PopulationLedger;
  private population!: Population;
  private sharding!: Sharding;
  private fanout!: ShardFanout;
  private uploads!: UploadAdmission;
  private privacy!: PopulationPrivacy;
  private payloads!: Payloads;
  /**
   * Whether the tables exist: created by the first legitimate write (an admin opening a round, a revocation pushed by
   * a device's registry), so an object addressed by a made-up population keeps no storage and answers as empty.
   */
  private hasTables = false;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.attach();
    void ctx.blockConcurrencyWhile(async () => {
      if (hasSchema(ctx.storage.sql)) this.ensureTables();
    });
  }

  /** Builds the capabilities over the object's storage, with nothing cached. */
  private attach(): void {
    const { ctx, env } = this;
    const host: CoordinatorHost = {
      sql: ctx.storage.sql,
      env,
      now: () => Date.now(),
      wake: (at) => void ctx.storage.setAlarm(at),
    };
    this.rounds = new Rounds(host);
    this.checkins = new Checkins(host);
    this.updates = new UpdateIndex(host);
    this.revocations = new Revocations(host);
    this.payloads = new Payloads(
      { sql: ctx.storage.sql, env, transaction: (write) => ctx.storage.transactionSync(write) },
      ctx.id.toString(),
    );
    this.retention = new PayloadRetention(host, this.rounds, this.updates, this.payloads);
    this.ledger = new PopulationLedger(host);
    this.population = new Population(host);
    this.sharding = new Sharding(host);
    this.fanout = new ShardFanout(
      {
        env,
        now: host.now,
        transaction: (write) => this.atomically(write),
        owner: () => this.ownerOrNull(),
        terms: (r) => this.termsOf(r),
      },
      { rounds: this.rounds, population: this.population, revocations: this.revocations, sharding: this.sharding },
    );
    this.uploads = new UploadAdmission(
      { owner: () => this.ownerOrNull(), transaction: (write) => this.atomically(write) },
      {
        rounds: this.rounds,
        checkins: this.checkins,
        updates: this.updates,
        revocations: this.revocations,
        payloads: this.payloads,
      },
    );
    this.privacy = new PopulationPrivacy(
      { hasTables: () => this.hasTables, ensureTables: () => this.ensureTables(), modelName: () => this.modelName() },
      { ledger: this.ledger, rounds: this.rounds, fanout: this.fanout },
    );
  }

  private ensureTables(): void {
    if (this.hasTables) return;
    migrate(this.ctx.storage.sql);
    this.rounds.load();
    this.hasTables = true;
  }

  // ── admin ──────────────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * Opens the population's next round and charges it to the population's privacy budget, atomically: 409 while
   * another one is still collecting, or when the population belongs to another tenant (its first round records
   * `tenant`, default "default", as its owner); 409 `budget_exceeded` when the charge would pass the budget (nothing
   * written).
   */
  async openRound(input: {
    model: string;
    params: RoundParams;
    deadline: number;
    now: number;
    tenant?: string;
  }): Promise<Result<{ status: RoundStatus }>> {
    const { model, params, deadline, now } = input;
    this.ensureTables();
    this.rounds.expire(now);
    const owner = this.ownerOrNull();
    const tenancy = ownerVerdict(model, owner, input.tenant);
    if (!tenancy.ok) return tenancy;
    const verdict = openVerdict(this.rounds.latest, params, deadline, now);
    if (!verdict.ok) return verdict;
    // From here to the commit nothing awaits: no other call of this object runs between the budget check and the write.
    const seq = this.rounds.nextSeq();
    const priced = chargeVerdict({
      model,
      roundSeq: seq,
      roundId: roundIdFor(model, seq),
      params,
      budget: this.ledger.budget(),
      charges: this.ledger.charges(),
      now,
    });
    if (!priced.ok) return priced;
    let opened!: RoundRow;
    this.atomically(() => {
      // The first round records the owner (an older population keeps the default tenant it already had).
      if (this.population.recordedOwner() === null) this.population.setOwner(owner ?? input.tenant ?? DEFAULT_TENANT);
      opened = this.rounds.open({ model, params, deadline, now, shards: this.sharding.shards() });
      if (priced.charge) this.ledger.charge(priced.charge);
    });
    // A sharded round opens on every shard now; a shard that did not answer is told again by the alarm.
    if (opened.shard_count > 1) await this.fanout.open(opened).catch(() => false);
    // The earliest of this deadline, a previous round still to seal, a retention that runs out.
    await this.armAlarm(Infinity);
    return { ok: true, status: toStatus(this.rounds.get(opened.round_id)!) };
  }

  /**
   * What the edge needs to route a device: the owner, and the S of the newest round (where its devices check in).
   * An isolate remembers it; a check-in routed with an S that is out of date is told the new one (`Misrouted`).
   */
  async routing(): Promise<{ owner: string | null; shards: number }> {
    if (!this.hasTables) return { owner: null, shards: 1 };
    return { owner: this.ownerOrNull(), shards: this.rounds.latest?.shard_count ?? 1 };
  }

  // ── shards ─────────────────────────────────────────────────────────────────────────────────────────────────────

  /** The population's shard count S for its next round (admin token only; see `shardingChangeVerdict`). */
  async setSharding(input: {
    model: string;
    shards: number;
    expectedDevices: number | null;
    now: number;
  }): Promise<Result<{ sharding: PopulationSharding }>> {
    this.ensureTables(); // an admin's write
    this.rounds.expire(input.now);
    const verdict = shardingChangeVerdict(this.rounds.latest, this.sharding.shards(), input.shards);
    if (!verdict.ok) return verdict;
    this.sharding.set({ shards: input.shards, expected_devices: input.expectedDevices, set_at: input.now });
    return { ok: true, sharding: this.shardingOf(input.model) };
  }

  /** The population's S for its next round (1 for a population nobody sharded). */
  async getSharding(model: string): Promise<PopulationSharding> {
    return this.shardingOf(model);
  }

  /**
   * Shard side: the population opened round `seq` on S shards and this object is shard `shard`. Idempotent (the
   * population's object retries until every shard answered). A round of this shard still collecting is closed: the
   * population's object opens a round only once the previous one stopped.
   */
  async openShardRound(input: ShardOpening): Promise<Result<object>> {
    this.ensureTables();
    const accepted = this.fanout.acceptOpening(input);
    if (!accepted.ok) return accepted;
    if (accepted.opened) await this.armAlarm(Infinity);
    return { ok: true };
  }

  /**
   * Shard side: this shard's counters for a round, closing it first when the population's round stopped
   * (`closeReason`). After a close nothing more is accepted here, so the counters are final.
   */
  async shardReport(roundId: string, closeReason: CloseReason | null, now: number): Promise<ShardReport> {
    if (!this.hasTables) return null;
    const report = this.fanout.report(roundId, closeReason, now);
    if (report && !report.collecting) await this.armAlarm(Infinity); // seal what it holds
    return report;
  }

  /** Shard side: when `deviceId` first checked in, per round this shard served it (for its receipts). */
  async checkinTimes(deviceId: string): Promise<{ round_seq: number; at: number; selected: number }[]> {
    if (!this.hasTables) return [];
    return this.checkins.timesOf(deviceId);
  }

  async status(roundId: string, now: number): Promise<Result<{ status: RoundStatus }>> {
    const found = this.knownRound(roundId, now);
    if (!found.ok) return found;
    const r = found.round;
    // Counters of a sharded round are summed from its shards; one that does not answer leaves the last sums.
    await this.fanout.settle(r, now).catch(() => undefined);
    return { ok: true, status: toStatus(this.rounds.get(roundId)!) };
  }

  /** Newest rounds first. */
  async listRounds(limit: number, now: number): Promise<RoundStatus[]> {
    if (!this.hasTables) return [];
    this.rounds.expire(now);
    const latest = this.rounds.latest;
    if (latest) await this.fanout.settle(latest, now).catch(() => undefined);
    return this.rounds.list(limit).map(toStatus);
  }

  /** Stops collecting now (idempotent: a closed or aggregated round is returned as it is). */
  async closeRound(roundId: string, now: number): Promise<Result<{ status: RoundStatus }>> {
    const found = this.knownRound(roundId, now);
    if (!found.ok) return found;
    const r = found.round;
    if (isCollecting(r.state)) this.rounds.close(r.seq, "admin", now);
    // Every shard stops now too, before the answer: nothing is accepted anywhere after an admin's close.
    await this.fanout.settle(this.rounds.get(roundId)!, now);
    return { ok: true, status: toStatus(this.rounds.get(roundId)!) };
  }

  /**
   * Marks a closed round aggregated, optionally linking the published model version. Idempotent; a different version than
   * one already linked is a 409, as is a round still collecting or one with fewer than `min_reports` accepted updates
   * (distributed: `securelyAggregated`, the inputs of its released secure-aggregation sum).
   */
  async markAggregated(
    roundId: string,
    publishedVersion: number | undefined,
    now: number,
    securelyAggregated?: number,
  ): Promise<Result<{ status: RoundStatus }>> {
    const found = this.knownRound(roundId, now);
    if (!found.ok) return found;
    const r = found.round;
    await this.fanout.settle(r, now);
    const settled = this.rounds.get(roundId)!;
    const verdict = aggregateVerdict(settled, publishedVersion, securelyAggregated);
    if (!verdict.ok) return verdict;
    this.rounds.markAggregated(settled, publishedVersion, now);
    await this.armAlarm(Infinity);
    return { ok: true, status: toStatus(this.rounds.get(roundId)!) };
  }

  /**
   * Records what the aggregator released for a closed DP round (`releaseVerdict`: only noised values of the round's own
   * mechanism, once). A refused report stores nothing.
   */
  async reportRelease(
    roundId: string,
    release: RoundRelease,
    now: number,
    /** A distributed round: the inputs of its released secure-aggregation sum. */
    securelyAggregated?: number,
  ): Promise<Result<{ status: RoundStatus }>> {
    const found = this.knownRound(roundId, now);
    if (!found.ok) return found;
    const r = found.round;
    // A sharded round's accepted count (min_reports) is summed from its shards.
    if (!isCollecting(r.state)) await this.fanout.settle(r, now);
    const settled = this.rounds.get(roundId)!;
    const verdict = releaseVerdict(settled, release, securelyAggregated);
    if (!verdict.ok) return verdict;
    this.rounds.recordRelease(settled.seq, { ...release, reported_at: iso(now) });
    return { ok: true, status: toStatus(this.rounds.get(roundId)!) };
  }

  /** Accepted updates of a closed round in acceptance order, `limit` at a time after cursor `after` (a `seq`). */
  async listUpdates(
    roundId: string,
    after: number,
    limit: number,
    now: number,
    /** The caller will read the payloads too: refused once they were deleted after the retention. */
    withPayloads = false,
    /** A sharded round: list this shard only (the cursor still carries the shard). */
    onlyShard?: number,
  ): Promise<Result<{ items: AcceptedUpdate[]; next_cursor: string | null; shards: number }>> {
    const found = this.knownRound(roundId, now);
    if (!found.ok) return found;
    const r = found.round;
    const verdict = listUpdatesVerdict(r, withPayloads);
    if (!verdict.ok) return verdict;
    if (isShardedPopulationRound(r)) {
      // `shards`: the S whose cursors the items carry (each payload is read from the shard its cursor names).
      const page = await this.fanout.listUpdates(r, after, limit, now, withPayloads, onlyShard);
      return page.ok ? { ...page, shards: r.shard_count } : page;
    }
    if (onlyShard !== undefined && onlyShard !== 0) {
      return fail(
        "validation_failed",
        400,
        `round ${roundId} runs on one coordinator: shard ${onlyShard} does not exist`,
      );
    }
    const { rows, more } = this.updates.page(r.seq, after, limit);
    return {
      ok: true,
      items: rows.map((u) => ({
        seq: u.n,
        device_id: u.device_id,
        public_key: u.public_key,
        sha256: u.sha256,
        byte_length: u.byte_length,
        received_at: iso(u.received_at),
      })),
      next_cursor: more ? String(rows[rows.length - 1]!.n) : null,
      shards: 1,
    };
  }

  /** Where one accepted update is stored (any state: the device's own receipt stays valid). */
  async getUpdate(roundId: string, deviceId: string): Promise<Result<{ update: StoredUpdate }>> {
    if (!this.hasTables) return roundNotFound(roundId);
    const r = this.rounds.get(roundId);
    if (!r) return roundNotFound(roundId);
    if (isShardedPopulationRound(r)) {
      if (r.payloads_purged_at !== null) return payloadsPurged(r);
      return (await this.fanout.shardOfDevice(r, deviceId)).getUpdate(roundId, deviceId);
    }
    const u = this.updates.get(r.seq, deviceId);
    if (!u) return fail("not_found", 404, `round ${roundId} has no accepted update from ${deviceId}`);
    if (r.payloads_purged_at !== null) return payloadsPurged(r);
    return {
      ok: true,
      update: {
        storage_key: u.storage_key,
        sha256: u.sha256,
        byte_length: u.byte_length,
        public_key: u.public_key,
        payload: this.payloads.locate(r.seq, deviceId),
      },
    };
  }

  /**
   * Where the payload of `deviceId` in `roundId` is, on the object that accepted it (a shard for a sharded round: the
   * aggregator's stream asks the shard its cursor names). Null when this object never stored it (accepted before the
   * coordinator stored payloads: in the round's UpdateStore shard).
   */
  async payloadOf(
    roundId: string,
    deviceId: string,
    now: number,
  ): Promise<Result<{ payload: PayloadLocation | null }>> {
    const found = this.knownRound(roundId, now);
    if (!found.ok) return found;
    if (found.round.payloads_purged_at !== null) return payloadsPurged(found.round);
    return { ok: true, payload: this.payloads.locate(found.round.seq, deviceId) };
  }

  /**
   * Shard side: deletes this shard's payloads of `roundId` (its population's object purges a sharded round once every
   * shard stopped; idempotent, retried from there). How many it held.
   */
  async purgeShardPayloads(roundId: string, now: number): Promise<number> {
    if (!this.hasTables) return 0;
    const r = this.rounds.get(roundId);
    if (!r) return 0;
    this.rounds.markPurged(r.seq, now);
    const n = await this.payloads.purge(r.seq);
    this.rounds.markDeleted(r.seq, now);
    return n;
  }

  /**
   * Deletes the population: an audit shadow given up (`DELETE /v1/admin/populations/:name/audit-shadows/:id`, admin
   * token). Stops a collecting round, deletes every round's payloads from the UpdateStore shards and R2, then all of
   * this object's storage (rounds, check-ins, updates, ledger, owner, revocations) and its alarm, so the name starts
   * empty. A failure half way throws with the payloads it deleted recorded; repeating the call goes on from there.
   * 409 for a sharded population (its rounds live on its shards too). How many rounds it deleted.
   */
  async retire(now: number): Promise<Result<{ rounds: number }>> {
    if (!this.hasTables) return { ok: true, rounds: 0 };
    if (this.rounds.maxShards() > 1) {
      return fail("conflict", 409, `${this.modelName() ?? "the population"} ran sharded rounds: it cannot be deleted`);
    }
    this.rounds.expire(now);
    const latest = this.rounds.latest;
    // Closed first: from here on no upload passes its preflight, so no payload is stored after the purge.
    if (latest && isCollecting(latest.state)) this.rounds.close(latest.seq, "admin", now);
    const rounds = await this.retention.purgeAll();
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.hasTables = false;
    this.attach();
    return { ok: true, rounds };
  }

  // ── privacy budget ─────────────────────────────────────────────────────────────────────────────────────────────

  /** Sets (or changes) the population's budget (admin token only; see `budgetChangeVerdict` for what is refused). */
  async setPrivacyBudget(input: {
    model: string;
    budget: PrivacyBudgetRequest;
    now: number;
  }): Promise<Result<{ status: PopulationPrivacyStatus }>> {
    return this.privacy.setBudget(input);
  }

  /** The population's budget, ε spent and left, and every charged round (no device counts). */
  async privacyStatus(model: string): Promise<PopulationPrivacyStatus> {
    return this.privacy.status(model);
  }

  // ── devices ────────────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * The device's answer for the collecting round: flips and records its coin (and the device's public key, which the
   * route has just verified the check-in under) on the first check-in, reads it after. A revoked device is refused.
   * In a charged (DP) round the answer comes with the body of the device's receipt, which the route signs with the
   * edge key: the coin was flipped, so the device's loss accrues, selected or not. It is the same on every repeat.
   */
  async checkin(
    deviceId: string,
    publicKey: string,
    apiKeyId: string,
    now: number,
    /** The tenant of the API key the check-in came with (only the owner's keys take part). */
    tenant: string = DEFAULT_TENANT,
    /** The S the edge routed the device with; a collecting round on another S answers `Misrouted`. */
    shards = 1,
  ): Promise<Result<{ answer: CheckinResponse; receipt: CheckinReceiptBody | null }> | Misrouted> {
    if (!this.hasTables) {
      const early = checkinPrecheck(deviceId, false, null)!;
      return early.ok ? { ...early, receipt: null } : early;
    }
    const owner = this.ownerOrNull();
    if (owner !== null) {
      const tenancy = tenantVerdict(this.rounds.latest?.model ?? "this population", owner, tenant);
      if (!tenancy.ok) return tenancy;
    }
    this.rounds.expire(now);
    const latest = this.rounds.latest;
    if (latest && isCollecting(latest.state) && latest.shard_count !== shards) return misrouted(latest.shard_count);
    const early = checkinPrecheck(deviceId, this.revocations.has(deviceId), latest);
    if (early) return early.ok ? { ...early, receipt: null } : early;
    // The precheck passed: the newest round is collecting.
    const r = this.rounds.latest!;
    let record: RecordedCheckin | null = this.checkins.get(r.seq, deviceId);
    if (!record) {
      const room = cohortCapVerdict(r);
      if (!room.ok) return room;
      const drawn = {
        ...drawCheckin(paramsOf(r), publicKey, apiKeyId, this.checkins.selectedFor(r.seq, apiKeyId)),
        at: now,
      };
      record = drawn;
      this.transact(r.seq, () => {
        this.checkins.record(r.seq, deviceId, drawn, now);
        this.rounds.countCheckin(r.seq, drawn.selected === 1);
      });
    }
    // Whether it already reported matters only to a selected device.
    const reported = record.selected === 1 && this.updates.get(r.seq, deviceId) !== null;
    const terms = this.termsOf(r);
    const receipt = terms ? checkinReceiptOf(r.model, deviceId, terms.charge, terms, record.at) : null;
    return { ok: true, answer: checkinAnswer(r, record, reported, now), receipt };
  }

  /** Every charged round `deviceId` checked in for, with its ε (`GET /v1/devices/:id/privacy`; `PopulationPrivacy`). */
  async devicePrivacy(deviceId: string): ReturnType<PopulationPrivacy["ofDevice"]> {
    return this.privacy.ofDevice(deviceId);
  }

  /**
   * Benchmark only (the admin bench route, docs/SCALE.md): first check-ins of `deviceIds` in this one call, so one
   * storage commit and one RPC for all of them; timed from the caller against no ids, the difference is the object's
   * own work per check-in (coin, SQLite reads and transaction), without the per-request commit. `shards` is the S the
   * caller routed the devices with, as for `checkin`.
   */
  async benchCheckins(deviceIds: string[], now: number, shards = 1): Promise<Result<{ selected: number }>> {
    let selected = 0;
    for (const id of deviceIds) {
      const r = await this.checkin(id, "A".repeat(43), "bench", now, DEFAULT_TENANT, shards);
      if (!r.ok) return r;
      if (r.answer.selected) selected++;
    }
    return { ok: true, selected };
  }

  /** An admin revoked `deviceId` (pushed by its DeviceRegistry instance): refuse its check-ins and uploads from now on. */
  async revokeDevice(deviceId: string, at: number): Promise<void> {
    // A deleted audit shadow keeps no storage: nothing is served there, and a shadow made again under the name is
    // only joined through the registry (verified-devices.ts), which refuses the device.
    if (!this.hasTables && isAuditShadowName(this.ctx.id.name ?? "")) return;
    this.ensureTables();
    this.revocations.add(deviceId, at);
    // The population's object passes it on to every shard any of its rounds ran on (a shard's failure fails the push).
    const model = this.modelName();
    if (model !== null) await this.fanout.revoke(model, deviceId, at);
  }

  /**
   * An admin deleted `deviceId`, revoked here before (`DeviceRegistry.deleteDevice`): its check-ins of rounds that
   * stopped collecting and charged nothing are deleted, here and on every shard; those of charged rounds stay (the
   * device's privacy history on the ledger), and so does its revocation.
   */
  async forgetDevice(deviceId: string): Promise<void> {
    if (!this.hasTables) return;
    this.checkins.forgetUncharged(deviceId);
    const model = this.modelName();
    if (model !== null) await this.fanout.forget(model, deviceId);
  }

  /** What an upload to `roundId` must satisfy; answered before the body is read, so the route can cap it. */
  async uploadTarget(roundId: string, now: number): Promise<Result<UploadTarget & { shards: number }>> {
    const found = this.knownRound(roundId, now);
    if (!found.ok) return found;
    const r = found.round;
    return { ok: true, ...uploadTarget(r), shards: r.shard_count };
  }

  /**
   * Before the signature is checked, without writing: the public key this device checked in with (or reported under), its
   * revocation, and whether the nonce and duplicate rules admit the update.
   */
  async preflightUpload(input: PreflightInput): Promise<Result<UploadPreflight>> {
    const found = this.knownRound(input.roundId, input.now);
    return found.ok ? this.uploads.preflight(found.round, input) : found;
  }

  /** A device's standing in a distributed round's secure aggregation (no write). */
  async secAggMember(
    roundId: string,
    deviceId: string,
    now: number,
    tenant: string = DEFAULT_TENANT,
  ): Promise<Result<SecAggMembership>> {
    const found = this.knownRound(roundId, now);
    return found.ok ? this.uploads.membership(found.round, deviceId, tenant) : found;
  }

  /**
   * Accepts an update and stores its payload (one SQLite transaction); the same device and bytes again return the
   * first receipt. Once the pending payloads pass the seal threshold, the alarm moves them to R2.
   */
  async commitUpload(input: CommitInput): Promise<Result<{ receipt: UpdateReceipt }>> {
    const found = this.knownRound(input.roundId, input.now);
    if (!found.ok) return found;
    const committed = this.uploads.commit(found.round, input);
    if (committed.ok && !committed.receipt.duplicate && this.payloads.askSeal()) {
      await this.ctx.storage.setAlarm(Date.now());
    }
    return committed;
  }

  // ── alarm ──────────────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * The collecting round's deadline; sealing the payloads of closed rounds into R2; deleting the payloads of rounds
   * aggregated longer ago than the retention (`FEDGE_UPDATE_RETENTION_DAYS`). Failures are retried.
   */
  override async alarm(): Promise<void> {
    if (!this.hasTables) return;
    const now = Date.now();
    this.rounds.expire(now);
    const done = await this.retention.run(now);
    const shardsDone = await this.fanout.retry(now);
    await this.armAlarm(done && shardsDone ? Infinity : Date.now() + SEAL_RETRY_MS);
  }

  /** The one alarm planner: the next thing due (the deadline, a seal, a purge), and no later than `notAfter`. */
  private async armAlarm(notAfter: number): Promise<void> {
    const at = Math.min(
      notAfter,
      this.rounds.nextWake() ?? Infinity,
      this.retention.nextWake() ?? Infinity,
      this.fanout.nextWake() ?? Infinity,
    );
    if (Number.isFinite(at)) await this.ctx.storage.setAlarm(at);
    else await this.ctx.storage.deleteAlarm();
  }

  // ── internals ──────────────────────────────────────────────────────────────────────────────────────────────────────

  /** The population's name (from its rounds); null before the first round. */
  /** Round `roundId` once the deadlines due at `now` have closed what they close, or its 404. */
  private knownRound(roundId: string, now: number): Result<{ round: RoundRow }> {
    if (!this.hasTables) return roundNotFound(roundId);
    this.rounds.expire(now);
    const round = this.rounds.get(roundId);
    return round ? { ok: true, round } : roundNotFound(roundId);
  }

  private modelName(): string | null {
    return this.rounds.latest?.model ?? null;
  }

  private shardingOf(model: string): PopulationSharding {
    const row = this.hasTables ? this.sharding.current() : null;
    return {
      model,
      shards: row?.shards ?? 1,
      expected_devices: row?.expected_devices ?? null,
      set_at: row ? iso(row.set_at) : null,
    };
  }

  /** A charged round's receipt terms: the population's ledger here, or on a shard the copy it was handed. */
  private termsOf(r: RoundRow): ShardTerms | null {
    if (r.shard_index !== null) return this.sharding.terms(r.seq);
    const charge = this.ledger.chargeOf(r.seq);
    const budget = this.ledger.budget();
    return charge && budget ? { charge, delta: budget.delta } : null;
  }

  /** The owning tenant; rounds opened before tenants existed belong to the default tenant; null before any round. */
  private ownerOrNull(): string | null {
    return this.population.recordedOwner() ?? (this.rounds.latest ? DEFAULT_TENANT : null);
  }

  /** One SQLite transaction over the tables; a rollback also forgets the round it may have cached. */
  private atomically(write: () => void): void {
    try {
      this.ctx.storage.transactionSync(write);
    } catch (e) {
      this.rounds.load();
      throw e;
    }
  }

  /** One SQLite transaction over the tables, writing round `seq`; the cached newest round is re-read after it. */
  private transact(seq: number, write: () => void): void {
    this.ctx.storage.transactionSync(write);
    this.rounds.refresh(seq);
  }
}

/**
 * A device's first check-in of a round: its Poisson coin (CSPRNG), capped by its API key's selections so far
 * (`selectedForKey`), and, when it gets a task (selected, or any member of a checked-in cohort), its single-use nonce.
 */
function drawCheckin(params: RoundParams, publicKey: string, apiKeyId: string, selectedForKey: number): CheckinRow {
  const coin = poissonCoin(params.sampling_rate, (a) => crypto.getRandomValues(a));
  const selected = capSelection(coin, selectedForKey, params);
  const tasked = selected || coversCheckedIn(params);
  const nonce = tasked ? toBase64Url(crypto.getRandomValues(new Uint8Array(16))) : null;
  return { selected: selected ? 1 : 0, nonce, public_key: publicKey, api_key_id: apiKeyId };
}
