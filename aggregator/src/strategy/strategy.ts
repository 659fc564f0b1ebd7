/**
 * @module
 * The aggregation strategy interface, Flower-style (adap/flower `server/strategy/strategy.py`: `configure_fit` /
 * `aggregate_fit`), adapted to streaming: `aggregateFit` consumes an async iterable of client updates and feeds them
 * to the gpu-node `Backend` in batches, so memory is O(model), never O(clients × model).
 *
 * Strategies are stateless objects; the per-population state they evolve (the clip norm of adaptive clipping) is a
 * plain {@link ClipState} passed in with every round and returned updated, so the checkpoint owns it.
 *
 * Composition (flower `dp_fixed_clipping.py`): `createFedAvg` does the weighted streaming mean; `createDpCentral(inner)`
 * wraps it with clipping, Gaussian noise and the fixed denominator; `createDpLocal(inner)` averages already-noised
 * updates; `createRobust` (median / trimmed mean) is a separate strategy the DP wrappers refuse to wrap.
 */
import type { Backend } from "@fedge/gpu-node";
import type { DistributedNoiseShares, RandomBytes } from "@fedge/privacy";
import type { AdaptiveClippingState } from "@fedge/privacy";

/** One device's update, as the round engine receives it. */
export interface ClientUpdate {
  /** Δ = w_after − w_before over the trainable layout (float32). */
  delta: Float32Array;
  /**
   * Local example count, the FedAvg weight (arXiv 1602.05629 Alg. 1, n_k/n). DP strategies ignore it (uniform weights).
   * @default 1
   */
  numExamples?: number;
  /** Device id, for logs. */
  deviceId?: string;
  /**
   * Distributed mode: the device's input to secure aggregation (d' residues mod 2^b); the strategy sums these and
   * never reads `delta`, which stays the device's.
   */
  encoded?: Uint32Array;
  /**
   * Distributed mode: how many devices' inputs `encoded` sums. 1 for one device's encoding; a secure-aggregation sum
   * read from the edge counts its survivors, so the strategy's count (and its noise-share check) stays per device.
   * @default 1
   */
  reports?: number;
  /**
   * The device's clip bit b = 1[‖Δ‖ ≤ C], computed on the device before it clipped (update codec version 2). Adaptive
   * clipping counts these (Andrew et al. 2021, arXiv 1905.03871); present only when the round asked for them.
   */
  clipBit?: 0 | 1;
  /**
   * Called once the engine no longer reads `delta` (after its batch went into the Backend, or after a robust strategy
   * copied it), so a producer can reuse the buffer.
   */
  release?: () => void;
}

/** The evolving clip state, persisted in the checkpoint. */
export interface ClipState {
  /** The clip norm C of the current round. */
  clipNorm: number;
  /** Present when adaptive clipping (Andrew et al. 2021, arXiv 1905.03871) moves C between rounds. */
  adaptive?: AdaptiveClippingState;
}

/** Everything a strategy needs for one round. */
export interface RoundContext {
  /** 1-based round number. */
  round: number;
  /** Float count of every update (the trainable layout length). */
  length: number;
  /** Clip state going into this round. */
  clip: ClipState;
  backend: Backend;
  /**
   * CSPRNG for the server's noise.
   * @default cryptoRandomBytes (crypto.getRandomValues)
   */
  random?: RandomBytes;
  /**
   * Updates per `Accumulator.add` call.
   * @default 16
   */
  batchSize?: number;
  /** Where warnings go (also returned in {@link FitAggregate.warnings}). */
  log?: (message: string) => void;
  /** Distributed mode: the round's public rotation seed (32 bytes), drawn when the round opened. */
  rotationSeed?: Uint8Array;
}

/** Instructions sent to the sampled devices (becomes part of the edge's round task). */
export interface FitInstructions {
  privacyMode: PrivacyModeOfStrategy;
  /** L2 norm devices clip Δ to (`Infinity`: no clipping). */
  clipNorm: number;
  /** Local mode: devices add N(0, (z·C)²) per coordinate. */
  localNoiseMultiplier?: number;
  /** Central mode with adaptive clipping: devices report their clip bit (the task's `report_clip_bit`). */
  reportClipBit?: boolean;
  /** Distributed mode: the task's `distributed` (the devices' discrete noise and the round's rotation seed). */
  distributed?: DistributedTaskFields;
}

/** A strategy's privacy mode. */
export type PrivacyModeOfStrategy = "central" | "local" | "distributed" | "none";

/** The `distributed` fields of a device task (names as in `@fedge/protocol` `DistributedTask`). */
export interface DistributedTaskFields {
  bits: number;
  scale: number;
  dimension: number;
  noise_shares: number;
  share_variance: number;
  sensitivity_bound: number;
  /** The most colluding devices, when the population states a colluding fraction (absent: 0). */
  corrupt_devices?: number;
  /**
   * `checked-in`: every checked-in device adds a share, a coin-excluded one with a zero update (absent: only the
   * sampled devices, `sampled`).
   */
  cohort?: "checked-in";
  /** base64url of the 32-byte rotation seed. */
  rotation_seed: string;
}

