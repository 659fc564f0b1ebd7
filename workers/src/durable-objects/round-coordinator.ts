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
 * Ingestion is two-phase so that nothing accepted is lost and nothing is counted twice: the route checks the update
 * (`uploadTarget`, `preflightUpload`), stores the payload in its UpdateStore shard under a key that names round, device
 * and content hash, then `commitUpload` records it here in one SQLite transaction keyed by (round, device). A crash
 * between the store and the commit leaves an unreferenced payload (the device's retry stores the same key and commits); a
 * second commit for the same device and bytes returns the first receipt with `duplicate: true`. When a round closes, the
 * alarm asks each of its shards to seal its payloads into R2 (retried until every shard has answered).
 *
 * Every RPC method returns a `Result` (no domain errors thrown across RPC). State is loaded under `blockConcurrencyWhile`;
 * the deadline is an alarm, and every method also closes an expired round lazily in case the alarm is late.
 */
import { DurableObject } from "cloudflare:workers";
import {
  roundIdFor,
  roundTaskFor,
  toBase64Url,
  type CheckinResponse,
  type CloseReason,
  type RoundParams,
  type RoundState,
  type RoundStatus,
  type AcceptedUpdate,
  type UpdateReceipt,
} from "@fedge/protocol";
import type { Bindings } from "../env.ts";
import { poissonCoin } from "../training/sampling.ts";
import type { UpdateLimits } from "../training/update-checks.ts";
import { fail, type Result } from "../training/result.ts";
import { updateRetentionMs } from "../training/retention.ts";
import { UPDATE_STORE_SHARDS, deleteObjects, updateStoreStub } from "./update-store.ts";

/** Seconds a device waits before checking in again when no round is collecting. */
export const NO_ROUND_RETRY_S = 60;
/** How soon a failed seal of a closed round's shards is tried again. */
const SEAL_RETRY_MS = 30_000;

export function roundsStub(env: Bindings, model: string) {
  return env.ROUNDS.getByName(model);
}

type RoundRow = {
  seq: number;
  round_id: string;
  model: string;
  state: RoundState;
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
  /** When the payloads were deleted after the retention (null while kept). */
  payloads_purged_at: number | null;
};

type CheckinRow = { selected: number; nonce: string | null; public_key: string | null; api_key_id: string | null };

type UpdateRow = {
  n: number;
  device_id: string;
  public_key: string;
  sha256: string;
  byte_length: number;
  storage_key: string;
  received_at: number;
};

export interface UploadTarget {
  limits: UpdateLimits;
  /** Whether the round still takes new updates (a closed round still answers idempotent resubmissions). */
  accepting: boolean;
}

export interface CommitInput {
  roundId: string;
  deviceId: string;
  /** base64url nonce from the update. */
  nonce: string;
  sha256: string;
  byteLength: number;
  /** base64url Ed25519 public key the signature verified under. */
  publicKey: string;
  /** Where the payload was stored (`updateStorageKey`). */
  storageKey: string;
  now: number;
}

/** What the coordinator knows about an upload before its signature is checked. */
export interface UploadPreflight {
  /** The key the device checked in with for this round; null when it has no check-in here (the route looks it up). */
  publicKey: string | null;
  /** The API key the device checked in under (its revocation stops the device's uploads too); null when unknown. */
  apiKeyId: string | null;
  revoked: boolean;
  /** The nonce and duplicate rules' verdict; a duplicate answers its first receipt. */
  admission: Result<{ duplicate: UpdateReceipt | null }>;
}

export interface StoredUpdate {
  storage_key: string;
  sha256: string;
  byte_length: number;
  public_key: string;
}

const iso = (ms: number) => new Date(ms).toISOString();
const allShards = () => Array.from({ length: UPDATE_STORE_SHARDS }, (_, k) => k);
const isCollecting = (s: RoundState) => s === "open" || s === "collecting";

export class RoundCoordinator extends DurableObject<Bindings> {
  private readonly sql: SqlStorage;
  /** The newest round, or null before the first one. */
  private latest: RoundRow | null = null;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    void ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(`CREATE TABLE IF NOT EXISTS rounds (
        seq INTEGER PRIMARY KEY, round_id TEXT NOT NULL UNIQUE, model TEXT NOT NULL, state TEXT NOT NULL,
        params TEXT NOT NULL, opened_at INTEGER NOT NULL, deadline INTEGER NOT NULL, closed_at INTEGER,
        close_reason TEXT, aggregated_at INTEGER, published_version INTEGER,
        checked_in INTEGER NOT NULL DEFAULT 0, selected INTEGER NOT NULL DEFAULT 0, accepted INTEGER NOT NULL DEFAULT 0,
        sealed_at INTEGER, payloads_purged_at INTEGER)`);
      this.sql.exec(`CREATE TABLE IF NOT EXISTS checkins (
        round_seq INTEGER NOT NULL, device_id TEXT NOT NULL, selected INTEGER NOT NULL, nonce TEXT, at INTEGER NOT NULL,
        public_key TEXT, api_key_id TEXT, PRIMARY KEY (round_seq, device_id))`);
      this.sql.exec(`CREATE TABLE IF NOT EXISTS updates (
        round_seq INTEGER NOT NULL, device_id TEXT NOT NULL, n INTEGER NOT NULL, public_key TEXT NOT NULL,
        sha256 TEXT NOT NULL, byte_length INTEGER NOT NULL, storage_key TEXT NOT NULL, received_at INTEGER NOT NULL,
        PRIMARY KEY (round_seq, device_id), UNIQUE (round_seq, n))`);
      this.sql.exec(`CREATE TABLE IF NOT EXISTS revoked_devices (device_id TEXT PRIMARY KEY, at INTEGER NOT NULL)`);
      this.migrateColumns();
      this.latest = this.sql.exec<RoundRow>("SELECT * FROM rounds ORDER BY seq DESC LIMIT 1").toArray()[0] ?? null;
    });
  }

  // ── admin ──────────────────────────────────────────────────────────────────────────────────────────────────────

  /** Opens the population's next round; 409 while another one is still collecting. */
  async openRound(input: {
    model: string;
    params: RoundParams;
    deadline: number;
    now: number;
  }): Promise<Result<{ status: RoundStatus }>> {
    const { model, params, deadline, now } = input;
    this.expire(now);
    const prev = this.latest;
    if (prev && isCollecting(prev.state)) {
      return fail("conflict", 409, `round ${prev.round_id} is still ${prev.state}; close it first`);
    }
    if (params.privacy_mode === "distributed") {
      return fail(
        "validation_failed",
        400,
        "privacy_mode distributed (secure aggregation) is not supported by the edge yet",
      );
    }
    if (!(deadline > now)) return fail("validation_failed", 400, "deadline: must be in the future");
    const seq = (prev?.seq ?? 0) + 1;
    const roundId = roundIdFor(model, seq);
    this.sql.exec(
      `INSERT INTO rounds (seq, round_id, model, state, params, opened_at, deadline) VALUES (?, ?, ?, 'open', ?, ?, ?)`,
      seq,
      roundId,
      model,
      JSON.stringify(params),
      now,
      deadline,
    );
    this.latest = this.row(roundId);
    // The earliest of this deadline, a previous round still to seal, a retention that runs out.
    await this.armAlarm(Infinity);
    return { ok: true, status: this.toStatus(this.latest!) };
  }

  async status(roundId: string, now: number): Promise<Result<{ status: RoundStatus }>> {
    this.expire(now);
    const r = this.row(roundId);
    if (!r) return fail("round_not_found", 404, `no round ${roundId}`);
    return { ok: true, status: this.toStatus(r) };
  }

  /** Newest rounds first. */
  async listRounds(limit: number, now: number): Promise<RoundStatus[]> {
    this.expire(now);
    return this.sql
      .exec<RoundRow>("SELECT * FROM rounds ORDER BY seq DESC LIMIT ?", limit)
      .toArray()
      .map((r) => this.toStatus(r));
  }

  /** Stops collecting now (idempotent: a closed or aggregated round is returned as it is). */
  async closeRound(roundId: string, now: number): Promise<Result<{ status: RoundStatus }>> {
    this.expire(now);
    const r = this.row(roundId);
    if (!r) return fail("round_not_found", 404, `no round ${roundId}`);
    if (isCollecting(r.state)) this.close(r.seq, "admin", now);
    return { ok: true, status: this.toStatus(this.row(roundId)!) };
  }

  /**
   * Marks a closed round aggregated, optionally linking the published model version. Idempotent; a different version than
   * one already linked is a 409, as is a round still collecting or one with fewer than `min_reports` accepted updates.
   */
  async markAggregated(
    roundId: string,
    publishedVersion: number | undefined,
    now: number,
  ): Promise<Result<{ status: RoundStatus }>> {
    this.expire(now);
    const r = this.row(roundId);
    if (!r) return fail("round_not_found", 404, `no round ${roundId}`);
    if (isCollecting(r.state)) return fail("conflict", 409, `round ${roundId} is still ${r.state}; close it first`);
    const params = JSON.parse(r.params) as RoundParams;
    if (r.accepted < params.min_reports) {
      return fail(
        "conflict",
        409,
        `round ${roundId} has ${r.accepted} accepted updates, fewer than its min_reports ${params.min_reports}`,
      );
    }
    if (publishedVersion !== undefined && r.published_version !== null && r.published_version !== publishedVersion) {
      return fail("conflict", 409, `round ${roundId} is already linked to model version ${r.published_version}`);
    }
    if (r.state === "closed") {
      this.sql.exec(
        "UPDATE rounds SET state = 'aggregated', aggregated_at = ?, published_version = ? WHERE seq = ?",
        now,
        publishedVersion ?? null,
        r.seq,
      );
    } else if (publishedVersion !== undefined && r.published_version === null) {
      this.sql.exec("UPDATE rounds SET published_version = ? WHERE seq = ?", publishedVersion, r.seq);
    }
    this.refreshLatest(r.seq);
    await this.armAlarm(Infinity);
    return { ok: true, status: this.toStatus(this.row(roundId)!) };
  }

  /** Accepted updates of a closed round in acceptance order, `limit` at a time after cursor `after` (a `seq`). */
  async listUpdates(
    roundId: string,
    after: number,
    limit: number,
    now: number,
    /** The caller will read the payloads too: refused once they were deleted after the retention. */
    withPayloads = false,
  ): Promise<Result<{ items: AcceptedUpdate[]; next_cursor: string | null }>> {
    this.expire(now);
    const r = this.row(roundId);
    if (!r) return fail("round_not_found", 404, `no round ${roundId}`);
    if (isCollecting(r.state)) {
      return fail("conflict", 409, `round ${roundId} is still ${r.state}; its updates are listed once it is closed`);
    }
    if (withPayloads && r.payloads_purged_at !== null) return this.purgedFail(r);
    const rows = this.sql
      .exec<UpdateRow>(
        "SELECT * FROM updates WHERE round_seq = ? AND n > ? ORDER BY n LIMIT ?",
        r.seq,
        after,
        limit + 1,
      )
      .toArray();
    const page = rows.slice(0, limit);
    return {
      ok: true,
      items: page.map((u) => ({
        seq: u.n,
        device_id: u.device_id,
        public_key: u.public_key,
        sha256: u.sha256,
        byte_length: u.byte_length,
        received_at: iso(u.received_at),
      })),
      next_cursor: rows.length > limit ? String(page[page.length - 1]!.n) : null,
    };
  }

  /** Where one accepted update is stored (any state: the device's own receipt stays valid). */
  async getUpdate(roundId: string, deviceId: string): Promise<Result<{ update: StoredUpdate }>> {
    const r = this.row(roundId);
    if (!r) return fail("round_not_found", 404, `no round ${roundId}`);
    const u = this.updateRow(r.seq, deviceId);
    if (!u) return fail("not_found", 404, `round ${roundId} has no accepted update from ${deviceId}`);
    if (r.payloads_purged_at !== null) return this.purgedFail(r);
    return {
      ok: true,
      update: { storage_key: u.storage_key, sha256: u.sha256, byte_length: u.byte_length, public_key: u.public_key },
    };
  }

  // ── devices ────────────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * The device's answer for the collecting round: flips and records its coin (and the device's public key, which the
   * route has just verified the check-in under) on the first check-in, reads it after. A revoked device is refused.
   */
  async checkin(
    deviceId: string,
    publicKey: string,
    apiKeyId: string,
    now: number,
  ): Promise<Result<{ answer: CheckinResponse }>> {
    this.expire(now);
    if (this.isRevoked(deviceId)) return fail("device_revoked", 403, `device ${deviceId} is revoked`);
    const r = this.latest;
    if (!r || !isCollecting(r.state)) {
      return { ok: true, answer: { selected: false, reason: "no_open_round", retry_after_s: NO_ROUND_RETRY_S } };
    }
    const params = JSON.parse(r.params) as RoundParams;
    let record = this.checkinRow(r.seq, deviceId);
    if (!record) {
      const selected = poissonCoin(params.sampling_rate, (a) => crypto.getRandomValues(a));
      const nonce = selected ? toBase64Url(crypto.getRandomValues(new Uint8Array(16))) : null;
      this.ctx.storage.transactionSync(() => {
        this.sql.exec(
          "INSERT INTO checkins (round_seq, device_id, selected, nonce, at, public_key, api_key_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
          r.seq,
          deviceId,
          selected ? 1 : 0,
          nonce,
          now,
          publicKey,
          apiKeyId,
        );
        this.sql.exec(
          "UPDATE rounds SET checked_in = checked_in + 1, selected = selected + ? WHERE seq = ?",
          selected ? 1 : 0,
          r.seq,
        );
      });
      this.refreshLatest(r.seq);
      record = { selected: selected ? 1 : 0, nonce, public_key: publicKey, api_key_id: apiKeyId };
    }
    const retryAfter = Math.max(1, Math.ceil((r.deadline - now) / 1000));
    if (!record.selected) {
      return {
        ok: true,
        answer: { selected: false, reason: "not_sampled", round_id: r.round_id, retry_after_s: retryAfter },
      };
    }
    if (this.updateRow(r.seq, deviceId)) {
      return {
        ok: true,
        answer: { selected: false, reason: "already_reported", round_id: r.round_id, retry_after_s: retryAfter },
      };
    }
    return {
      ok: true,
      answer: { selected: true, task: roundTaskFor(r.round_id, r.model, params, record.nonce!, iso(r.deadline)) },
    };
  }

  /** An admin revoked `deviceId` (pushed by its DeviceRegistry instance): refuse its check-ins and uploads from now on. */
  async revokeDevice(deviceId: string, at: number): Promise<void> {
    this.sql.exec("INSERT OR IGNORE INTO revoked_devices (device_id, at) VALUES (?, ?)", deviceId, at);
  }

  /** What an upload to `roundId` must satisfy; answered before the body is read, so the route can cap it. */
  async uploadTarget(roundId: string, now: number): Promise<Result<UploadTarget>> {
    this.expire(now);
    const r = this.row(roundId);
    if (!r) return fail("round_not_found", 404, `no round ${roundId}`);
    const p = JSON.parse(r.params) as RoundParams;
    return {
      ok: true,
      accepting: isCollecting(r.state),
      limits: {
        update_length: p.update_length,
        update_dtype: p.update_dtype,
        clip_norm: p.clip_norm,
        privacy_mode: p.privacy_mode,
        local_noise_multiplier: p.local_noise_multiplier,
        report_clip_bit: p.report_clip_bit,
      },
    };
  }

  /**
   * Before the signature is checked, without writing: the public key this device checked in with (or reported under), its
   * revocation, and whether the nonce and duplicate rules admit the update.
   */
  async preflightUpload(
    input: Omit<CommitInput, "storageKey" | "publicKey" | "byteLength">,
  ): Promise<Result<UploadPreflight>> {
    this.expire(input.now);
    const r = this.row(input.roundId);
    if (!r) return fail("round_not_found", 404, `no round ${input.roundId}`);
    const existing = this.updateRow(r.seq, input.deviceId);
    const issued = this.checkinRow(r.seq, input.deviceId);
    return {
      ok: true,
      publicKey: existing?.public_key ?? issued?.public_key ?? null,
      apiKeyId: issued?.api_key_id ?? null,
      revoked: this.isRevoked(input.deviceId),
      admission: this.admissible(r, input, existing, issued),
    };
  }

  /** Records a stored update (one SQLite transaction); the same device and bytes again return the first receipt. */
  async commitUpload(input: CommitInput): Promise<Result<{ receipt: UpdateReceipt }>> {
    this.expire(input.now);
    const r = this.row(input.roundId);
    if (!r) return fail("round_not_found", 404, `no round ${input.roundId}`);
    const existing = this.updateRow(r.seq, input.deviceId);
    const checked = this.admissible(r, input, existing, this.checkinRow(r.seq, input.deviceId));
    // An identical upload that committed first keeps its receipt (and its payload, which is this one's too).
    if (checked.ok && checked.duplicate) return { ok: true, receipt: checked.duplicate };
    // Revoked since the preflight: refused like any other race lost, before anything is recorded.
    if (this.isRevoked(input.deviceId)) return fail("device_revoked", 403, `device ${input.deviceId} is revoked`);
    if (!checked.ok) return checked;
    const params = JSON.parse(r.params) as RoundParams;
    const n = r.accepted + 1;
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        `INSERT INTO updates (round_seq, device_id, n, public_key, sha256, byte_length, storage_key, received_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        r.seq,
        input.deviceId,
        n,
        input.publicKey,
        input.sha256,
        input.byteLength,
        input.storageKey,
        input.now,
      );
      this.sql.exec("UPDATE rounds SET accepted = ?, state = 'collecting' WHERE seq = ?", n, r.seq);
      if (n >= params.max_reports) this.close(r.seq, "max_reports", input.now);
    });
    this.refreshLatest(r.seq);
    return {
      ok: true,
      receipt: {
        round_id: r.round_id,
        device_id: input.deviceId,
        sha256: input.sha256,
        received_at: iso(input.now),
        duplicate: false,
      },
    };
  }

  // ── alarm ──────────────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * The collecting round's deadline; sealing the payloads of closed rounds into R2; deleting the payloads of rounds
   * aggregated longer ago than the retention (`FEDGE_UPDATE_RETENTION_DAYS`). Failures are retried.
   */
  override async alarm(): Promise<void> {
    const now = Date.now();
    this.expire(now);
    const unsealed = this.sql
      .exec<{ seq: number; round_id: string }>(
        "SELECT seq, round_id FROM rounds WHERE state NOT IN ('open', 'collecting') AND sealed_at IS NULL",
      )
      .toArray();
    const sealed = await this.eachRound(unsealed, "sealing", (r) => this.sealRound(r.seq, r.round_id));
    const due = this.sql
      .exec<{ seq: number; round_id: string }>(
        `SELECT seq, round_id FROM rounds WHERE state = 'aggregated' AND payloads_purged_at IS NULL
         AND aggregated_at + ? <= ?`,
        this.retentionMs(),
        now,
      )
      .toArray();
    const purged = await this.eachRound(due, "deleting the payloads of", (r) => this.purgeRound(r.seq, r.round_id));
    await this.armAlarm(sealed && purged ? Infinity : Date.now() + SEAL_RETRY_MS);
  }

  /** Runs `step` for each round, logging failures; whether all succeeded (a failure is retried by the alarm). */
  private async eachRound(
    rounds: { seq: number; round_id: string }[],
    what: string,
    step: (r: { seq: number; round_id: string }) => Promise<void>,
  ): Promise<boolean> {
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

  /** Sets the alarm for the next thing due (deadline, a seal, a purge), or no later than `notAfter`. */
  private async armAlarm(notAfter: number): Promise<void> {
    const times = [notAfter];
    if (this.latest && isCollecting(this.latest.state)) times.push(this.latest.deadline);
    const unsealed = this.sql
      .exec("SELECT 1 FROM rounds WHERE state NOT IN ('open', 'collecting') AND sealed_at IS NULL LIMIT 1")
      .toArray();
    if (unsealed.length > 0) times.push(Date.now());
    const purge = this.sql
      .exec<{ at: number | null }>(
        "SELECT MIN(aggregated_at) AS at FROM rounds WHERE state = 'aggregated' AND payloads_purged_at IS NULL",
      )
      .one().at;
    if (purge !== null) times.push(purge + this.retentionMs());
    const at = Math.min(...times);
    if (Number.isFinite(at)) await this.ctx.storage.setAlarm(at);
    else await this.ctx.storage.deleteAlarm();
  }

  private retentionMs(): number {
    const { ms, error } = updateRetentionMs(this.env.FEDGE_UPDATE_RETENTION_DAYS);
    if (error) console.error(error);
    return ms;
  }

  /**
   * Deletes the payloads of an aggregated round from its shards and R2 (and objects written one per update before the
   * shards existed); the updates' metadata stays. Records the time once every shard has answered.
   */
  private async purgeRound(seq: number, roundId: string): Promise<void> {
    const keys = this.sql
      .exec<{ storage_key: string }>("SELECT storage_key FROM updates WHERE round_seq = ?", seq)
      .toArray()
      .map((u) => u.storage_key);
    // Every shard, not only those of accepted devices: a payload whose commit never happened is deleted too.
    await Promise.all(allShards().map((k) => updateStoreStub(this.env, roundId, k).purge()));
    await deleteObjects(this.env.UPDATES, keys);
    const now = Date.now();
    this.sql.exec(
      "UPDATE rounds SET payloads_purged_at = ?, sealed_at = COALESCE(sealed_at, ?) WHERE seq = ?",
      now,
      now,
      seq,
    );
    this.refreshLatest(seq);
  }

  /**
   * Asks every shard of the round to seal (shards that never stored anything answer at once, without storage); records
   * the round sealed once all have answered.
   */
  private async sealRound(seq: number, roundId: string): Promise<void> {
    await Promise.all(allShards().map((k) => updateStoreStub(this.env, roundId, k).seal()));
    this.sql.exec("UPDATE rounds SET sealed_at = ? WHERE seq = ?", Date.now(), seq);
    this.refreshLatest(seq);
  }

  // ── internals ──────────────────────────────────────────────────────────────────────────────────────────────────

  /** The nonce and duplicate rules for `claim`, given the device's accepted update and check-in rows of round `r`. */
  private admissible(
    r: RoundRow,
    claim: { deviceId: string; nonce: string; sha256: string },
    existing: UpdateRow | null,
    issued: CheckinRow | null,
  ): Result<{ duplicate: UpdateReceipt | null }> {
    const { deviceId, nonce, sha256 } = claim;
    if (existing) {
      if (existing.sha256 === sha256) {
        return {
          ok: true,
          duplicate: {
            round_id: r.round_id,
            device_id: deviceId,
            sha256,
            received_at: iso(existing.received_at),
            duplicate: true,
          },
        };
      }
      return fail("nonce_used", 409, `device ${deviceId} already reported for round ${r.round_id}; its nonce is used`);
    }
    if (!isCollecting(r.state)) return fail("round_closed", 409, `round ${r.round_id} is ${r.state}`);
    if (!issued || !issued.selected || issued.nonce !== nonce) {
      return fail("nonce_invalid", 403, `this nonce was not issued to device ${deviceId} for round ${r.round_id}`);
    }
    return { ok: true, duplicate: null };
  }

  /** Closes the collecting round if its deadline has passed. */
  private expire(now: number): void {
    const r = this.latest;
    if (r && isCollecting(r.state) && now >= r.deadline) {
      this.close(r.seq, "deadline", now);
      this.refreshLatest(r.seq);
    }
  }

  private close(seq: number, reason: CloseReason, now: number): void {
    this.sql.exec(
      "UPDATE rounds SET state = 'closed', closed_at = ?, close_reason = ? WHERE seq = ? AND state IN ('open', 'collecting')",
      now,
      reason,
      seq,
    );
    this.refreshLatest(seq);
    // The alarm seals the round's payloads into R2 (and re-arms the next deadline); setAlarm is durable with this write.
    void this.ctx.storage.setAlarm(now);
  }

  private purgedFail(r: RoundRow) {
    return fail(
      "not_found",
      404,
      `the payloads of round ${r.round_id} were deleted at ${iso(r.payloads_purged_at!)}, after the retention period (FEDGE_UPDATE_RETENTION_DAYS); their metadata is still listed`,
    );
  }

  private isRevoked(deviceId: string): boolean {
    return this.sql.exec("SELECT 1 FROM revoked_devices WHERE device_id = ?", deviceId).toArray().length > 0;
  }

  private checkinRow(seq: number, deviceId: string): CheckinRow | null {
    return (
      this.sql
        .exec<CheckinRow>(
          "SELECT selected, nonce, public_key, api_key_id FROM checkins WHERE round_seq = ? AND device_id = ?",
          seq,
          deviceId,
        )
        .toArray()[0] ?? null
    );
  }

  /** Brings tables created by an earlier version of this class up to date (state persisted under .wrangler/state). */
  private migrateColumns(): void {
    const columns = (table: string) =>
      new Set(
        this.sql
          .exec<{ name: string }>(`PRAGMA table_info(${table})`)
          .toArray()
          .map((c) => c.name),
      );
    const rounds = columns("rounds");
    if (!rounds.has("payloads_purged_at")) this.sql.exec("ALTER TABLE rounds ADD COLUMN payloads_purged_at INTEGER");
    if (!rounds.has("sealed_at")) {
      this.sql.exec("ALTER TABLE rounds ADD COLUMN sealed_at INTEGER");
      // Rounds closed before payloads went through UpdateStore are already in R2, one object per update.
      this.sql.exec("UPDATE rounds SET sealed_at = closed_at WHERE state NOT IN ('open', 'collecting')");
    }
    const checkins = columns("checkins");
    if (!checkins.has("public_key")) this.sql.exec("ALTER TABLE checkins ADD COLUMN public_key TEXT");
    if (!checkins.has("api_key_id")) this.sql.exec("ALTER TABLE checkins ADD COLUMN api_key_id TEXT");
    if (columns("updates").has("r2_key")) this.sql.exec("ALTER TABLE updates RENAME COLUMN r2_key TO storage_key");
  }

  private refreshLatest(seq: number): void {
    if (this.latest && this.latest.seq === seq) {
      this.latest = this.sql.exec<RoundRow>("SELECT * FROM rounds WHERE seq = ?", seq).toArray()[0] ?? null;
    }
  }

  private row(roundId: string): RoundRow | null {
    if (this.latest && this.latest.round_id === roundId) return this.latest;
    return this.sql.exec<RoundRow>("SELECT * FROM rounds WHERE round_id = ?", roundId).toArray()[0] ?? null;
  }

  private updateRow(seq: number, deviceId: string): UpdateRow | null {
    return (
      this.sql
        .exec<UpdateRow>("SELECT * FROM updates WHERE round_seq = ? AND device_id = ?", seq, deviceId)
        .toArray()[0] ?? null
    );
  }

  private toStatus(r: RoundRow): RoundStatus {
    return {
      round_id: r.round_id,
      model: r.model,
      state: r.state,
      params: JSON.parse(r.params) as RoundParams,
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
    };
  }
}
