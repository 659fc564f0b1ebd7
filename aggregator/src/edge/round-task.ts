/**
 * @module
 * Two pieces of the edge round (`runner.ts`): the task the edge hands selected devices (from the engine's instructions
 * for this round, with the population's privacy guarantee) and the stream of accepted updates with each Ed25519
 * signature re-verified and each clip bit checked against the round. `fedge simulate` builds its devices' tasks with
 * {@link taskPrivacyFields} too, so simulated devices get exactly what the edge would relay.
 */
import {
  decodeVerifiedUpdate,
  SECAGG_MAX_DEVICES,
  secureAggregationFor,
  updateToFloat32,
  type OpenRoundRequest,
  type SecAggStageSeconds,
} from "@fedge/protocol";
import type { RoundEngine } from "../round.ts";
import type { ClientUpdate, DistributedTaskFields, FitInstructions } from "../strategy/strategy.ts";
import type { EdgeAdminClient } from "./admin-client.ts";
import { chargeOf, mechanismOf } from "./charge.ts";

/** What a round asks of the edge besides the engine's instructions. */
export interface EdgeRoundLimits {
  /** The model version devices train from. */
  modelVersion: number;
  /** @default 1 */
  minReports?: number;
  /** Privacy mode `none` only (DP rounds keep Poisson sampling: the edge refuses it there). @default 1_000_000 */
  maxReports?: number;
  /** @default 600 */
  durationS?: number;
  /**
   * Distributed mode: how long each secure-aggregation stage after `advertise` lasts, in seconds (advertise ends with
   * the collecting window). @default DEFAULT_SECAGG_STAGE_S each
   */
  secureAggregationStageS?: SecAggStageSeconds;
  /**
   * Distributed mode with a checked-in cohort: n_max, the most check-ins the round takes (every one joins the secure
   * aggregation; the edge answers 409 `round_full` past it), what the modulus was planned for.
   * @default the config's `privacy.distributed.maxClients`, else the edge's (SecAgg+'s 65,535)
   */
  secureAggregationMaxDevices?: number;
}

/** The privacy fields of the task devices receive (names as in `OpenRoundRequest` / `RoundTask`). */
export interface TaskPrivacyFields {
  privacy_mode: "central" | "local" | "distributed" | "none";
  /** Absent in mode `none` (the instructions say `Infinity`: no clipping). */
  clip_norm?: number;
  local_noise_multiplier?: number;
  report_clip_bit?: boolean;
  /** Distributed mode: the devices' discrete noise and the round's rotation seed. */
  distributed?: DistributedTaskFields;
}

/**
 * The privacy fields of the device task for `instr`: mode `none` is stated as such (no clip norm), adaptive clipping
 * asks devices for their clip bit (central only).
 */
export function taskPrivacyFields(instr: FitInstructions): TaskPrivacyFields {
  const mode = instr.privacyMode;
  return {
    privacy_mode: mode,
    ...(Number.isFinite(instr.clipNorm) ? { clip_norm: instr.clipNorm } : {}),
    ...(mode === "local" ? { local_noise_multiplier: instr.localNoiseMultiplier! } : {}),
    ...(mode === "central" && instr.reportClipBit ? { report_clip_bit: true } : {}),
    ...(mode === "distributed" && instr.distributed ? { distributed: instr.distributed } : {}),
  };
}

/**
 * The `POST /v1/admin/rounds` body for this round. A DP round carries the mechanism it is charged for on the edge
 * (`chargeOf`), no `max_reports`, and the population's (ε, δ) as the ledger has charged it (this round included: call
 * after `engine.openRound`) with the budget as `planned_epsilon`, so devices can check them against their policy.
 */
