/**
 * @module
 * The round engine: one population's rounds, from a checkpoint to the next, with no HTTP. The edge round runner
 * (`fedge aggregate`) and `fedge simulate` both drive it the same way:
 *
 * ```ts
 * const engine = await RoundEngine.create({ config, backend, store, initialModel });
 * const opened = await engine.openRound(roundId);        // ledger records the round (budget checked), checkpoint saved
 * // … send opened.instructions to devices, collect updates …
 * const summary = await engine.aggregateRound(updates);  // streams updates into the Backend, optimizer step, saved
 * const decision = publishGate({ candidate: evaluateModel(engine.model, heldOut), … });
 * // … export + publish when decision.publish …
 * await engine.completeRound({ published: decision.publish, reason: decision.reason, … });
 * ```
 *
 * Crash safety (each step commits one atomic checkpoint; see `checkpoint.ts`):
 * - privacy is spent when a round is OPENED (before any noise is drawn): the ledger entry and `current = {id,
 *   "opened"}` are saved together. Re-opening the same round id after a crash reuses that entry: never spent twice.
 *   (A round opened but never aggregated stays spent: its devices may have seen the task.)
 * - the new model is saved with `current.phase = "aggregated"` before anything is published; re-running a round in
 *   that phase returns the saved result without drawing noise again (a second noisy release of the same data would
 *   cost privacy), so the model is never lost and never recomputed.
 * - a round in progress blocks opening a different one until it is completed or abandoned.
 */
import type { Backend, ServerOptimizer } from "@fedge/gpu-node";
import { cryptoRandomBytes, type RandomBytes } from "@fedge/privacy";
import { trainableLength, withTrainable, type MlpParams } from "@fedge/ml";
import { assertValidMlp, flattenTrainable } from "@fedge/ml";
import { optimizerOptionsOf, type PopulationConfig } from "./config.ts";
import { PrivacyLedger } from "@fedge/privacy";
import {
  CheckpointError,
  type Checkpoint,
  type CheckpointStore,
  type CurrentRound,
  type PublishRecord,
  type RoundSummary,
} from "./checkpoint.ts";
import { initialClipStateOf, strategyFromConfig } from "./strategy/from-config.ts";
import type { ClientUpdate, FitInstructions, Strategy } from "./strategy/strategy.ts";

/** Test/ops hooks, each called right after the named checkpoint was committed (throw to simulate a crash there). */
export interface RoundHooks {
  afterOpen?: (checkpoint: Checkpoint) => void | Promise<void>;
  afterAggregate?: (checkpoint: Checkpoint) => void | Promise<void>;
}

/** Options of {@link RoundEngine.create}. */
export interface RoundEngineOptions {
  /** The population config (validated, see `config.ts`). */
  config: PopulationConfig;
  backend: Backend;
  /**
   * Where the checkpoint lives; without one the engine keeps state in memory only.
   * @default undefined (in memory)
   */
  store?: CheckpointStore;
  /** The model of round 0, used when the store holds no checkpoint. */
  initialModel?: MlpParams;
  /**
   * CSPRNG for the server's noise (tests inject a seeded stream).
   * @default cryptoRandomBytes (crypto.getRandomValues)
   */
  random?: RandomBytes;
  /**
   * Clock for ledger and log timestamps (ISO 8601).
   * @default () => new Date().toISOString()
   */
  now?: () => string;
  /** Warnings sink. @default console.warn */
  log?: (message: string) => void;
  hooks?: RoundHooks;
  /** Strategy override (e.g. a custom one); @default strategyFromConfig(config) */
  strategy?: Strategy;
}

/** What {@link RoundEngine.openRound} returns. */
export interface OpenedRound {
  roundId: string;
  round: number;
  /** True when this round id was already open (resumed after a crash): nothing was spent again. */
  resumed: boolean;
  phase: "opened" | "aggregated";
  /** What to send to devices. */
  instructions: FitInstructions;
  /** ε spent including this round, at the budget's δ (`null` when the population is not DP). */
  epsilon: number | null;
}

