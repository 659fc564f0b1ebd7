/**
 * @module
 * SecAggRound: the edge's side of secure aggregation for one `distributed` round (`round:<id>`), a SQLite-backed
 * Durable Object around `@fedge/secagg`'s `SecAggServer`. The server is deterministic in the messages it accepted, so
 * the object keeps an append-only log of them (and of each stage's close) and rebuilds the server from it when it
 * wakes; a refused message is never logged, so it changes no state. When the round finishes, only the modular sum and
 * the survivors are kept (the log, masked inputs and shares included, is deleted); when it aborts, only the reason.
 *
 * Each stage closes at its own deadline, fixed when the round opened (`secAggStageDeadlinesMs`: advertise with the
 * round's collecting deadline, each later stage `stage_s` after it) and stated in the devices' round task: the object's
 * single alarm is set to the current stage's deadline, and every call first closes the stages whose deadline passed
 * (the alarm may run late), so a message to a stage past its deadline is refused with 409 `stage_closed` and changes
 * nothing. The aggregator may close a stage earlier, once every device still in the round answered it. A close below
 * the round's threshold aborts the round; the edge keeps it charged.
 *
 * Callers are the edge's routes, which validate the message against its wire schema and authenticate the device (its
 * registered Ed25519 key is passed in with its advertisement) before anything reaches this object. Every method answers a `Result`: the `SecAggError` of a refused
 * message becomes a failure with the HTTP status the edge gives it (domain-errors.ts).
 */
import { DurableObject } from "cloudflare:workers";
import {
  SECAGG_DEVICE_STAGES,
  fromBase64Url,
  type SecAggAdvertiseKeys,
  type SecAggConsistencyCheck,
  type SecAggMaskedInput,
  type SecAggShareKeys,
  type SecAggUnmaskShares,
  type SecAggConsistencyRequest,
  type SecAggRoster,
  type SecAggShareRelay,
  type SecAggUnmaskRequest,
} from "@fedge/protocol";
import { encodeVector, SecAggError, SecAggServer, type SecAggServerStage } from "@fedge/secagg";
import type { Bindings } from "../env.ts";
import { fedgeErrorOf } from "../domain-errors.ts";
import { fail, type Fail, type Result } from "../training/result.ts";

export function secAggStub(env: Bindings, roundId: string) {
  return env.SECAGG.getByName(`round:${roundId}`);
}

export interface SecAggRoundConfig {
  roundId: string;
  /** b: inputs live in Z_{2^b}. */
  bits: number;
  /** d': values per input. */
  length: number;
  /** The fewest inputs a released sum holds: the round's charged noise shares (`noise_shares`). @default 1 */
  minInputs?: number;
  /**
   * C: the most devices of the round that may collude with the edge (its noise's `corrupt_devices`); the degree and
   * threshold are chosen so that all C in the roster still leave no device's secrets both recoverable. @default 0
   */
  corruptDevices?: number;
  /** When each stage closes, in ms since the epoch, in `SECAGG_DEVICE_STAGES` order (`secAggStageDeadlinesMs`). */
  stageDeadlines: number[];
}

export interface SecAggOutcome {
  /** Σ x_u mod 2^b over the survivors, d' little-endian 32-bit words, base64url. */
  sum: string;
  survivors: string[];
  bits: number;
  length: number;
}

type LogEntry =
  | { kind: "advertise"; message: SecAggAdvertiseKeys; identityKey: string }
  | { kind: "share-keys"; message: SecAggShareKeys }
  | { kind: "masked-input"; message: SecAggMaskedInput }
  | { kind: "consistency"; message: SecAggConsistencyCheck }
  | { kind: "unmask"; message: SecAggUnmaskShares }
  | { kind: "close" };

type DeviceStage = (typeof SECAGG_DEVICE_STAGES)[number];

/** The stage a device message answers. */
const STAGE_OF: Record<Exclude<LogEntry, { kind: "close" }>["kind"], DeviceStage> = {
  advertise: "advertise",
  "share-keys": "share-keys",
  "masked-input": "masked-input",
  consistency: "consistency",
  unmask: "unmask",
};

