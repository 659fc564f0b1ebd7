/**
 * @module
 * DP-FedAvg with the distributed discrete Gaussian (Kairouz, Liu, Steinke 2021, "The Distributed Discrete Gaussian
 * Mechanism for Federated Learning with Secure Aggregation", arXiv 2102.06387, Algorithm 1): no party but the device
 * adds or sees its noise. Each sampled device clips Δ to C, rotates it with the round's randomized Hadamard transform,
 * scales by γ, rounds within the charged bound, adds its discrete Gaussian share N_Z(0, σ_l²) with
 * σ_l² = (z·C·γ)²/n_shares and reduces mod 2^b (`@fedge/ml` `encodeDistributedDeviceUpdate`). Secure aggregation
 * returns the sum of those vectors mod 2^b; here, in process, the sum is computed in the clear (`addModulo`), which is
 * exactly what secure aggregation outputs. The server centres it, divides by γ, inverts the rotation
 * (`decodeDistributedSum`) and divides by the fixed expected count of sampled devices q·N (McMahan et al. 2018, arXiv
 * 1710.06963, the fixed-denominator estimator), as central mode does.
 *
 * Who adds a share (`cohort`, docs/PRIVACY.md "Which neighbour"):
 * - `sampled`: only the devices the coin selects; the noise is split into n_shares = q·N shares, and a device's share
 *   leaves the sum with it, so the round is charged for add/remove neighbours (a variance term no z removes).
 * - `checked-in`: every device that checks in joins the secure aggregation; one the coin leaves out inputs a zero
 *   update plus its share (`noise-only`). The noise is split into n_shares = the expected check-ins, q·N / q = N, and
 *   minClients, maxClients count check-ins. A device's share is then in both neighbouring sums: the round is charged
 *   for zero-out neighbours, amplified by the coin (Kairouz, McMahan, Song, Thakkar, Thakurta, Xu 2021, arXiv
 *   2103.00039; Zhu & Wang 2019 over KLS21 Prop. 14). The sum still holds only the sampled devices' updates, so the
 *   denominator stays q·N, the same as central mode's.
 *
 * The charge: KLS21's RDP bound for minClients − 1 − ⌊corruptFraction·maxClients⌋ shares, the honest shares besides
 * the protected device's own that every released sum holds (`@fedge/privacy` plan and ledger, mode `distributed`). A
 * round whose sum holds fewer than `minClients` inputs would hold fewer noise shares than were charged: its sum is
 * not released (the model is unchanged; the round stays charged, as its devices saw the task).
 */
import {
  addModulo,
  decodeDistributedSum,
  distributedNoiseOf,
  planDistributedDiscreteGaussian,
  type DistributedPlan,
} from "@fedge/privacy";
import { RobustWithDpError } from "./dp-central.ts";
import {
  isStreamingStrategy,
  type ClientUpdate,
  type ClipState,
  type FitAggregate,
  type FitInstructions,
  type PrivacyCharge,
  type RoundContext,
  type RoundPlanContext,
  type Strategy,
  UpdateRejectedError,
} from "./strategy.ts";

/** Options of {@link createDpDistributed}. */
export interface DpDistributedOptions {
  /** z > 0: the shares of `expectedClients` devices sum to σ = z·C. */
  noiseMultiplier: number;
  /** Poisson sampling rate q ∈ (0, 1]. */
  samplingRate: number;
  /**
   * q·N, an integer ≥ 1: the sampled devices a round expects; the sum is divided by it (and, for a `sampled` cohort,
   * the noise split into this many shares).
   */
  expectedClients: number;
  /** b: the modulus 2^b of secure aggregation. */
  bits: number;
  /**
   * n_min: the fewest inputs whose sum is released (the charge counts n_min − 1 − the colluding devices' shares);
   * check-ins for a `checked-in` cohort.
   */
  minClients: number;
  /** n_max: the most inputs the modulus must hold (check-ins for a `checked-in` cohort). */
  maxClients: number;
  /** p: the accepted probability that the sum wraps around the modulus. */
  overflowProbability: number;
  /**
   * f ∈ [0, 1/3): the fraction of selected devices that may collude with the server (`planDistributedDiscreteGaussian`).
   * @default 0
   */
  corruptFraction?: number;
  /**
   * Who adds a noise share (module header): `sampled`, the devices the coin selects; `checked-in`, every device that
   * checks in (the coin-excluded ones with a zero update), the noise split over the expected check-ins
   * ({@link expectedCheckins}).
   * @default "sampled"
   */
  cohort?: "sampled" | "checked-in";
}

/**
 * The devices a round expects to check in, q·N / q = N, rounded to an integer (the noise is split into that many
 * shares). Throws `RangeError` unless q ∈ (0, 1] and the result is ≥ 1.
 */
export function expectedCheckins(expectedClients: number, samplingRate: number): number {
  if (!(samplingRate > 0 && samplingRate <= 1)) {
    throw new RangeError(`samplingRate must be in (0, 1], got ${samplingRate}`);
  }
  const n = Math.round(expectedClients / samplingRate);
  if (!(Number.isSafeInteger(n) && n >= 1)) {
    throw new RangeError(`expectedClients / samplingRate must be >= 1, got ${expectedClients / samplingRate}`);
  }
  return n;
}

