/**
 * @module
 * Robust aggregation strategies for NON-DP populations: coordinate-wise median and β-trimmed mean (Yin et al. 2018,
 * arXiv 1803.01498 §3; the math is in `aggregate/robust.ts`). They need every update at once, so this strategy copies
 * the updates it receives (O(K × d) memory, capped by `maxClients`), and the DP wrappers refuse to wrap it
 * ({@link RobustWithDpError}): a median is not a clipped sum, its sensitivity is not bounded by C.
 */
import { coordinateMedian, trimmedMean } from "../aggregate/robust.ts";
import {
  UpdateRejectedError,
  type ClientUpdate,
  type FitAggregate,
  type FitInstructions,
  type RoundContext,
  type Strategy,
} from "./strategy.ts";

/** Options of {@link createRobust}. */
export interface RobustOptions {
  kind: "median" | "trimmed_mean";
  /**
   * β ∈ [0, 0.5) for `trimmed_mean`.
   * @default 0.1
   */
  trimFraction?: number;
  /**
   * Most updates one round may hold (memory guard); more is an `UpdateRejectedError` (`too_many_updates`).
   * @default 10000
   */
  maxClients?: number;
}

export function createRobust(options: RobustOptions): Strategy {
  const kind = options.kind;
  if (kind !== "median" && kind !== "trimmed_mean") {
    throw new RangeError(`robust kind must be "median" or "trimmed_mean", got ${String(kind)}`);
  }
  const beta = options.trimFraction ?? 0.1;
  if (!(beta >= 0 && beta < 0.5)) throw new RangeError(`trimFraction must be in [0, 0.5), got ${String(beta)}`);
  const maxClients = options.maxClients ?? 10_000;
  if (!Number.isInteger(maxClients) || maxClients < 1) {
    throw new RangeError(`maxClients must be an integer >= 1, got ${String(maxClients)}`);
  }
  return {
    name: kind,
    privacyMode: "none",
    privacyCharge: () => null,
    configureFit(): FitInstructions {
      return { privacyMode: "none", clipNorm: Infinity };
    },
    async aggregateFit(ctx: RoundContext, updates: AsyncIterable<ClientUpdate>): Promise<FitAggregate> {
      const all: Float32Array[] = [];
      for await (const u of updates) {
        try {
          if (!(u.delta instanceof Float32Array) || u.delta.length !== ctx.length) {
            throw new UpdateRejectedError(
              "invalid_shape",
              `update ${all.length} must be a Float32Array of ${ctx.length} values`,
            );
          }
          for (let i = 0; i < u.delta.length; i++) {
            const x = u.delta[i]!;
            if (x - x !== 0) throw new UpdateRejectedError("non_finite", `update ${all.length} has a non-finite value`);
          }
          if (all.length >= maxClients) {
            throw new UpdateRejectedError(
              "too_many_updates",
              `robust aggregation holds at most ${maxClients} updates per round`,
            );
          }
          all.push(u.delta.slice());
        } finally {
          u.release?.();
        }
      }
      const count = all.length;
      const base = {
        count,
        unclippedCount: count,
        weightSum: count,
        clipNorm: Infinity,
        noiseStd: 0,
        denominator: count,
        nextClip: ctx.clip,
      };
      if (count === 0) {
        const w = `round ${ctx.round}: no update arrived; the model is unchanged`;
        ctx.log?.(w);
        return { ...base, delta: null, warnings: [w] };
      }
      const delta = kind === "median" ? coordinateMedian(all) : trimmedMean(all, beta);
      return { ...base, delta, warnings: [] };
    },
  };
}