export function openRoundRequest(
  engine: RoundEngine,
  instr: FitInstructions,
  limits: EdgeRoundLimits,
): OpenRoundRequest {
  const config = engine.config;
  const spent = engine.privacySpent();
  const budget = config.privacy.budget;
  const none = instr.privacyMode === "none";
  const charge = chargeOf(engine);
  // The task's `distributed` (noise + seed) is stated in the open request as mechanism.distributed and rotation_seed.
  const { distributed, ...privacy } = taskPrivacyFields(instr);
  const noise = distributed ? withoutSeed(distributed) : undefined;
  // A checked-in cohort admits every check-in: the edge caps it at the n_max the modulus was planned for.
  const maxDevices =
    (noise as { cohort?: string } | undefined)?.cohort === "checked-in"
      ? (limits.secureAggregationMaxDevices ?? config.privacy.distributed?.maxClients)
      : undefined;
  return {
    model: config.model,
    model_version: limits.modelVersion,
    ...privacy,
    ...(spent && instr.privacyMode !== "none"
      ? {
          population_privacy: {
            epsilon: spent.epsilon,
            ...(budget ? { planned_epsilon: Math.max(budget.epsilon, spent.epsilon) } : {}),
            delta: spent.delta,
          },
        }
      : {}),
    learning_rate: config.client.learningRate,
    local_epochs: config.client.localEpochs,
    batch_size: config.client.batchSize,
    trainable: config.trainable,
    update_length: engine.updateLength,
    update_dtype: config.updateDtype,
    sampling_rate: config.samplingRate,
    min_reports: none ? (limits.minReports ?? 1) : 1,
    ...(none ? { max_reports: limits.maxReports ?? 1_000_000 } : {}),
    ...(charge ? { mechanism: { ...mechanismOf(charge), ...(noise ? { distributed: noise } : {}) } } : {}),
    // Distributed mode: the public rotation seed, and the secure aggregation in the noise's ring (b, d').
    ...(distributed
      ? {
          rotation_seed: distributed.rotation_seed,
          secure_aggregation: {
            ...secureAggregationFor(distributed, limits.secureAggregationStageS),
            ...(maxDevices !== undefined ? { max_devices: Math.min(maxDevices, SECAGG_MAX_DEVICES) } : {}),
          },
        }
      : {}),
    duration_s: limits.durationS ?? 600,
  };
}

function withoutSeed(d: DistributedTaskFields): Omit<DistributedTaskFields, "rotation_seed"> {
  const { rotation_seed: _seed, ...noise } = d;
  return noise;
}

/**
 * Accepted updates of a closed round, each signature re-verified under the device key the edge recorded at acceptance,
 * its round id, length and clip bit checked (present exactly when the round's `report_clip_bit` asked for it, as the
 * edge recorded the round). What fails is pushed to `refused` and skipped (a retired version 1 or 2 body among them,
 * with the codec's message naming its version); `onFrame` counts every frame.
 */
export async function* verifiedUpdates(
  admin: EdgeAdminClient,
  roundId: string,
  length: number,
  refused: { deviceId: string; reason: string }[],
  options: { pageSize?: number; onFrame?: () => void } = {},
): AsyncGenerator<ClientUpdate> {
  const status = await admin.roundStatus(roundId);
  const wantsClipBit = status.params.report_clip_bit === true;
  for await (const frame of admin.streamUpdates(roundId, options.pageSize ?? 100, status.shards ?? 1)) {
    options.onFrame?.();
    let decoded;
    try {
      decoded = await decodeVerifiedUpdate(frame.update, frame.publicKey);
    } catch (e) {
      refused.push({ deviceId: "?", reason: (e as Error).message });
      continue;
    }
    if (decoded.roundId !== roundId) {
      refused.push({ deviceId: decoded.deviceId, reason: `round id ${decoded.roundId}` });
      continue;
    }
    if (wantsClipBit !== (decoded.clipBit !== null)) {
      refused.push({
        deviceId: decoded.deviceId,
        reason: wantsClipBit ? "no clip bit in an adaptive-clipping round" : "a clip bit the round did not ask for",
      });
      continue;
    }
    const values = updateToFloat32(decoded);
    if (values.length !== length) {
      refused.push({ deviceId: decoded.deviceId, reason: `length ${values.length} ≠ ${length}` });
      continue;
    }
    yield decoded.clipBit === null
      ? { delta: values, deviceId: decoded.deviceId }
      : { delta: values, deviceId: decoded.deviceId, clipBit: decoded.clipBit };
  }
}
