/**
 * @module
 * The one edge round driver, behind `fedge aggregate`, the demo and the e2e tests. One round, driven by the
 * aggregator's {@link RoundEngine}:
 *
 * 1. plan: the edge's next round id (`<model>_<seq>`, from its round list), the model version devices train from, the
 *    version number the new model gets and the serving accuracy the gate compares against are recorded; then
 *    `engine.openRound(id)` charges the ledger and checks the budget BEFORE any device sees the task;
 * 2. `POST /v1/admin/rounds` with the engine's instructions (clip norm C of this round, privacy mode, client task, q);
 * 3. {@link EdgeRoundRunnerOptions.collect}: while the round is open the caller drives or waits for devices (the demo
 *    runs its simulated fleet there; `fedge aggregate` keeps the default, which waits until the edge closes the round
 *    at its deadline or max_reports); then the round is closed (`/close`, idempotent);
 *    In distributed mode the runner closes the round's SecAgg+ stages meanwhile (`secure-aggregation-driver.ts`);
 * 4. the accepted updates are streamed (`/update-stream`), each one's Ed25519 signature RE-VERIFIED against the device
 *    key the edge recorded, its round id and length checked (`round-task.ts`), and streamed into
 *    `engine.aggregateRound` (clip, noise, fixed denominator, optimizer step, adaptive clip on the Backend); in distributed
 *    mode the edge's modular sum of the survivors' encodings is all that is read, and the strategy decodes it (KLS21:
 *    centre, unscale, inverse rotation) and applies it like a central round's noised sum;
 * 5. int8 export + signed manifest (`export.ts`), held-out evaluation OF THE EXPORTED BYTES against the served int8
 *    version's and the publish gate (`evaluate.ts`; a tie publishes), upload of
 *    the new version (promoted to serving only when the gate passes), `/publish` links the round to it,
 *    `engine.completeRound`.
 *
 * Every new version is uploaded (devices always train from the latest global model, so Δ = w' − w is relative to what
 * the engine holds); the gate decides only what `/predict` serves. An audit shadow's versions (`audit_of` on the
 * edge's record) are never promoted, whatever the gate says. A population with privacy mode `none` opens its
 * rounds as `none` (no clip norm; devices take part only when their policy opts in).
 *
 * The round is written as a state machine that can be re-entered at any point after a crash. Crash safety, on top of
 * the {@link RoundEngine}'s (privacy charged once, the aggregated model saved before publish):
 * - a runner state file (`edge-runner.json`, beside the checkpoint, written atomically) records, BEFORE the ledger is
 *   charged, the round id, the model version devices train from, the version number the new model will get and the
 *   serving accuracy the gate compares against; a rerun uses exactly these, so the gate decides the same way;
 * - re-opening: the edge round is opened only when `GET /v1/admin/rounds/:id` says 404; one already open or closed is
 *   picked up where it is (close is idempotent on the edge);
 * - re-uploading: a 409 on `POST /v1/admin/models/:name/versions` is "already done" when the stored version's sha256
 *   equals the re-exported bytes' (the export is deterministic in the checkpointed weights); any other sha is an error;
 * - promote and `/publish` are idempotent on the edge; `completeRound` commits last, then the state file is cleared.
 * - a round that closed with fewer accepted updates than `min_reports` is abandoned before anything is aggregated
 *   (no noise is released on an empty round; its privacy stays spent, as the engine documents).
 * Without `stateDir` the runner state lives in memory only (the demo): the same steps, no resume across processes.
 *
 * The edge's privacy ledger is the authority (`charge.ts`): a fresh round is planned only when the edge's budget can
 * take its charge on top of what the edge already charged (so a new checkpoint directory cannot reset the budget), a
 * round the edge refuses to open is abandoned here too (it stays charged locally: over-counting is the safe side),
 * nothing is aggregated unless the edge charged exactly this aggregator's mechanism, and the ε written into manifests
 * and result lines is the edge's.
 */
