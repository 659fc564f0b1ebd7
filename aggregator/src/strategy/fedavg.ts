/**
 * @module
 * FedAvg (McMahan et al. 2017, arXiv 1602.05629 Alg. 1): the average of the client updates weighted by their example
 * counts, Δ̄ = Σ n_k Δ_k / Σ n_k, streamed through the Backend. The server optimizer (FedAvg/FedAvgM/FedAdam/FedYogi,
 * Reddi et al. 2020, arXiv 2003.00295 Alg. 2) then applies Δ̄ as a pseudo-gradient; that is the round engine's job.
 */
import { streamAggregate } from "./aggregate.ts";
import type {
  ClientUpdate,
  FitAggregate,
  FitInstructions,
  RoundContext,
  StreamingStrategy,
  StreamPlan,
  StreamResult,
} from "./strategy.ts";

/** Options of {@link createFedAvg}. */
export interface FedAvgOptions {
  /**
   * Weight each update by its `numExamples` (`examples`) or equally (`uniform`).
   * @default "examples"
   */
  weighting?: "examples" | "uniform";
}

/** Plain FedAvg, no clipping, no noise (a non-DP population, or the inner strategy of a DP wrapper). */
export function createFedAvg(options: FedAvgOptions = {}): StreamingStrategy {
  const weighting = options.weighting ?? "examples";
  if (weighting !== "examples" && weighting !== "uniform") {
    throw new RangeError(`weighting must be "examples" or "uniform", got ${String(weighting)}`);
  }
  const strategy: StreamingStrategy = {
    name: "fedavg",
    privacyMode: "none",
    privacyCharge: () => null,
    configureFit(): FitInstructions {
      return { privacyMode: "none", clipNorm: Infinity };
    },
    aggregateStream(ctx: RoundContext, updates: AsyncIterable<ClientUpdate>, plan: StreamPlan): Promise<StreamResult> {
      return streamAggregate(ctx, updates, plan);
    },
    async aggregateFit(ctx: RoundContext, updates: AsyncIterable<ClientUpdate>): Promise<FitAggregate> {
      const r = await strategy.aggregateStream(ctx, updates, {
        clipNorm: Infinity,
        weighting,
        noiseStd: 0,
        denominator: "weightSum",
        alwaysFinish: false,
      });
      const warnings = r.count === 0 ? [`round ${ctx.round}: no update arrived; the model is unchanged`] : [];
      for (const w of warnings) ctx.log?.(w);
      return { ...r, clipNorm: Infinity, noiseStd: 0, nextClip: ctx.clip, warnings };
    },
  };
  return strategy;
}