/** What a strategy may need to state its charge or its instructions before a round runs. */
export interface RoundPlanContext {
  round: number;
  clip: ClipState;
  /** Float count of every update. */
  length?: number;
  /** Distributed mode: the round's rotation seed. */
  rotationSeed?: Uint8Array;
}

/** What the privacy ledger records when a round is opened: one step of the sampled Gaussian mechanism. */
export interface PrivacyCharge {
  /** Total noise multiplier z fed to the accountant (count share included for adaptive clipping). */
  noiseMultiplier: number;
  /** Sampling rate q the accountant assumes (1 when sampling gives no amplification, e.g. local mode). */
  samplingRate: number;
  /** Distributed mode: the discrete noise shares the round is charged for (KLS21). */
  distributed?: DistributedNoiseShares;
}

/** Result of one round's aggregation. */
export interface FitAggregate {
  /** The averaged update Δ̄ to hand to the server optimizer; `null` when no update arrived (non-DP only). */
  delta: Float32Array | null;
  /** Updates aggregated. */
  count: number;
  /**
   * Updates with ‖Δ‖ ≤ C: with adaptive clipping Σ b_i of the devices' reported clip bits (measured before they
   * clipped), otherwise what the server measured on the updates it received.
   */
  unclippedCount: number;
  /** Sum of the weights. */
  weightSum: number;
  /** Clip norm used this round (`Infinity` when none). */
  clipNorm: number;
  /** Std of the noise added to the sum (0 when none). */
  noiseStd: number;
  /** The noise mechanism that made `delta` (central: discrete or float Gaussian; distributed: KLS21's). */
  mechanism?: "discrete-gaussian" | "gaussian" | "distributed-discrete-gaussian";
  /** `discrete-gaussian`: σ/(z_Δ·C) = Δ₂/C, the noise the grid adds on top of z_Δ·C (z itself is unchanged). */
  noiseInflation?: number;
  /** The divisor used. */
  denominator: number;
  /** Clip state for the next round. */
  nextClip: ClipState;
  /** Adaptive clipping: the noised unclipped fraction b̃ that moved C. */
  noisyUnclippedFraction?: number;
  warnings: string[];
}

/** The interface every strategy implements. */
export interface Strategy {
  readonly name: string;
  readonly privacyMode: PrivacyModeOfStrategy;
  /**
   * The ledger charge of one round, or `null` for a non-DP population (distributed mode needs `ctx.length` and the
   * clip norm: its charge depends on the padded dimension and the rounded sensitivity).
   */
  privacyCharge(ctx?: RoundPlanContext): PrivacyCharge | null;
  /** Flower `configure_fit`: the instructions of this round's devices. */
  configureFit(ctx: RoundPlanContext): FitInstructions;
  /** Flower `aggregate_fit`, streaming. */
  aggregateFit(ctx: RoundContext, updates: AsyncIterable<ClientUpdate>): Promise<FitAggregate>;
}

/** How a streaming sum is turned into a mean. */
export interface StreamPlan {
  /** Clip norm for the Backend accumulator (`Infinity` = none). */
  clipNorm: number;
  /** `examples`: weight w_k = numExamples; `uniform`: w_k = 1. */
  weighting: "examples" | "uniform";
  /** Std of the Gaussian noise on the sum. */
  noiseStd: number;
  /** A fixed divisor, or the weight sum / count of what arrived. */
  denominator: number | "weightSum";
  /**
   * DP: always run `finish` (noise is released even when no update arrived, so the output distribution does not
   * depend on the count); non-DP: return `delta: null` when nothing arrived.
   */
  alwaysFinish: boolean;
}

/** What {@link StreamingStrategy.aggregateStream} returns: the sum's mean and the accumulator's statistics. */
export interface StreamResult {
  delta: Float32Array | null;
  count: number;
  unclippedCount: number;
  weightSum: number;
  denominator: number;
}

/** A strategy whose aggregation is a streaming (clipped, weighted) sum: what the DP wrappers can wrap. */
export interface StreamingStrategy extends Strategy {
  aggregateStream(ctx: RoundContext, updates: AsyncIterable<ClientUpdate>, plan: StreamPlan): Promise<StreamResult>;
}

export function isStreamingStrategy(s: Strategy): s is StreamingStrategy {
  return typeof (s as Partial<StreamingStrategy>).aggregateStream === "function";
}

/**
 * Why a strategy refused a client update (the round's aggregation stops; nothing of it is kept):
 * `invalid_shape` (not a Float32Array of the model's length), `non_finite` (NaN or ±Infinity), `invalid_weight`
 * (`numExamples` not a finite number ≥ 0), `too_many_updates` (over a robust strategy's `maxClients`).
 */
export type UpdateRejectedReason =
  "invalid_shape" | "non_finite" | "invalid_weight" | "too_many_updates" | "missing_clip_bit" | "missing_encoding";

/** A client update a strategy refused (see {@link UpdateRejectedReason}). A domain error: no HTTP status. */
export class UpdateRejectedError extends Error {
  readonly reason: UpdateRejectedReason;
  constructor(reason: UpdateRejectedReason, message: string) {
    super(message);
    this.name = "UpdateRejectedError";
    this.reason = reason;
  }
}