import {
  RoundStatus,
  fromBase64Url,
  roundIdFor,
  parseRoundId,
  type ModelDetail,
  type ModelManifest,
  type RoundRelease,
  type SecAggStageSeconds,
} from "@fedge/protocol";
import type { RoundEngine } from "../round.ts";
import type { RoundSummary } from "../checkpoint.ts";
import { evaluateModel, publishGate, type EvalSet, type Evaluation, type PublishDecision } from "../evaluate.ts";
import { exportModel, type SigningKey } from "../export.ts";
import { EdgeAdminError, EdgeClientError, type EdgeAdminClient } from "./admin-client.ts";
import { assertChargeMatches, assertEdgeBudgetAdmits, chargeOf } from "./charge.ts";
import { fetchEdgeModel, fetchModelDetail, fetchModelManifest, fetchPopulationPrivacy } from "./edge-registry.ts";
import { releaseOf } from "./release.ts";
import { openRoundRequest, verifiedUpdates } from "./round-task.ts";
import {
  driveSecureAggregation,
  type SecureAggregationDriverOptions,
  type SecureAggregationEnd,
} from "./secure-aggregation-driver.ts";
import {
  EDGE_RUNNER_STATE_FILE,
  saveEdgeRunnerState,
  type EdgeRunnerState,
  type PendingRound,
} from "./runner-state.ts";

/** Crash-test hooks (each runs right after the named step; `fedge aggregate` maps `FEDGE_AGGREGATE_CRASH_AT` here). */
export interface EdgeRunnerHooks {
  afterEdgeOpen?: (roundId: string) => void | Promise<void>;
  afterUpload?: (roundId: string, version: number) => void | Promise<void>;
  afterRelease?: (roundId: string) => void | Promise<void>;
}

/** Options of {@link EdgeRoundRunner}. */
export interface EdgeRoundRunnerOptions {
  engine: RoundEngine;
  admin: EdgeAdminClient;
  /** Signs every exported manifest. */
  signingKey: SigningKey;
  /** The runner state to start from (a loaded `edge-runner.json`, or a fresh one: `pending: null`). */
  state: EdgeRunnerState;
  /**
   * Where the runner state is saved after every step (the checkpoint directory).
   * @default undefined (kept in memory: no resume)
   */
  stateDir?: string;
  /**
   * Held-out set for the publish gate (never given to devices).
   * @default undefined (every candidate is promoted)
   */
  heldOut?: EvalSet;
  /** Collecting window of each round, in seconds. @default 600 */
  durationS?: number;
  /** Fewest accepted updates to aggregate; fewer and the round is abandoned. @default 1 */
  minReports?: number;
  /** The round closes once this many updates are accepted. @default 1000000 */
  maxReports?: number;
  /** Time between status polls while a round collects (the default {@link collect}), in ms. @default 1000 */
  pollMs?: number;
  /**
   * Runs while the edge round is open, with its status right after opening: drive or wait for devices here. When it
   * resolves the runner closes the round (if still collecting) and aggregates what was accepted. Not called for a
   * resumed round the edge has already closed.
   * @default waits until the edge closes the round itself (deadline or max_reports), polling every `pollMs`
   */
  collect?: (round: RoundStatus) => Promise<void>;
  /** Updates per streamed page. @default 100 */
  pageSize?: number;
  /** Distributed mode: how the aggregator follows the secure-aggregation stages (`driveSecureAggregation`). */
  secureAggregation?: Omit<SecureAggregationDriverOptions, "log">;
  /**
   * Distributed mode: each secure-aggregation stage's length after `advertise` (which ends with the collecting
   * window), in seconds; the round opens with these deadlines and the edge enforces them.
   * @default DEFAULT_SECAGG_STAGE_S each
   */
  secureAggregationStageS?: SecAggStageSeconds;
  /**
   * Distributed mode with a checked-in cohort: the most check-ins a round takes (n_max; `EdgeRoundLimits`).
   * @default the config's `privacy.distributed.maxClients`, else the edge's
   */
  secureAggregationMaxDevices?: number;
  /** `fetch` for the public registry reads. @default globalThis.fetch */
  fetch?: typeof fetch;
  hooks?: EdgeRunnerHooks;
  /** Progress lines. @default () => undefined */
  log?: (line: string) => void;
}