function toBase64Url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Wraps `inner` (FedAvg, for its streaming contract) into distributed DP-FedAvg; see the module header. */
export function createDpDistributed(inner: Strategy, options: DpDistributedOptions): Strategy {
  if (!isStreamingStrategy(inner)) throw new RobustWithDpError(inner.name, "distributed");
  const n = options.expectedClients;
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`expectedClients must be an integer >= 1, got ${n}`);
  if (!(options.samplingRate > 0 && options.samplingRate <= 1)) {
    throw new RangeError(`samplingRate must be in (0, 1], got ${String(options.samplingRate)}`);
  }
  const cohort = options.cohort ?? "sampled";
  if (cohort !== "sampled" && cohort !== "checked-in") {
    throw new RangeError(`cohort must be "sampled" or "checked-in", got ${String(cohort)}`);
  }
  // The noise shares: one per sampled device, or one per checked-in device.
  const shares = cohort === "checked-in" ? expectedCheckins(n, options.samplingRate) : n;
  const planFor = (length: number, clipNorm: number): DistributedPlan =>
    planDistributedDiscreteGaussian({
      bits: options.bits,
      length,
      clipNorm,
      noiseMultiplier: options.noiseMultiplier,
      expectedClients: shares,
      minClients: options.minClients,
      maxClients: options.maxClients,
      overflowProbability: options.overflowProbability,
      corruptFraction: options.corruptFraction ?? 0,
      cohort,
    });
  planFor(1, 1); // validates the options now
  const needLength = (ctx: { length?: number | undefined }): number => {
    if (ctx.length === undefined) throw new RangeError("distributed mode needs the update length to plan a round");
    return ctx.length;
  };
  return {
    name: `dp-distributed(${inner.name})`,
    privacyMode: "distributed",
    privacyCharge(ctx?: RoundPlanContext): PrivacyCharge {
      if (!ctx) throw new RangeError("distributed mode's charge depends on the round (length and clip norm)");
      const plan = planFor(needLength(ctx), ctx.clip.clipNorm);
      return {
        noiseMultiplier: options.noiseMultiplier,
        samplingRate: options.samplingRate,
        distributed: plan.noiseShares,
      };
    },
    configureFit(ctx: RoundPlanContext): FitInstructions {
      const plan = planFor(needLength(ctx), ctx.clip.clipNorm);
      if (!ctx.rotationSeed) throw new RangeError("distributed mode needs the round's rotation seed");
      return {
        privacyMode: "distributed",
        clipNorm: ctx.clip.clipNorm,
        distributed: { ...distributedNoiseOf(plan), rotation_seed: toBase64Url(ctx.rotationSeed) },
      };
    },
    async aggregateFit(ctx: RoundContext, updates: AsyncIterable<ClientUpdate>): Promise<FitAggregate> {
      const clip: ClipState = ctx.clip;
      if (!ctx.rotationSeed) throw new RangeError("distributed mode needs the round's rotation seed");
      const plan = planFor(ctx.length, clip.clipNorm);
      const sum = new Uint32Array(plan.paddedLength);
      let count = 0;
      for await (const u of updates) {
        try {
          const e = u.encoded;
          if (!(e instanceof Uint32Array)) {
            throw new UpdateRejectedError("missing_encoding", `update ${count} carries no distributed encoding`);
          }
          if (e.length !== plan.paddedLength) {
            throw new UpdateRejectedError(
              "invalid_shape",
              `update ${count} has ${e.length} residues, expected ${plan.paddedLength}`,
            );
          }
          const reports = u.reports ?? 1;
          if (!(Number.isSafeInteger(reports) && reports >= 1)) {
            throw new UpdateRejectedError("invalid_shape", `update ${count} sums ${reports} inputs`);
          }
          // one device's encoding (summed here, as secure aggregation would) or a secure-aggregation sum of several
          addModulo(sum, e, plan.bits);
          count += reports;
        } finally {
          u.release?.();
        }
      }
      const warnings: string[] = [];
      let delta: Float32Array | null = null;
      if (count < plan.minClients) {
        warnings.push(
          `round ${ctx.round}: ${count} inputs, fewer than the ${plan.minClients} a sum is released with (its charge counts ${plan.guaranteedShares} of their noise shares); its sum is not released (the model is unchanged, the charge stands)`,
        );
      } else {
        if (count > plan.maxClients) {
          warnings.push(
            `round ${ctx.round}: ${count} inputs, more than the ${plan.maxClients} the modulus 2^${plan.bits} was planned for (overflow bound ${plan.overflowProbability.toExponential(1)} no longer holds)`,
          );
        }
        delta = decodeDistributedSum(sum, { plan, rotationSeed: ctx.rotationSeed });
        for (let i = 0; i < delta.length; i++) delta[i] = delta[i]! / n;
      }
      for (const w of warnings) ctx.log?.(w);
      return {
        delta,
        count,
        unclippedCount: 0, // the server sees only the sum: no device's norm, no clip bit
        weightSum: count,
        clipNorm: clip.clipNorm,
        // count shares of σ²/n_shares each (float units)
        noiseStd: options.noiseMultiplier * clip.clipNorm * Math.sqrt(count / shares),
        mechanism: "distributed-discrete-gaussian",
        noiseInflation: plan.sensitivityInflation,
        denominator: n,
        nextClip: clip,
        warnings,
      };
    },
  };
}
