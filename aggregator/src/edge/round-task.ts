/**
 * @module
 * The two pieces every edge round driver shares: the task the edge hands selected devices (from the engine's
 * instructions for this round) and the stream of accepted updates with each Ed25519 signature re-verified.
 */
import { decodeUpdate, updateToFloat32, type OpenRoundRequest } from "@fedge/protocol";
import type { RoundEngine } from "../round/index.ts";
import type { ClientUpdate, FitInstructions } from "../strategy/index.ts";
import type { EdgeAdminClient } from "./admin-client.ts";
import { chargeOf, mechanismOf } from "./charge.ts";

/** What a round asks of the edge besides the engine's instructions. */
export interface EdgeRoundLimits {
  /** The model version devices train from. */
  modelVersion: number;
  /** Clip norm sent for privacy mode `none` (the edge always checks ‖Δ‖ ≤ C): far above any real update. @default 1000 */
  noneClipNorm?: number;
  /** @default 1 */
  minReports?: number;
  /** Privacy mode `none` only (DP rounds keep Poisson sampling: the edge refuses it there). @default 1_000_000 */
  maxReports?: number;
  /** @default 600 */
  durationS?: number;
}

/**
 * The `POST /v1/admin/rounds` body for this round: a DP round carries the mechanism it is charged for (`chargeOf`) and
 * no `max_reports`; mode `none` carries a clip norm never reached.
 */
export function openRoundRequest(
  engine: RoundEngine,
  instr: FitInstructions,
  limits: EdgeRoundLimits,
): OpenRoundRequest {
  const config = engine.config;
  const mode = instr.privacyMode;
  const none = mode === "none";
  const charge = chargeOf(engine);
  return {
    model: config.model,
    model_version: limits.modelVersion,
    clip_norm: none ? (limits.noneClipNorm ?? 1000) : instr.clipNorm,
    learning_rate: config.client.learningRate,
    local_epochs: config.client.localEpochs,
    batch_size: config.client.batchSize,
    privacy_mode: mode,
    ...(mode === "local" ? { local_noise_multiplier: instr.localNoiseMultiplier ?? 0 } : {}),
    trainable: config.trainable,
    update_length: engine.updateLength,
    update_dtype: "float32",
    sampling_rate: config.samplingRate,
    min_reports: none ? (limits.minReports ?? 1) : 1,
    ...(none ? { max_reports: limits.maxReports ?? 1_000_000 } : {}),
    ...(charge ? { mechanism: mechanismOf(charge) } : {}),
    duration_s: limits.durationS ?? 600,
  };
}

/**
 * Accepted updates of a closed round, each signature re-verified under the device key the edge recorded at acceptance,
 * its round id and length checked. What fails is pushed to `refused` and skipped; `onFrame` counts every frame.
 */
export async function* verifiedUpdates(
  admin: EdgeAdminClient,
  roundId: string,
  length: number,
  refused: { deviceId: string; reason: string }[],
  options: { pageSize?: number; onFrame?: () => void } = {},
): AsyncGenerator<ClientUpdate> {
  for await (const frame of admin.streamUpdates(roundId, options.pageSize ?? 100)) {
    options.onFrame?.();
    let decoded;
    try {
      decoded = decodeUpdate(frame.update, { publicKey: frame.publicKey });
    } catch (e) {
      refused.push({ deviceId: "?", reason: (e as Error).message });
      continue;
    }
    if (decoded.roundId !== roundId) {
      refused.push({ deviceId: decoded.deviceId, reason: `round id ${decoded.roundId}` });
      continue;
    }
    const values = updateToFloat32(decoded);
    if (values.length !== length) {
      refused.push({ deviceId: decoded.deviceId, reason: `length ${values.length} ≠ ${length}` });
      continue;
    }
    yield { delta: values, deviceId: decoded.deviceId };
  }
}