/** One line of `fedge aggregate` output: what a round did. */
export interface EdgeRunnerRoundResult {
  type: "round";
  roundId: string;
  round: number;
  /** `published`: uploaded and promoted; `refused`: uploaded, the gate kept the serving version; `abandoned`. */
  outcome: "published" | "refused" | "abandoned";
  /** True when this round was picked up from an earlier (crashed) run. */
  resumed: boolean;
  reason: string;
  /** The edge's counts at close: devices that checked in, that its coin selected, and accepted updates. */
  checkedIn: number;
  selected: number;
  accepted: number;
  aggregated: number;
  refusedUpdates: { deviceId: string; reason: string }[];
  /** The version uploaded this round (absent when abandoned). */
  version?: number;
  /** The version the edge serves after the round. */
  servingVersion: number | null;
  /** Held-out accuracy of the uploaded int8 bytes (what the gate judged and the manifest states). */
  accuracy?: number;
  /** Held-out accuracy of the float32 model before quantization (informational, never gated on). */
  accuracyFp32?: number;
  /** Held-out accuracy of the served int8 version the gate compared against. */
  servingAccuracyBefore?: number;
  sha256?: string;
  /** True when the upload found the version already stored with the same sha256 (a resumed run). */
  alreadyUploaded?: boolean;
  epsilon: number | null;
  delta: number | null;
  clipNorm: number | null;
  nextClipNorm?: number;
  /** Aggregated updates whose device reported ‖Δ‖ ≤ C (the clip bits adaptive clipping counts). */
  unclippedCount?: number;
  noiseStd?: number;
  seconds: number;
}

function isStatus(e: unknown, status: number): boolean {
  return e instanceof EdgeAdminError && e.status === status;
}

export class EdgeRoundRunner {
  readonly engine: RoundEngine;
  readonly admin: EdgeAdminClient;
  private readonly o: EdgeRoundRunnerOptions;
  private readonly fetchFn: typeof fetch;
  private readonly log: (line: string) => void;
  private state: EdgeRunnerState;
  /** Served accuracy by sha256 (the served ONNX is evaluated at most once per version). */
  private readonly accuracyCache = new Map<string, number>();

  constructor(o: EdgeRoundRunnerOptions) {
    for (const [k, min] of [
      ["durationS", 1],
      ["minReports", 1],
      ["maxReports", 1],
      ["pollMs", 1],
      ["pageSize", 1],
    ] as const) {
      const v = o[k];
      if (v !== undefined && !(Number.isSafeInteger(v) && v >= min))
        throw new RangeError(`EdgeRoundRunner: ${k} must be an integer ≥ ${min}, got ${v}`);
    }
    if ((o.minReports ?? 1) > (o.maxReports ?? 1_000_000))
      throw new RangeError("EdgeRoundRunner: minReports must be ≤ maxReports");
    if (o.state.model !== o.engine.config.model)
      throw new EdgeClientError(
        "state_mismatch",
        `runner state is for "${o.state.model}", the engine runs "${o.engine.config.model}"`,
      );
    this.o = o;
    this.engine = o.engine;
    this.admin = o.admin;
    this.fetchFn = o.fetch ?? globalThis.fetch;
    this.log = o.log ?? (() => undefined);
    this.state = o.state;
  }

  /** The current runner state (do not mutate). */
  get runnerState(): EdgeRunnerState {
    return this.state;
  }

  private async save(next: EdgeRunnerState): Promise<void> {
    if (this.o.stateDir) await saveEdgeRunnerState(this.o.stateDir, next);
    this.state = next;
  }