/** Options of {@link RoundEngine.completeRound}. */
export interface CompleteRoundOptions {
  published: boolean;
  reason: string;
  /** Published version (required when `published`). */
  version?: number;
  accuracy?: number;
  sha256?: string;
}

/**
 * Why the engine refused a call in its current state:
 * - `round_in_progress`: another round is open or aggregated; complete or abandon it first;
 * - `round_already_run`: the round id was used before for this population;
 * - `no_open_round`: there is no round to aggregate or abandon;
 * - `not_aggregated`: there is no aggregated round to complete;
 * - `already_aggregated`: an aggregated round must be completed, not abandoned;
 * - `version_not_published`: a rollback to a version this aggregator never published.
 */
export type RoundStateErrorReason =
  | "round_in_progress"
  | "round_already_run"
  | "no_open_round"
  | "not_aggregated"
  | "already_aggregated"
  | "version_not_published";

/** A {@link RoundEngine} call refused in the engine's current state. A domain error: no HTTP status. */
export class RoundStateError extends Error {
  readonly reason: RoundStateErrorReason;
  constructor(reason: RoundStateErrorReason, message: string) {
    super(message);
    this.name = "RoundStateError";
    this.reason = reason;
  }
}

function mismatch(message: string): CheckpointError {
  return new CheckpointError(message, { reason: "config_mismatch" });
}

const ROUND_ID = /^[A-Za-z0-9_-]{1,64}$/;

export class RoundEngine {
  readonly config: PopulationConfig;
  readonly backend: Backend;
  readonly strategy: Strategy;
  private readonly store: CheckpointStore | undefined;
  private readonly random: RandomBytes;
  private readonly now: () => string;
  private readonly log: (message: string) => void;
  private readonly hooks: RoundHooks;
  private readonly optimizer: ServerOptimizer;
  private state: Checkpoint;
  /**
   * The live ledger of `state.ledger` (keyed by that object): its accountant caches the composed history, so a
   * charge composes only the new round instead of rebuilding the ledger from JSON (seconds with PLD and many rounds).
   */
  private ledgerCache: { json: NonNullable<Checkpoint["ledger"]>; ledger: PrivacyLedger } | null = null;

  private constructor(o: RoundEngineOptions, strategy: Strategy, optimizer: ServerOptimizer, state: Checkpoint) {
    this.config = o.config;
    this.backend = o.backend;
    this.strategy = strategy;
    this.store = o.store;
    this.random = o.random ?? cryptoRandomBytes;
    this.now = o.now ?? (() => new Date().toISOString());
    this.log = o.log ?? ((m) => console.warn(m));
    this.hooks = o.hooks ?? {};
    this.optimizer = optimizer;
    this.state = state;
  }

  /** Loads the checkpoint from `store` (or starts from `initialModel`) and puts the optimizer state on the backend. */
  static async create(o: RoundEngineOptions): Promise<RoundEngine> {
    const config = o.config;
    const strategy = o.strategy ?? strategyFromConfig(config);
    let state = (await o.store?.load()) ?? null;
    const opt = optimizerOptionsOf(config);
    if (state) {
      if (state.population !== config.model)
        throw mismatch(`checkpoint is for "${state.population}", config is for "${config.model}"`);
      if (state.trainable !== config.trainable)
        throw mismatch(`checkpoint trains "${state.trainable}", config says "${config.trainable}"`);
      if (state.optimizer.kind !== opt.kind)
        throw mismatch(`checkpoint optimizer is "${state.optimizer.kind}", config asks for "${opt.kind}"`);
      if ((state.ledger === null) !== (config.privacy.mode === "none")) {
        throw mismatch(`checkpoint and config disagree on whether "${config.model}" is a DP population`);
      }
      const optimizer = await o.backend.createOptimizer({ ...opt, initialWeights: state.optimizer.weights });
      await optimizer.load(state.optimizer);
      return new RoundEngine(o, strategy, optimizer, state);
    }
    if (!o.initialModel) throw new TypeError("RoundEngine: no checkpoint found and no initialModel given");
    try {
      assertValidMlp(o.initialModel);
    } catch (e) {
      throw new RangeError(`initialModel: ${(e as Error).message}`, { cause: e });
    }
    const weights = flattenTrainable(o.initialModel, config.trainable);
    const optimizer = await o.backend.createOptimizer({ ...opt, initialWeights: weights });
    const ledger =
      config.privacy.mode === "none"
        ? null
        : new PrivacyLedger({ population: config.model, accountant: config.privacy.accountant }).toJSON();
    state = {
      version: 1,
      population: config.model,
      trainable: config.trainable,
      round: 0,
      model: withTrainable(o.initialModel, config.trainable, weights),
      optimizer: await optimizer.state(),
      clip: initialClipStateOf(config),
      ledger,
      current: null,
      serving: null,
      publishLog: [],
    };
    const engine = new RoundEngine(o, strategy, optimizer, state);
    await engine.commit(state);
    return engine;
  }