/** Position of `stage` in the round: the device stages 0–4, then the ends. */
function stageIndex(stage: SecAggServerStage): number {
  const i = (SECAGG_DEVICE_STAGES as readonly string[]).indexOf(stage);
  return i >= 0 ? i : SECAGG_DEVICE_STAGES.length;
}

export class SecAggRound extends DurableObject<Bindings> {
  private readonly sql: SqlStorage;
  private server: SecAggServer | undefined;
  private config: SecAggRoundConfig | undefined;
  /** Identity keys of the devices that advertised, as the edge's registry gave them. */
  private readonly identities = new Map<string, Uint8Array>();
  /** One change at a time: the server's steps await WebCrypto, and a second message must not interleave with them. */
  private queue: Promise<unknown> = Promise.resolve();
  /** Devices that may answer the current stage: those that answered the stage before (unknown while advertising). */
  private expected: number | undefined;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    void ctx.blockConcurrencyWhile(async () => {
      // Tables appear with `open`, the first legitimate write: an object addressed by a made-up round keeps no storage.
      const opened = this.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'config'").toArray();
      if (opened.length === 0) return;
      const row = this.sql.exec<{ body: string }>("SELECT body FROM config").toArray()[0];
      if (!row) return;
      this.config = JSON.parse(row.body) as SecAggRoundConfig;
      if (this.sql.exec("SELECT 1 FROM outcome").toArray().length > 0) return;
      this.server = this.newServer(this.config);
      for (const { body } of this.sql.exec<{ body: string }>("SELECT body FROM log ORDER BY seq")) {
        await this.apply(JSON.parse(body) as LogEntry);
      }
    });
  }

  /**
   * Opens secure aggregation for the round and sets the alarm to the advertise deadline; a second call with the same
   * configuration is a no-op. Past the advertise deadline nothing opens (409 `stage_closed`, no storage).
   */
  async open(config: SecAggRoundConfig): Promise<Result<{ stage: SecAggServerStage }>> {
    return this.serial(async () => {
      if (this.config) {
        await this.catchUp();
        const same =
          this.config.roundId === config.roundId &&
          this.config.bits === config.bits &&
          this.config.length === config.length &&
          (this.config.minInputs ?? 1) === (config.minInputs ?? 1) &&
          (this.config.corruptDevices ?? 0) === (config.corruptDevices ?? 0);
        if (!same) return fail("conflict", 409, `secure aggregation of ${this.config.roundId} is already open`);
        return { ok: true, stage: this.stageNow() };
      }
      if (config.stageDeadlines.length !== SECAGG_DEVICE_STAGES.length) {
        throw new RangeError(`stageDeadlines: expected ${SECAGG_DEVICE_STAGES.length} deadlines`);
      }
      if (Date.now() >= config.stageDeadlines[0]!) {
        return fail(
          "stage_closed",
          409,
          `the advertise stage of ${config.roundId} closed at ${iso(config.stageDeadlines[0]!)}`,
        );
      }
      const server = this.newServer(config); // parameters are chosen when the advertise stage closes
      this.sql.exec(`CREATE TABLE IF NOT EXISTS config (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL)`);
      this.sql.exec(`CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)`);
      this.sql.exec(
        `CREATE TABLE IF NOT EXISTS outcome (id INTEGER PRIMARY KEY CHECK (id = 1), finished INTEGER NOT NULL, body TEXT NOT NULL)`,
      );
      this.sql.exec("INSERT INTO config (id, body) VALUES (1, ?)", JSON.stringify(config));
      this.config = config;
      this.server = server;
      await this.ctx.storage.setAlarm(config.stageDeadlines[0]!);
      return { ok: true, stage: server.stage };
    });
  }

  async advertise(message: SecAggAdvertiseKeys, identityKey: string): Promise<Result<{ duplicate: boolean }>> {
    return this.record({ kind: "advertise", message, identityKey });
  }

  async shareKeys(message: SecAggShareKeys): Promise<Result<{ duplicate: boolean }>> {
    return this.record({ kind: "share-keys", message });
  }

  async maskedInput(message: SecAggMaskedInput): Promise<Result<{ duplicate: boolean }>> {
    return this.record({ kind: "masked-input", message });
  }

  async consistency(message: SecAggConsistencyCheck): Promise<Result<{ duplicate: boolean }>> {
    return this.record({ kind: "consistency", message });
  }

  async unmask(message: SecAggUnmaskShares): Promise<Result<{ duplicate: boolean }>> {
    return this.record({ kind: "unmask", message });
  }

  /**
   * Ends stage `stage` before its deadline (the round's driver calls it once every device still in the round answered
   * it). A stage that already closed (its deadline passed, or another close) is left as it is: the answer is the stage
   * now. After the unmask stage this finishes the round and keeps only the sum; below the threshold it aborts, keeping
   * only the reason. Without `stage`, closes whichever stage is current.
   */
  async closeStage(stage?: DeviceStage): Promise<Result<{ stage: SecAggServerStage }>> {
    return this.serial(async () => {
      const stuck = await this.catchUp();
      if (stuck) return stuck;
      const server = this.server;
      if (!server && stage !== undefined && this.stageNow() === "finished") return { ok: true, stage: "finished" };
      if (!server) return this.closedFailure();
      if (stage !== undefined && server.stage !== stage) return { ok: true, stage: server.stage };
      const closed = await this.closeCurrent();
      if (!closed.ok) return closed;
      await this.scheduleAlarm();
      return { ok: true, stage: this.stageNow() };
    });
  }

  /** The current stage's deadline passed: close it (and any later one that is also past), then wait for the next. */
  override async alarm(): Promise<void> {
    await this.serial(async () => {
      // A close that failed without aborting (a bad share) is not retried by the alarm: the aggregator sees it.
      if (!(await this.catchUp())) await this.scheduleAlarm();
    });
  }

  /** What a device of the round reads next: the roster, its relay, the survivors, or its unmask request. */
  async roster(): Promise<Result<{ roster: SecAggRoster }>> {
    return this.read(() => ({ roster: this.rosterMessage! }), "share-keys");
  }

  async relay(deviceId: string): Promise<Result<{ relay: SecAggShareRelay }>> {
    return this.read(() => ({ relay: this.server!.relayFor(deviceId) }), "masked-input");
  }

  async consistencyRequest(): Promise<Result<{ request: SecAggConsistencyRequest }>> {
    return this.read(
      () => ({ request: { round_id: this.config!.roundId, survivors: [...this.server!.survivors] } }),
      "consistency",
    );
  }

  async unmaskRequest(deviceId: string): Promise<Result<{ request: SecAggUnmaskRequest }>> {
    return this.read(() => ({ request: this.server!.unmaskRequestFor(deviceId) }), "unmask");
  }

  /**
   * Where the round stands, after closing the stages whose deadline passed: the stage (`finished` and `aborted`
   * included), its deadline, how many devices answered it so far and how many may (unknown while advertising).
   */
  async progress(): Promise<{
    stage: SecAggServerStage | "not_open";
    deadline?: string;
    answered: number;
    expected?: number;
  }> {
    return this.serial(async () => {
      if (!this.config) return { stage: "not_open" as const, answered: 0 };
      await this.catchUp();
      const stage = this.stageNow();
      const at = stageIndex(stage);
      return {
        stage,
        ...(at < SECAGG_DEVICE_STAGES.length ? { deadline: iso(this.config.stageDeadlines[at]!) } : {}),
        answered: this.server?.answered ?? 0,
        ...(this.server && this.expected !== undefined ? { expected: this.expected } : {}),
      };
    });
  }

  /** The stage the round is in (`finished` and `aborted` included). */
  async stage(): Promise<SecAggServerStage | "not_open"> {
    return (await this.progress()).stage;
  }

  /** How many devices answered the current stage so far (0 outside the stages). */
  async answered(): Promise<number> {
    return (await this.progress()).answered;
  }

  /** The finished round's modular sum, for the aggregator. */
  async outcome(): Promise<Result<{ outcome: SecAggOutcome }>> {
    if (!this.config) return this.closedFailure();
    await this.serial(() => this.catchUp());
    const row = this.sql.exec<{ finished: number; body: string }>("SELECT finished, body FROM outcome").toArray()[0];
    if (!row) return fail("conflict", 409, "secure aggregation of this round has not finished");
    if (row.finished !== 1) return this.closedFailure();
    return { ok: true, outcome: JSON.parse(row.body) as SecAggOutcome };
  }

  private rosterMessage: SecAggRoster | undefined;

  private async apply(entry: LogEntry): Promise<void> {
    const server = this.server!;
    switch (entry.kind) {
      case "advertise":
        this.identities.set(entry.message.device_id, fromBase64Url(entry.identityKey));
        try {
          await server.receiveAdvertise(entry.message);
        } catch (e) {
          this.identities.delete(entry.message.device_id);
          throw e;
        }
        return;
      case "share-keys":
        return server.receiveShareKeys(entry.message);
      case "masked-input":
        return server.receiveMaskedInput(entry.message);
      case "consistency":
        return server.receiveConsistency(entry.message);
      case "unmask":
        return server.receiveUnmask(entry.message);
      case "close":
        this.expected = server.answered;
        switch (server.stage) {
          case "advertise":
            this.rosterMessage = server.closeAdvertise();
            return;
          case "share-keys":
            return server.closeShareKeys();
          case "masked-input":
            server.closeMaskedInput();
            return;
          case "consistency":
            return server.closeConsistency();
          default:
            throw new SecAggError("bad-message", `no stage to close in ${server.stage}`);
        }
    }
  }

  /**
   * Applies a device message and logs it only when the server accepted it. The very same message again (a retry whose
   * answer was lost) is a duplicate: answered `duplicate: true`, changing nothing; a different one from the same device
   * in the same stage stays a conflict.
   */
  private record(entry: Exclude<LogEntry, { kind: "close" }>): Promise<Result<{ duplicate: boolean }>> {
    return this.serial(async () => {
      const stuck = await this.catchUp();
      if (stuck) return stuck;
      if (!this.server) return this.closedFailure(STAGE_OF[entry.kind]);
      const late = this.lateFailure(STAGE_OF[entry.kind]);
      if (late) return late;
      const body = JSON.stringify(entry);
      try {
        await this.apply(entry);
      } catch (e) {
        if (e instanceof SecAggError && e.reason === "replayed") {
          const same = this.sql.exec("SELECT 1 FROM log WHERE body = ? LIMIT 1", body).toArray().length > 0;
          if (same) return { ok: true, duplicate: true };
        }
        return failureOf(e);
      }
      this.sql.exec("INSERT INTO log (body) VALUES (?)", body);
      return { ok: true, duplicate: false };
    });
  }

  private async read<T extends object>(answer: () => T, from: DeviceStage): Promise<Result<T>> {
    return this.serial(() => this.readNow(answer, from));
  }

  private async readNow<T extends object>(answer: () => T, from: DeviceStage): Promise<Result<T>> {
    const stuck = await this.catchUp();
    if (stuck) return stuck;
    const stage = this.server?.stage;
    if (stage === undefined) return this.closedFailure(from);
    const late = this.lateFailure(from);
    if (late) return late;
    if (stage !== from) return fail("conflict", 409, `the round is in the ${stage} stage, not ${from}`);
    try {
      return { ok: true, ...answer() };
    } catch (e) {
      return failureOf(e);
    }
  }

  private newServer(config: SecAggRoundConfig): SecAggServer {
    return new SecAggServer({
      roundId: config.roundId,
      bits: config.bits,
      length: config.length,
      ...(config.minInputs !== undefined ? { minInputs: config.minInputs } : {}),
      ...(config.corruptDevices !== undefined ? { corruptDevices: config.corruptDevices } : {}),
      identityKeyOf: (id) => this.identities.get(id),
    });
  }

  private stageNow(): SecAggServerStage {
    if (this.server) return this.server.stage;
    const row = this.sql.exec<{ finished: number }>("SELECT finished FROM outcome").toArray()[0];
    return row?.finished === 1 ? "finished" : "aborted";
  }

  private keepOutcome(finished: boolean, body: object): void {
    this.sql.exec(
      "INSERT OR REPLACE INTO outcome (id, finished, body) VALUES (1, ?, ?)",
      finished ? 1 : 0,
      JSON.stringify(body),
    );
    this.sql.exec("DELETE FROM log");
    this.server = undefined;
    this.expected = undefined;
    this.identities.clear();
    void this.ctx.storage.deleteAlarm();
  }

  /**
   * Closes every stage whose deadline is past, in order, as the alarm would. A failure only when a close failed for
   * another reason than the round aborting (which it records, like any close below the threshold).
   */
  private async catchUp(now = Date.now()): Promise<Fail | undefined> {
    while (this.server && this.config) {
      const at = stageIndex(this.server.stage);
      if (at >= SECAGG_DEVICE_STAGES.length || now < this.config.stageDeadlines[at]!) break;
      const closed = await this.closeCurrent();
      if (!closed.ok && this.server) return closed;
    }
    return undefined;
  }

  /** Closes the current stage: logs the close, or finishes the round after unmask; an abort keeps only its reason. */
  private async closeCurrent(): Promise<{ ok: true } | Fail> {
    const server = this.server!;
    try {
      if (server.stage === "unmask") {
        const sum = await server.finish();
        this.keepOutcome(true, {
          sum: encodeVector(sum),
          survivors: [...server.survivors],
          bits: this.config!.bits,
          length: this.config!.length,
        });
      } else {
        await this.apply({ kind: "close" });
        this.sql.exec("INSERT INTO log (body) VALUES (?)", JSON.stringify({ kind: "close" }));
      }
      return { ok: true };
    } catch (e) {
      if (server.stage === "aborted") this.keepOutcome(false, { reason: server.abortReason ?? String(e) });
      return failureOf(e);
    }
  }

  /** The alarm rings at the current stage's deadline; none once the round has ended. */
  private async scheduleAlarm(): Promise<void> {
    const at = this.server ? stageIndex(this.server.stage) : SECAGG_DEVICE_STAGES.length;
    if (at < SECAGG_DEVICE_STAGES.length) await this.ctx.storage.setAlarm(this.config!.stageDeadlines[at]!);
    else await this.ctx.storage.deleteAlarm();
  }

  /** 409 `stage_closed` for a message or read of a stage the round has moved past. */
  private lateFailure(stage: DeviceStage): Fail | undefined {
    const now = this.server?.stage;
    if (now === undefined || stageIndex(now) <= SECAGG_DEVICE_STAGES.indexOf(stage)) return undefined;
    return fail(
      "stage_closed",
      409,
      `the ${stage} stage of ${this.config!.roundId} has closed (deadline ${iso(this.config!.stageDeadlines[SECAGG_DEVICE_STAGES.indexOf(stage)]!)}); the round is in the ${now} stage`,
    );
  }

  /** Why nothing more is taken: never opened, aborted (`round_closed`), or finished (`stage_closed` for `stage`). */
  private closedFailure<T>(stage?: DeviceStage): Result<T> {
    if (!this.config) return fail("round_not_found", 404, "secure aggregation is not open for this round");
    const row = this.sql.exec<{ finished: number; body: string }>("SELECT finished, body FROM outcome").toArray()[0];
    if (row?.finished === 1 && stage !== undefined) {
      return fail("stage_closed", 409, `the ${stage} stage has closed: secure aggregation of this round has finished`);
    }
    if (row?.finished === 1) return fail("round_closed", 409, "secure aggregation of this round has finished");
    const reason = row ? (JSON.parse(row.body) as { reason: string }).reason : "unknown";
    return fail("round_closed", 409, `secure aggregation of this round aborted: ${reason}`);
  }

  private serial<T>(step: () => Promise<T>): Promise<T> {
    const next = this.queue.then(step, step);
    this.queue = next.catch(() => undefined);
    return next;
  }
}

function failureOf(e: unknown): ReturnType<typeof fail> {
  const mapped = fedgeErrorOf(e);
  if (!mapped) throw e;
  return fail(mapped.code, mapped.status, mapped.message);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
