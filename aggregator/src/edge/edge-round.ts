/**
 * @module
 * One training round of a population run through the real edge, driven by the aggregator's {@link RoundEngine}:
 *
 * 1. `engine.openRound(id)`: the ledger is charged and the budget checked BEFORE any device sees the task (the id is the
 *    edge's next `<model>_<seq>`, read from the round list);
 * 2. `POST /v1/admin/rounds` with the engine's instructions (clip norm C of this round, privacy mode, client task, q);
 * 3. `collect(status)`: the caller waits for devices (the demo drives its simulated fleet here; a long-running runner
 *    waits for the deadline), then the round is closed (`/close`, idempotent);
 * 4. the accepted updates are streamed (`/update-stream`), each one's Ed25519 signature RE-VERIFIED against the device
 *    key the edge recorded (`decodeUpdate` with `publicKey`), its round id and length checked, and streamed into
 *    `engine.aggregateRound` (clip, noise, fixed denominator, optimizer step, adaptive clip on the Backend);
 * 5. held-out evaluation and the publish gate (`evaluate/`), int8 export + signed manifest (`export/`), upload of the
 *    new version (promoted to serving only when the gate passes), `/publish` links the round to it,
 *    `engine.completeRound`.
 *
 * Every new version is uploaded (devices always train from the latest global model, so Δ = w' − w is relative to
 * what the engine holds); the gate decides only what `/predict` serves.
 *
 * A population with privacy mode `none` opens its rounds as `none` (no clip norm; devices opt in through their policy).
 */
import { FedgeError, parseRoundId, roundIdFor, type ModelManifest, type RoundStatus } from "@fedge/protocol";
import type { RoundEngine } from "../round/index.ts";
import type { RoundSummary } from "../checkpoint/index.ts";
import { evaluateModel, publishGate, type EvalSet, type Evaluation, type PublishDecision } from "../evaluate/index.ts";
import { exportModel, type SigningKey } from "../export/index.ts";
import type { EdgeAdminClient } from "./admin-client.ts";
import { openRoundRequest, verifiedUpdates } from "./round-task.ts";

/** Options of {@link runEdgeRound}. */
export interface EdgeRoundOptions {
  engine: RoundEngine;
  admin: EdgeAdminClient;
  /** The model version devices download and train from (the latest uploaded global model). */
  modelVersion: number;
  /** The version number the new global model gets (≥ modelVersion + 1). */
  nextVersion: number;
  /** Signs the exported manifest (the aggregator's Ed25519 key). */
  signingKey: SigningKey;
  /** Held-out set for the publish gate (never given to devices); absent: every version is promoted. */
  heldOut?: EvalSet;
  /** Accuracy of the serving version, for the gate. */
  servingAccuracy?: number;
  /**
   * Waits for devices after the round opened. When it returns the round is closed (if still collecting).
   * @default wait until the edge closes the round itself (deadline or max_reports)
   */
  collect?: (status: RoundStatus) => Promise<void>;
  /** Collecting window in seconds. @default 600 */
  durationS?: number;
  /** Fewest accepted updates to aggregate. @default 1 */
  minReports?: number;
  /** The round closes once this many updates are accepted. @default 1000000 */
  maxReports?: number;
  /** Updates per streamed page. @default 100 */
  pageSize?: number;
}

/** What one edge round did. */
export interface EdgeRoundResult {
  roundId: string;
  /** The edge's round status at close (selected, accepted, checked_in…). */
  closed: RoundStatus;
  summary: RoundSummary;
  /** Updates streamed from the edge. */
  streamed: number;
  /** Streamed updates refused by the aggregator's own checks (signature, round id, length); expected 0. */
  refused: { deviceId: string; reason: string }[];
  evaluation: Evaluation | undefined;
  decision: PublishDecision;
  /** The uploaded version and whether it now serves. */
  version: number;
  promoted: boolean;
  manifest: ModelManifest;
  /** ε spent after this round (null without DP). */
  epsilon: number | null;
  seconds: number;
}

/** The id the edge will give the population's next round. */
export async function nextEdgeRoundId(admin: EdgeAdminClient, model: string): Promise<string> {
  const res = await admin.request("GET", `/v1/admin/rounds?model=${encodeURIComponent(model)}&limit=1`);
  const list = (await res.json()) as { rounds: RoundStatus[] };
  const last = list.rounds[0];
  const seq = last ? (parseRoundId(last.round_id)?.seq ?? 0) : 0;
  return roundIdFor(model, seq + 1);
}

/** Runs one round through the edge (see the module header). */
export async function runEdgeRound(o: EdgeRoundOptions): Promise<EdgeRoundResult> {
  const t0 = performance.now();
  const { engine, admin } = o;
  const config = engine.config;
  const model = config.model;
  const roundId = await nextEdgeRoundId(admin, model);
  const opened = await engine.openRound(roundId);
  let status = await admin.openRound(openRoundRequest(engine, opened.instructions, o));
  if (status.round_id !== roundId) {
    await admin.closeRound(status.round_id).catch(() => undefined);
    throw new FedgeError("conflict", 409, `the edge opened ${status.round_id}, the ledger was charged for ${roundId}`);
  }
  if (o.collect) await o.collect(status);
  else await admin.waitForClose(roundId);
  const closed = await admin.closeRound(roundId);

  const refused: EdgeRoundResult["refused"] = [];
  let streamed = 0;
  const updates = verifiedUpdates(admin, roundId, engine.updateLength, refused, {
    ...(o.pageSize !== undefined ? { pageSize: o.pageSize } : {}),
    onFrame: () => void streamed++,
  });
  const summary = await engine.aggregateRound(updates);

  const evaluation = o.heldOut ? evaluateModel(engine.model, o.heldOut) : undefined;
  const decision = publishGate({
    ...(evaluation ? { candidate: evaluation } : {}),
    ...(o.servingAccuracy !== undefined ? { servingAccuracy: o.servingAccuracy } : {}),
    maxAccuracyDrop: config.publish.maxAccuracyDrop,
  });
  const spent = engine.privacySpent();
  const exported = await exportModel({
    model: engine.model,
    name: model,
    version: o.nextVersion,
    backend: engine.backend,
    signingKey: o.signingKey,
    ...(spent ? { privacy: spent } : {}),
  });
  await admin.uploadModelVersion(exported.manifest, exported.onnx, decision.publish);
  status = await admin.publishRound(roundId, o.nextVersion);
  await engine.completeRound({
    published: decision.publish,
    reason: decision.reason,
    ...(decision.publish ? { version: o.nextVersion } : {}),
    ...(evaluation ? { accuracy: evaluation.accuracy } : {}),
    sha256: exported.manifest.sha256,
  });
  return {
    roundId,
    closed,
    summary,
    streamed,
    refused,
    evaluation,
    decision,
    version: o.nextVersion,
    promoted: decision.publish,
    manifest: exported.manifest,
    epsilon: spent?.epsilon ?? null,
    seconds: (performance.now() - t0) / 1000,
  };
}