  private get model(): string {
    return this.engine.config.model;
  }

  /**
   * Accuracy of the edge's serving version on the held-out set, from the bytes it serves (int8 weights dequantized as
   * the served graph does), so it compares like with like with the candidate's export (`undefined` without a
   * held-out set or a version).
   */
  private async servedAccuracy(detail: ModelDetail | null): Promise<number | undefined> {
    if (!this.o.heldOut || !detail || detail.serving_version === null) return undefined;
    const v = detail.serving_version;
    const sha = detail.versions.find((s) => s.version === v)?.sha256;
    const hit = sha ? this.accuracyCache.get(sha) : undefined;
    if (hit !== undefined) return hit;
    const served = await fetchEdgeModel(this.admin.baseUrl, this.model, v, this.fetchFn);
    const acc = evaluateModel(served.params, this.o.heldOut).accuracy;
    this.accuracyCache.set(served.sha256, acc);
    return acc;
  }

  /** ε spent so far: the edge's ledger (at the edge's δ) for a DP population, else the engine's (null without DP). */
  private async privacySpent(): Promise<{ epsilon: number; delta: number } | null> {
    if (!chargeOf(this.engine)) return this.engine.privacySpent();
    const edge = await fetchPopulationPrivacy(this.admin.baseUrl, this.model, this.fetchFn);
    if (edge.epsilon_spent === null || edge.delta === null) return this.engine.privacySpent();
    return { epsilon: edge.epsilon_spent, delta: edge.delta };
  }

  /** Settles a state file left by a run that stopped after `completeRound`/`abandonRound` but before clearing it. */
  private async reconcile(): Promise<void> {
    const cp = this.engine.checkpoint;
    const p = this.state.pending;
    if (cp.current) {
      if (!p || p.roundId !== cp.current.roundId) {
        throw new EdgeClientError(
          "state_mismatch",
          `the checkpoint has round "${cp.current.roundId}" in progress but ${EDGE_RUNNER_STATE_FILE} has ` +
            `${p ? `"${p.roundId}"` : "none"}; was the runner state file removed? (restore it, or resume with the run that opened the round)`,
        );
      }
      return;
    }
    if (!p) return;
    const rec = [...cp.publishLog].reverse().find((r) => r.roundId === p.roundId);
    // completed (published or refused: its version was uploaded either way) → devices train from it next
    const uploaded = rec !== undefined && !rec.reason.startsWith("abandoned");
    await this.save({ ...this.state, modelVersion: uploaded ? p.nextVersion : this.state.modelVersion, pending: null });
  }

  /**
   * Plans a fresh round: refuses (before the ledger is charged) when the edge still has a round collecting, picks the
   * edge's next round id and the next free version, records them, then `engine.openRound` (budget check + charge).
   */
  private async openFresh(): Promise<void> {
    const res = await this.admin.request("GET", `/v1/admin/rounds?model=${encodeURIComponent(this.model)}&limit=1`);
    const last = ((await res.json()) as { rounds: RoundStatus[] }).rounds[0];
    if (last && (last.state === "open" || last.state === "collecting")) {
      throw new EdgeClientError(
        "round_collecting",
        `the edge's round ${last.round_id} of "${this.model}" is still ${last.state} and this aggregator did not open it; ` +
          `close it (POST /v1/admin/rounds/${last.round_id}/close) or wait for its deadline ${last.deadline}`,
      );
    }
    const roundId = roundIdFor(this.model, (last ? (parseRoundId(last.round_id)?.seq ?? 0) : 0) + 1);
    // The edge's ledger decides, whatever this checkpoint remembers (or does not: a new directory starts at 0).
    const edgeLedger = await fetchPopulationPrivacy(this.admin.baseUrl, this.model, this.fetchFn);
    assertEdgeBudgetAdmits(edgeLedger, chargeOf(this.engine), roundId, new Date().toISOString());
    const detail = await fetchModelDetail(this.admin.baseUrl, this.model, this.fetchFn);
    const latest = detail?.versions.at(-1)?.version ?? 0;
    const servingAccuracy = await this.servedAccuracy(detail);
    const pending: PendingRound = {
      roundId,
      modelVersion: this.state.modelVersion,
      nextVersion: Math.max(latest, this.state.modelVersion) + 1,
      servingVersion: detail?.serving_version ?? null,
      ...(servingAccuracy !== undefined ? { servingAccuracy } : {}),
    };
    await this.save({ ...this.state, pending });
    try {
      await this.engine.openRound(roundId);
    } catch (e) {
      // nothing was charged: forget the plan
      await this.save({ ...this.state, pending: null });
      throw e;
    }
  }

