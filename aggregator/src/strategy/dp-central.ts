/**
 * @module
 * DP-FedAvg, central mode (McMahan, Ramage, Talwar, Zhang, "Learning Differentially Private Recurrent Language
 * Models", ICLR 2018, arXiv 1710.06963, Alg. 1), as a wrapper around a streaming strategy (flower
 * `DifferentialPrivacyServerSideFixedClipping`):
 *
 * - each device is sampled by an independent Poisson coin with probability q (the edge / simulator does this);
 * - each update is clipped to L2 norm C (`π(Δ, C) = Δ · min(1, C/‖Δ‖)`, "FlatClip") and weighted 1 (user-level);
 * - the clipped SUM gets noise with multiplier z_Δ (§2, Gaussian mechanism; sensitivity C);
 * - the sum is divided by the FIXED expected count q·N (§2, the fixed-denominator estimator f̃_f, unbiased and with
 *   sensitivity C/(qN) whatever the realised count), never by the count that arrived.
 *
 * Adaptive clipping (Andrew et al. 2021, arXiv 1905.03871, Alg. 1 and §3.1 Theorem 1): each device reports its
 * b_i = 1[‖Δ_i‖ ≤ C], computed BEFORE it clipped (the task's `report_clip_bit`; the signed clip bit of the update
 * codec), since devices clip before upload and every update the server sees has ‖·‖ ≤ C; an update without a bit fails
 * the round. The CENTRED count Σ(b_i − ½) of the reported bits (sensitivity ½, as TF Privacy's
 * `QuantileEstimatorQuery`) gets its own noise N(0, σ_b²), then C ← C·exp(−η_C(b̃ − γ)) with
 * b̃ = (Σ(b_i − ½) + noise)/m + ½. The sum's noise multiplier shrinks to
 * z_Δ = (z⁻² − (2σ_b)⁻²)^(−½) so the pair is still one Gaussian mechanism with multiplier z: the ledger is charged z.
 *
 * The noise (`mechanism`):
 * - `discrete-gaussian` (default): floating point must not leak the sum (Mironov 2012, "On significance of the least
 *   significant bits for differential privacy"), so updates are clipped with a factor rounded down, quantised to a
 *   grid of γ = C/M, summed exactly in integers and noised with the exact discrete Gaussian (`@fedge/privacy`
 *   `DiscreteGaussianSum`, Canonne–Kamath–Steinke 2020), and the count with its discrete twin. The grid raises the
 *   sensitivity to Δ₂ = √B·γ ≤ C + γ√d/2, and the noise is σ = z_Δ·Δ₂, so the ledger charge z is unchanged and the
 *   grid only inflates σ by Δ₂/C ≤ 1.001 (reported as `noiseInflation`). This runs on the CPU: the Backend's float
 *   noise cannot be made floating-point safe, so central mode no longer uses it (the Backend's summation stays for
 *   the non-private and `gaussian` paths).
 * - `gaussian`: the previous float path (Backend clip/sum/noise in float32, σ = z_Δ·C), for comparison only.
 *
 * Randomness order in one round (for reproducible tests): the sum's noise first, then the count's noise, both from
 * `ctx.random`.
 */
import {
  createAdaptiveClipping,
  DiscreteGaussianSum,
  discreteNoisyUnclippedFraction,
  nextClipNorm,
  noisyCentredUnclippedFraction,
  updateNoiseMultiplier,
  type AdaptiveClippingOptions,
} from "@fedge/privacy";
import {
  isStreamingStrategy,
  type ClientUpdate,
  type ClipState,
  type FitAggregate,
  type FitInstructions,
  type PrivacyCharge,
  type RoundContext,
  type Strategy,
  type StreamingStrategy,
  UpdateRejectedError,
} from "./strategy.ts";

