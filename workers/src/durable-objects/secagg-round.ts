/**
 * @module
 * SecAggRound: the edge's side of secure aggregation for one `distributed` round (`round:<id>`), a SQLite-backed
 * Durable Object around `@fedge/secagg`'s `SecAggServer`. The server is deterministic in the messages it accepted, so
 * the object keeps an append-only log of them (and of each stage's close) and rebuilds the server from it when it
 * wakes; a refused message is never logged, so it changes no state. When the round finishes, only the modular sum and
 * the survivors are kept (the log, masked inputs and shares included, is deleted); when it aborts, only the reason.
 *
 * Callers are the edge's routes, which validate the message against its wire schema and authenticate the device (its
 * registered Ed25519 key is passed in with its advertisement) before anything reaches this object. Every method answers a `Result`: the `SecAggError` of a refused
 * message becomes a failure with the HTTP status the edge gives it (domain-errors.ts).
 */
import { DurableObject } from "cloudflare:workers";
import {
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
import { fail, type Result } from "../training/result.ts";

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

export class SecAggRound extends DurableObject<Bindings> {
  private readonly sql: SqlStorage;
  private server: SecAggServer | undefined;
  private config: SecAggRoundConfig | undefined;
  /** Identity keys of the devices that advertised, as the edge's registry gave them. */
  private readonly identities = new Map<string, Uint8Array>();
  /** One change at a time: the server's steps await WebCrypto, and a second message must not interleave with them. */
  private queue: Promise<unknown> = Promise.resolve();

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

  /** Opens secure aggregation for the round; a second call with the same configuration is a no-op. */
  async open(config: SecAggRoundConfig): Promise<Result<{ stage: SecAggServerStage }>> {
    return this.serial(async () => {
      if (this.config) {
        const same =
          this.config.roundId === config.roundId &&
          this.config.bits === config.bits &&
          this.config.length === config.length &&
          (this.config.minInputs ?? 1) === (config.minInputs ?? 1);
        if (!same) return fail("conflict", 409, `secure aggregation of ${this.config.roundId} is already open`);
        return { ok: true, stage: this.stageNow() };
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
   * Ends the current stage (the round's driver calls it at the stage's deadline, or once every device answered). After
   * the unmask stage this finishes the round and keeps only the sum. An abort keeps only its reason.
   */
  async closeStage(): Promise<Result<{ stage: SecAggServerStage }>> {
    return this.serial(async () => {
      const server = this.server;
      if (!server) return this.closedFailure();
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
        return { ok: true, stage: server.stage };
      } catch (e) {
        if (server.stage === "aborted") this.keepOutcome(false, { reason: server.abortReason ?? String(e) });
        return failureOf(e);
      }
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

  /** How many devices answered the current stage so far (0 outside the stages). */
  async answered(): Promise<number> {
    return this.server?.answered ?? 0;
  }

  /** The stage the round is in (`finished` and `aborted` included). */
  async stage(): Promise<SecAggServerStage | "not_open"> {
    if (!this.config) return "not_open";
    return this.stageNow();
  }

  /** The finished round's modular sum, for the aggregator. */
  async outcome(): Promise<Result<{ outcome: SecAggOutcome }>> {
    if (!this.config) return this.closedFailure();
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

  /** Applies a device message and logs it only when the server accepted it. */
  /**
   * Applies a device message and logs it only when the server accepted it. The very same message again (a retry whose
   * answer was lost) is a duplicate: answered `duplicate: true`, changing nothing; a different one from the same device
   * in the same stage stays a conflict.
   */
  private record(entry: Exclude<LogEntry, { kind: "close" }>): Promise<Result<{ duplicate: boolean }>> {
    return this.serial(async () => {
      if (!this.server) return this.closedFailure();
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

  private async read<T extends object>(answer: () => T, from: SecAggServerStage): Promise<Result<T>> {
    const stage = this.server?.stage;
    if (stage === undefined) return this.closedFailure();
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
    this.identities.clear();
  }

  private closedFailure<T>(): Result<T> {
    if (!this.config) return fail("round_not_found", 404, "secure aggregation is not open for this round");
    const row = this.sql.exec<{ finished: number; body: string }>("SELECT finished, body FROM outcome").toArray()[0];
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