  /** The edge round of the open phase: found as it is, or opened now with the engine's instructions. */
  private async ensureEdgeRound(p: PendingRound): Promise<RoundStatus> {
    try {
      return await this.admin.roundStatus(p.roundId);
    } catch (e) {
      if (!isStatus(e, 404)) throw e;
    }
    const cur = this.engine.checkpoint.current!;
    const instr = this.engine.strategy.configureFit({
      round: cur.round,
      clip: this.engine.checkpoint.clip,
      length: this.engine.updateLength,
      // distributed mode: the round's public rotation seed, drawn once by engine.openRound and kept in the checkpoint
      ...(cur.rotationSeed ? { rotationSeed: fromBase64Url(cur.rotationSeed) } : {}),
    });
    let status: RoundStatus;
    try {
      status = await this.admin.openRound(
        openRoundRequest(this.engine, instr, { ...this.o, modelVersion: p.modelVersion }),
      );
    } catch (e) {
      if (e instanceof EdgeAdminError && e.edgeCode === "budget_exceeded") {
        // The edge opened nothing: give the round up here too (its local charge stays: the safe side).
        await this.engine.abandonRound(`the edge refused to open it: ${e.message}`);
        await this.save({ ...this.state, pending: null });
      }
      throw e;
    }
    if (status.round_id !== p.roundId) {
      await this.admin.closeRound(status.round_id).catch(() => undefined);
      throw new EdgeClientError(
        "round_id_mismatch",
        `the edge opened ${status.round_id}, the ledger was charged for ${p.roundId}; another writer opened rounds of "${this.model}"`,
      );
    }
    this.log(`opened ${p.roundId} on the edge (model v${p.modelVersion}, ${status.deadline})`);
    await this.o.hooks?.afterEdgeOpen?.(p.roundId);
    return status;
  }

  /** Uploads the version, treating a 409 for the same bytes as done. */
  private async upload(
    manifest: ModelManifest,
    onnx: Uint8Array,
    promote: boolean,
  ): Promise<{ manifest: ModelManifest; alreadyUploaded: boolean }> {
    try {
      await this.admin.uploadModelVersion(manifest, onnx, promote);
      return { manifest, alreadyUploaded: false };
    } catch (e) {
      if (!isStatus(e, 409)) throw e;
      const stored = await fetchModelManifest(this.admin.baseUrl, this.model, manifest.version, this.fetchFn);
      if (!stored) throw e; // a concurrent-writer 409, not an existing version
      if (stored.sha256 !== manifest.sha256) {
        throw new EdgeClientError(
          "version_conflict",
          `the edge already has ${this.model} v${manifest.version} with sha256 ${stored.sha256}, not this round's ${manifest.sha256}`,
        );
      }
      if (promote) await this.admin.promote(this.model, manifest.version);
      return { manifest: stored, alreadyUploaded: true };
    }
  }

  /**
   * Tells the edge what this round released (noised values only; nothing for a population without DP), so its
   * dashboard can show them. A resumed run finds its own report already recorded and sends nothing again.
   */
  private async reportRelease(round: RoundStatus, release: RoundRelease | null): Promise<void> {
    if (release === null) return;
    if (round.release) {
      const { reported_at: _at, ...recorded } = round.release;
      if (JSON.stringify(sortedKeys(recorded)) === JSON.stringify(sortedKeys(release))) return;
      throw new EdgeClientError(
        "release_mismatch",
        `the edge recorded another release for round ${round.round_id} (${JSON.stringify(recorded)}) than this aggregator's (${JSON.stringify(release)})`,
      );
    }
    await this.admin.reportRelease(round.round_id, release);
  }