  /** The current checkpoint (do not mutate). */
  get checkpoint(): Checkpoint {
    return this.state;
  }

  /** The current global model (after the last aggregated round). */
  get model(): MlpParams {
    return this.state.model;
  }

  /** Length of every update vector. */
  get updateLength(): number {
    return trainableLength(this.state.model, this.state.trainable);
  }

  /** ε spent so far at the budget's δ, or `null` for a non-DP population. */
  privacySpent(): { epsilon: number; delta: number } | null {
    const budget = this.config.privacy.budget;
    if (!this.state.ledger || !budget) return null;
    return { epsilon: this.ledgerOf(this.state.ledger).spent(budget.delta), delta: budget.delta };
  }

  /**
   * ε at the budget's δ against the edge (`PrivacyLedger.spentAgainstEdge`: no amplification by sampling, distributed
   * rounds for zero-out neighbours); +∞ once a central round ran (the edge saw clipped updates); `null` for a non-DP
   * population.
   */
  privacySpentAgainstEdge(): number | null {
    const budget = this.config.privacy.budget;
    if (!this.state.ledger || !budget) return null;
    return this.ledgerOf(this.state.ledger).spentAgainstEdge(budget.delta);
  }

  /** The live ledger for a checkpoint's ledger state (cached; rebuilt from JSON only when the state is new). */
  private ledgerOf(json: NonNullable<Checkpoint["ledger"]>): PrivacyLedger {
    if (this.ledgerCache?.json !== json) this.ledgerCache = { json, ledger: PrivacyLedger.fromJSON(json) };
    return this.ledgerCache.ledger;
  }

  private async commit(next: Checkpoint): Promise<void> {
    await this.store?.save(next);
    this.state = next;
  }