/** Options of {@link createDpCentral}. */
export interface DpCentralOptions {
  /** Total noise multiplier z > 0 (what the accountant is charged). */
  noiseMultiplier: number;
  /** Poisson sampling rate q ∈ (0, 1]. */
  samplingRate: number;
  /** Expected clients per round q·N > 0: the fixed denominator. */
  expectedClients: number;
  /**
   * Adaptive clipping options (Andrew et al. 2021); absent = fixed clip norm. Only `countNoiseStd` is read here
   * (target and rate live in the {@link ClipState}, see {@link initialClipState}).
   */
  adaptive?: AdaptiveClippingOptions;
  /**
   * The noise mechanism (see the module header).
   * @default "discrete-gaussian"
   */
  mechanism?: CentralMechanism;
  /**
   * `discrete-gaussian`: the largest noise inflation Δ₂/C − 1 the grid may cost (it picks the grid).
   * @default 1e-3
   */
  maxNoiseInflation?: number;
}

/** Central mode's noise mechanisms. */
export type CentralMechanism = "discrete-gaussian" | "gaussian";

/**
 * The refusal when a non-streaming strategy (median, trimmed mean) is wrapped with DP: a `TypeError` (the wrapper needs
 * a streaming strategy), no HTTP status.
 */
export class RobustWithDpError extends TypeError {
  readonly strategy: string;
  readonly mode: string;
  constructor(inner: string, mode: string) {
    super(
      `strategy "${inner}" cannot be used with privacy mode "${mode}": robust aggregation is not a clipped sum, so its sensitivity is unbounded`,
    );
    this.name = "RobustWithDpError";
    this.strategy = inner;
    this.mode = mode;
  }
}

function checkPositive(name: string, v: number): void {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
    throw new RangeError(`${name} must be a finite number > 0, got ${String(v)}`);
  }
}

/** The clip state of round 1 (with the adaptive state when `adaptive` is given). */
export function initialClipState(
  clipNorm: number,
  expectedClients: number,
  adaptive?: AdaptiveClippingOptions,
): ClipState {
  checkPositive("clipNorm", clipNorm);
  if (!adaptive) return { clipNorm };
  return { clipNorm, adaptive: createAdaptiveClipping(clipNorm, expectedClients, adaptive) };
}