  /** Runs (or resumes) one round to its end. Throws `PrivacyBudgetExceededError` (nothing charged) when the budget refuses it. */
  async runRound(): Promise<EdgeRunnerRoundResult> {
    const t0 = performance.now();
    await this.reconcile();
    const resumed = this.engine.checkpoint.current !== null;
    if (!resumed) await this.openFresh();
    const p = this.state.pending!;
    const cur = this.engine.checkpoint.current!;
    const refused: { deviceId: string; reason: string }[] = [];
    let closed: RoundStatus;
    let summary: RoundSummary;
    if (cur.phase === "opened") {
      let status = await this.ensureEdgeRound(p);
      // Aggregate only with exactly what the edge charged (a resumed run may have been given other parameters).
      assertChargeMatches(
        await fetchPopulationPrivacy(this.admin.baseUrl, this.model, this.fetchFn),
        chargeOf(this.engine),
        p.roundId,
      );
      const distributed = this.engine.strategy.privacyMode === "distributed";
      let secureAggregation: SecureAggregationEnd | undefined;
      if (status.state === "open" || status.state === "collecting") {
        // Distributed mode: the devices' inputs arrive only through SecAgg+, whose stages this aggregator closes
        // while the devices take part.
        const driving = distributed
          ? driveSecureAggregation(this.admin, p.roundId, { ...this.o.secureAggregation, log: this.log })
          : undefined;
        if (this.o.collect) [secureAggregation] = await Promise.all([driving, this.o.collect(status)]);
        else if (driving) secureAggregation = await driving;
        else {
          const timeoutMs = Math.max(0, Date.parse(status.deadline) - Date.now()) + 120_000;
          await this.admin.waitForClose(p.roundId, this.o.pollMs ?? 1000, timeoutMs);
        }
      } else if (distributed) {
        secureAggregation = await driveSecureAggregation(this.admin, p.roundId, this.o.secureAggregation);
      }
      closed = await this.admin.closeRound(p.roundId);
      // All the aggregator receives of a distributed round: the survivors' encodings summed mod 2^b, or nothing.
      const sum =
        distributed && secureAggregation?.finished ? await this.admin.secureAggregationSum(p.roundId) : undefined;
      const tooFew = distributed ? !sum : closed.accepted < closed.params.min_reports;
      if (tooFew) {
        const reason = distributed
          ? `secure aggregation released no sum (${secureAggregation && !secureAggregation.finished ? secureAggregation.reason : "not finished"}); the round stays charged`
          : `only ${closed.accepted} accepted update(s), fewer than min_reports ${closed.params.min_reports}`;
        await this.engine.abandonRound(reason);
        await this.save({ ...this.state, pending: null });
        const spent = await this.privacySpent();
        return {
          type: "round",
          roundId: p.roundId,
          round: cur.round,
          outcome: "abandoned",
          resumed,
          reason,
          checkedIn: closed.checked_in,
          selected: closed.selected,
          accepted: closed.accepted,
          aggregated: 0,
          refusedUpdates: [],
          servingVersion: p.servingVersion,
          epsilon: spent?.epsilon ?? null,
          delta: spent?.delta ?? null,
          clipNorm: null,
          seconds: (performance.now() - t0) / 1000,
        };
      }
      summary = await this.engine.aggregateRound(
        sum
          ? // decoded by the strategy like any distributed sum: centre, unscale, inverse rotation, fixed denominator
            [{ delta: new Float32Array(0), encoded: sum.sum, reports: sum.survivors.length }]
          : verifiedUpdates(this.admin, p.roundId, this.engine.updateLength, refused, {
              ...(this.o.pageSize !== undefined ? { pageSize: this.o.pageSize } : {}),
            }),
      );
    } else {
      summary = cur.summary!;
      closed = await this.admin.roundStatus(p.roundId);
    }

    const spent = await this.privacySpent();
    // The gate judges the bytes that would be served: the int8 export, evaluated as read back from its ONNX, against
    // the served int8 version (`servedAccuracy`); that same accuracy is signed into the manifest.
    const exported = await exportModel({
      model: this.engine.model,
      name: this.model,
      version: p.nextVersion,
      backend: this.engine.backend,
      signingKey: this.o.signingKey,
      ...(spent ? { privacy: spent } : {}),
      ...(this.o.heldOut ? { heldOut: this.o.heldOut } : {}),
    });
    const evaluation: Evaluation | undefined = exported.evaluation;
    // reported beside it, named as such; never gated on
    const accuracyFp32 = this.o.heldOut ? evaluateModel(this.engine.model, this.o.heldOut).accuracy : undefined;
    const decision: PublishDecision = publishGate({
      ...(evaluation ? { candidate: evaluation } : {}),
      ...(p.servingAccuracy !== undefined ? { servingAccuracy: p.servingAccuracy } : {}),
      maxAccuracyDrop: this.engine.config.publish.maxAccuracyDrop,
      weights: "int8",
    });
    // An audit shadow's versions hold canaries: the edge refuses to serve them, so they are never promoted here.
    const auditOf = (await fetchModelDetail(this.admin.baseUrl, this.model, this.fetchFn))?.audit_of;
    const promote = decision.publish && auditOf === undefined;
    const up = await this.upload(exported.manifest, exported.onnx, promote);
    await this.o.hooks?.afterUpload?.(p.roundId, p.nextVersion);
    const published = await this.admin.publishRound(p.roundId, p.nextVersion);
    await this.reportRelease(published, releaseOf(summary, chargeOf(this.engine), closed.params.clip_norm));
    await this.o.hooks?.afterRelease?.(p.roundId);
    const reason = auditOf === undefined ? decision.reason : `audit shadow of ${auditOf}: never served`;
    await this.engine.completeRound({
      published: promote,
      reason,
      ...(promote ? { version: p.nextVersion } : {}),
      ...(evaluation ? { accuracy: evaluation.accuracy } : {}),
      sha256: up.manifest.sha256,
    });
    await this.save({ ...this.state, modelVersion: p.nextVersion, pending: null });
    const detail = await fetchModelDetail(this.admin.baseUrl, this.model, this.fetchFn);
    return {
      type: "round",
      roundId: p.roundId,
      round: summary.round,
      outcome: promote ? "published" : "refused",
      resumed,
      reason,
      checkedIn: closed.checked_in,
      selected: closed.selected,
      accepted: closed.accepted,
      aggregated: summary.count,
      refusedUpdates: refused,
      version: p.nextVersion,
      servingVersion: detail?.serving_version ?? null,
      ...(evaluation ? { accuracy: evaluation.accuracy } : {}),
      ...(accuracyFp32 !== undefined ? { accuracyFp32 } : {}),
      ...(p.servingAccuracy !== undefined ? { servingAccuracyBefore: p.servingAccuracy } : {}),
      sha256: up.manifest.sha256,
      alreadyUploaded: up.alreadyUploaded,
      epsilon: spent?.epsilon ?? null,
      delta: spent?.delta ?? null,
      clipNorm: summary.clipNorm,
      nextClipNorm: summary.nextClipNorm,
      unclippedCount: summary.unclippedCount,
      noiseStd: summary.noiseStd,
      seconds: (performance.now() - t0) / 1000,
    };
  }
}

/** `value` with its object keys in order, so two releases compare by content (the edge stores JSON). */
function sortedKeys(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((k) => [k, sortedKeys((value as Record<string, unknown>)[k])]),
  );
}