  /**
   * Opens (or resumes) round `roundId`: checks the budget and records the round in the ledger, then commits the
   * checkpoint, all before any noise is drawn. Throws `PrivacyBudgetExceededError` and changes nothing when the
   * round would exceed the budget; {@link RoundStateError} when another round is in progress or the id was used.
   */
  async openRound(roundId: string): Promise<OpenedRound> {
    if (typeof roundId !== "string" || !ROUND_ID.test(roundId)) {
      throw new RangeError(`round id must match ${ROUND_ID}, got ${JSON.stringify(roundId)}`);
    }
    const s = this.state;
    // Distributed mode: one public rotation seed per round, drawn once and kept with the round (a resumed round
    // must hand its devices the same rotation).
    const distributed = this.strategy.privacyMode === "distributed";
    const seedText = distributed ? (s.current?.rotationSeed ?? base64Url(randomBytes(this.random, 32))) : undefined;
    const planCtx = {
      round: s.current?.round ?? s.round + 1,
      clip: s.clip,
      length: this.updateLength,
      ...(seedText ? { rotationSeed: fromBase64Url(seedText) } : {}),
    };
    const instructions = this.strategy.configureFit(planCtx);
    if (s.current) {
      if (s.current.roundId !== roundId) {
        throw new RoundStateError(
          "round_in_progress",
          `round "${s.current.roundId}" is ${s.current.phase}; complete or abandon it before opening "${roundId}"`,
        );
      }
      return {
        roundId,
        round: s.current.round,
        resumed: true,
        phase: s.current.phase,
        instructions,
        epsilon: this.privacySpent()?.epsilon ?? null,
      };
    }
    const openedAt = this.now();
    let ledger = s.ledger;
    let epsilon: number | null = null;
    if (s.ledger) {
      const l = this.ledgerOf(s.ledger); // a refused open() changes nothing in it
      if (l.hasRound(roundId))
        throw new RoundStateError("round_already_run", `round "${roundId}" was already run for "${s.population}"`);
      const charge = this.strategy.privacyCharge(planCtx);
      const budget = this.config.privacy.budget;
      if (!charge || !budget) throw new Error("a DP population needs a privacy charge and a budget");
      epsilon = l.open(
        {
          roundId,
          sampleRate: charge.samplingRate,
          noiseMultiplier: charge.noiseMultiplier,
          mode: this.strategy.privacyMode as "central" | "local" | "distributed",
          openedAt,
          ...(charge.distributed ? { distributed: charge.distributed } : {}),
        },
        budget,
      );
      ledger = l.toJSON();
      // re-key the cache to the new state: if the commit below fails, the old state misses the cache and is rebuilt
      this.ledgerCache = { json: ledger, ledger: l };
    } else if (s.publishLog.some((p) => p.roundId === roundId)) {
      throw new RoundStateError("round_already_run", `round "${roundId}" was already run for "${s.population}"`);
    }
    const current: CurrentRound = {
      roundId,
      round: s.round + 1,
      phase: "opened",
      openedAt,
      ...(seedText ? { rotationSeed: seedText } : {}),
    };
    const next: Checkpoint = { ...s, ledger, current };
    await this.commit(next);
    await this.hooks.afterOpen?.(next);
    return { roundId, round: current.round, resumed: false, phase: "opened", instructions, epsilon };
  }

  /**
   * Aggregates the open round: streams `updates` through the strategy into the Backend (memory O(model)), applies
   * the server optimizer, moves the clip norm, and commits the new model with phase `aggregated`. On a round already
   * aggregated (resume), returns its saved summary without consuming `updates` or drawing noise.
   */
  async aggregateRound(updates: AsyncIterable<ClientUpdate> | Iterable<ClientUpdate>): Promise<RoundSummary> {
    const s = this.state;
    const cur = s.current;
    if (!cur) throw new RoundStateError("no_open_round", "no round is open; call openRound first");
    if (cur.phase === "aggregated") return cur.summary!;
    const prevOptimizer = s.optimizer;
    const stream = toAsync(updates);
    const r = await this.strategy.aggregateFit(
      {
        round: cur.round,
        length: this.updateLength,
        clip: s.clip,
        backend: this.backend,
        random: this.random,
        batchSize: this.config.batchSize,
        log: this.log,
        ...(cur.rotationSeed ? { rotationSeed: fromBase64Url(cur.rotationSeed) } : {}),
      },
      stream,
    );
    let optimizer = s.optimizer;
    let model = s.model;
    try {
      if (r.delta) {
        await this.optimizer.step(r.delta);
        optimizer = await this.optimizer.state();
        model = withTrainable(s.model, s.trainable, optimizer.weights);
      }
      const spent = this.privacySpent();
      const summary: RoundSummary = {
        round: cur.round,
        roundId: cur.roundId,
        count: r.count,
        unclippedCount: r.unclippedCount,
        clipNorm: Number.isFinite(r.clipNorm) ? r.clipNorm : null,
        noiseStd: r.noiseStd,
        ...(r.mechanism ? { mechanism: r.mechanism } : {}),
        ...(r.noiseInflation !== undefined ? { noiseInflation: r.noiseInflation } : {}),
        denominator: r.denominator,
        nextClipNorm: Number.isFinite(r.nextClip.clipNorm) ? r.nextClip.clipNorm : 0,
        ...(r.noisyUnclippedFraction !== undefined ? { noisyUnclippedFraction: r.noisyUnclippedFraction } : {}),
        epsilon: spent?.epsilon ?? null,
        delta: spent?.delta ?? null,
        warnings: r.warnings,
      };
      const next: Checkpoint = {
        ...s,
        round: cur.round,
        model,
        optimizer,
        clip: r.nextClip,
        current: { ...cur, phase: "aggregated", summary },
      };
      await this.commit(next);
      await this.hooks.afterAggregate?.(next);
      return summary;
    } catch (e) {
      // keep the device optimizer in step with the committed checkpoint
      if (this.state.optimizer === prevOptimizer && optimizer !== prevOptimizer)
        await this.optimizer.load(prevOptimizer);
      throw e;
    }
  }