/** Wraps `inner` (FedAvg) into DP-FedAvg; see the module header. */
export function createDpCentral(inner: Strategy, options: DpCentralOptions): StreamingStrategy {
  if (!isStreamingStrategy(inner)) throw new RobustWithDpError(inner.name, "central");
  const z = options.noiseMultiplier;
  checkPositive("noiseMultiplier", z);
  checkPositive("expectedClients", options.expectedClients);
  if (!(options.samplingRate > 0 && options.samplingRate <= 1)) {
    throw new RangeError(`samplingRate must be in (0, 1], got ${String(options.samplingRate)}`);
  }
  const m = options.expectedClients;
  const mechanism = options.mechanism ?? "discrete-gaussian";
  if (mechanism !== "discrete-gaussian" && mechanism !== "gaussian") {
    throw new RangeError(`mechanism must be "discrete-gaussian" or "gaussian", got ${String(mechanism)}`);
  }
  const maxNoiseInflation = options.maxNoiseInflation ?? 1e-3;
  if (!(maxNoiseInflation > 0 && maxNoiseInflation <= 1)) {
    throw new RangeError(`maxNoiseInflation must be in (0, 1], got ${String(maxNoiseInflation)}`);
  }
  return {
    name: `dp-central(${inner.name})`,
    privacyMode: "central",
    privacyCharge(): PrivacyCharge {
      return { noiseMultiplier: z, samplingRate: options.samplingRate };
    },
    configureFit(ctx: Pick<RoundContext, "clip">): FitInstructions {
      return ctx.clip.adaptive
        ? { privacyMode: "central", clipNorm: ctx.clip.clipNorm, reportClipBit: true }
        : { privacyMode: "central", clipNorm: ctx.clip.clipNorm };
    },
    aggregateStream: (ctx, updates, plan) => inner.aggregateStream(ctx, updates, plan),
    async aggregateFit(ctx: RoundContext, updates: AsyncIterable<ClientUpdate>): Promise<FitAggregate> {
      const clip = ctx.clip;
      const c = clip.clipNorm;
      checkPositive("clipNorm", c);
      const adaptive = clip.adaptive;
      // z_Δ: the sum's share of the total multiplier when the count takes its own (Theorem 1).
      const zDelta = adaptive ? updateNoiseMultiplier(z, adaptive.countNoiseStd) : z;
      const bits = { reported: 0 };
      const discrete = mechanism === "discrete-gaussian";
      let r: { delta: Float32Array | null; count: number; unclippedCount: number; weightSum: number };
      let noiseStd: number;
      let noiseInflation = 1;
      if (discrete) {
        const sum = new DiscreteGaussianSum({
          length: ctx.length,
          clipNorm: c,
          noiseMultiplier: zDelta,
          maxNoiseInflation,
        });
        await addAll(sum, adaptive ? withClipBits(updates, bits) : updates);
        const stats = sum.stats();
        const delta = sum.finish({ denominator: m, ...(ctx.random ? { random: ctx.random } : {}) });
        r = { delta, count: stats.count, unclippedCount: stats.unclippedCount, weightSum: stats.count };
        noiseStd = sum.plan.noiseStd;
        noiseInflation = sum.plan.noiseInflation;
      } else {
        noiseStd = zDelta * c;
        r = await inner.aggregateStream(ctx, adaptive ? withClipBits(updates, bits) : updates, {
          clipNorm: c,
          weighting: "uniform",
          noiseStd,
          denominator: m,
          alwaysFinish: true,
        });
      }
      const warnings: string[] = [];
      // flower warns when the number of results differs from the sampled number; with Poisson sampling the count
      // always varies, so warn only beyond 4 standard deviations of Binomial(N, q).
      const sd = Math.sqrt(m * (1 - options.samplingRate));
      if (Math.abs(r.count - m) > 4 * Math.max(sd, 1)) {
        warnings.push(
          `round ${ctx.round}: ${r.count} updates arrived, expected about ${m} (q·N); the DP guarantee assumes every sampled device reports`,
        );
      }
      for (const w of warnings) ctx.log?.(w);
      let nextClip: ClipState = clip;
      let fraction: number | undefined;
      if (adaptive) {
        const count = {
          unclippedCount: bits.reported,
          reportCount: r.count,
          expectedClients: m,
          countNoiseStd: adaptive.countNoiseStd,
        };
        fraction = discrete
          ? discreteNoisyUnclippedFraction(count, ctx.random)
          : noisyCentredUnclippedFraction(count, ctx.random);
        const next = nextClipNorm({ ...adaptive, clipNorm: c }, fraction);
        nextClip = { clipNorm: next.clipNorm, adaptive: next };
      }
      return {
        delta: r.delta,
        count: r.count,
        unclippedCount: adaptive ? bits.reported : r.unclippedCount,
        weightSum: r.weightSum,
        clipNorm: c,
        noiseStd,
        denominator: m,
        mechanism,
        noiseInflation,
        nextClip,
        ...(fraction !== undefined ? { noisyUnclippedFraction: fraction } : {}),
        warnings,
      };
    },
  };
}

/** Passes `updates` through, adding up their reported clip bits; an update without one is refused. */
async function* withClipBits(
  updates: AsyncIterable<ClientUpdate>,
  bits: { reported: number },
): AsyncGenerator<ClientUpdate> {
  let k = 0;
  for await (const u of updates) {
    if (u.clipBit !== 0 && u.clipBit !== 1) {
      u.release?.();
      throw new UpdateRejectedError(
        "missing_clip_bit",
        `adaptive clipping counts the devices' clip bits, but update ${k}${u.deviceId ? ` (${u.deviceId})` : ""} reports none`,
      );
    }
    bits.reported += u.clipBit;
    k++;
    yield u;
  }
}

/** Feeds every update into the exact sum, mapping bad input to the same typed errors as the Backend path. */
async function addAll(sum: DiscreteGaussianSum, updates: AsyncIterable<ClientUpdate>): Promise<void> {
  let k = 0;
  for await (const u of updates) {
    try {
      const d = u.delta;
      if (!(d instanceof Float32Array))
        throw new UpdateRejectedError("invalid_shape", `update ${k} is not a Float32Array`);
      if (d.length !== sum.length) {
        throw new UpdateRejectedError("invalid_shape", `update ${k} has ${d.length} values, expected ${sum.length}`);
      }
      for (let i = 0; i < d.length; i++) {
        if (d[i]! - d[i]! !== 0) throw new UpdateRejectedError("non_finite", `update ${k} has a non-finite value`);
      }
      sum.add(d);
    } finally {
      u.release?.();
    }
    k++;
  }
}