  /** Records the publish decision of the aggregated round and closes it. */
  async completeRound(o: CompleteRoundOptions): Promise<void> {
    const s = this.state;
    const cur = s.current;
    if (!cur || cur.phase !== "aggregated")
      throw new RoundStateError("not_aggregated", "no aggregated round to complete");
    if (o.published && !(Number.isInteger(o.version) && o.version! >= 1)) {
      throw new RangeError("a published round needs its version (an integer >= 1)");
    }
    const record: PublishRecord = {
      roundId: cur.roundId,
      round: cur.round,
      published: o.published,
      ...(o.published ? { version: o.version! } : {}),
      ...(o.accuracy !== undefined ? { accuracy: o.accuracy } : {}),
      reason: o.reason,
      at: this.now(),
    };
    const serving = o.published
      ? {
          version: o.version!,
          round: cur.round,
          ...(o.accuracy !== undefined ? { accuracy: o.accuracy } : {}),
          ...(o.sha256 ? { sha256: o.sha256 } : {}),
        }
      : s.serving;
    await this.commit({ ...s, current: null, serving, publishLog: [...s.publishLog, record] });
  }

  /** Gives up an opened (not aggregated) round: its privacy stays spent, the model is unchanged. */
  async abandonRound(reason: string): Promise<void> {
    const s = this.state;
    const cur = s.current;
    if (!cur) throw new RoundStateError("no_open_round", "no round is open");
    if (cur.phase !== "opened")
      throw new RoundStateError("already_aggregated", `round "${cur.roundId}" is aggregated; complete it instead`);
    const record: PublishRecord = {
      roundId: cur.roundId,
      round: cur.round,
      published: false,
      reason: `abandoned: ${reason}`,
      at: this.now(),
    };
    await this.commit({ ...s, round: cur.round, current: null, publishLog: [...s.publishLog, record] });
  }

  /** Sets the serving version back to an earlier published one (the edge rollback records it here). */
  async recordRollback(version: number, reason: string): Promise<void> {
    const s = this.state;
    const target = [...s.publishLog].reverse().find((p) => p.published && p.version === version);
    if (!target)
      throw new RoundStateError("version_not_published", `version ${version} was never published by this aggregator`);
    const record: PublishRecord = {
      roundId: target.roundId,
      round: target.round,
      published: true,
      version,
      reason: `rollback: ${reason}`,
      at: this.now(),
    };
    if (target.accuracy !== undefined) record.accuracy = target.accuracy;
    const serving = {
      version,
      round: target.round,
      ...(target.accuracy !== undefined ? { accuracy: target.accuracy } : {}),
    };
    await this.commit({ ...s, serving, publishLog: [...s.publishLog, record] });
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}

async function* toAsync<T>(it: AsyncIterable<T> | Iterable<T>): AsyncIterable<T> {
  yield* it;
}

/** `n` bytes from the injected CSPRNG. */
function randomBytes(random: RandomBytes, n: number): Uint8Array {
  const b = new Uint8Array(n);
  random(b);
  return b;
}

function base64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64url");
}

function fromBase64Url(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, "base64url"));
}
