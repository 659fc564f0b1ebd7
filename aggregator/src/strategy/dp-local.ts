/**
 * @module
 * Local-DP mode: each device clips its update to C and adds N(0, (z·C)²·I) itself before upload (the Gaussian
 * mechanism run on the device, Dwork & Roth 2014 Thm A.1; the client-side variant of flower `dp_fixed_clipping.py`).
 * The server is not trusted with raw updates, so it adds no noise: it only averages what arrived (a plain mean; a
 * server-side clip would destroy the noised updates, whose norm is ≈ z·C·√d).
 *
 * Accounting is per device: each round a device takes part in is one Gaussian mechanism on its own data, priced with
 * the replace-one relation the SDK reports per report (`@fedge/privacy` local-epsilon.ts: sensitivity 2C, so the
 * ledger's step is z/2, see `PrivacyLedger.stepOf`); the server sees who took part, so there is no amplification by
 * sampling and the ledger is charged q = 1 (the worst case of a device sampled every round).
 */
import { RobustWithDpError } from "./dp-central.ts";
import {
  isStreamingStrategy,
  type ClientUpdate,
  type FitAggregate,
  type FitInstructions,
  type PrivacyCharge,
  type RoundContext,
  type Strategy,
  type StreamingStrategy,
} from "./strategy.ts";

/** Options of {@link createDpLocal}. */
export interface DpLocalOptions {
  /** The noise multiplier z devices use (σ = z·C per coordinate), > 0. */
  noiseMultiplier: number;
}

/** Wraps `inner` (FedAvg) for local-DP populations; see the module header. */
export function createDpLocal(inner: Strategy, options: DpLocalOptions): StreamingStrategy {
  if (!isStreamingStrategy(inner)) throw new RobustWithDpError(inner.name, "local");
  const z = options.noiseMultiplier;
  if (typeof z !== "number" || !Number.isFinite(z) || z <= 0) {
    throw new RangeError(`noiseMultiplier must be a finite number > 0, got ${String(z)}`);
  }
  return {
    name: `dp-local(${inner.name})`,
    privacyMode: "local",
    privacyCharge(): PrivacyCharge {
      return { noiseMultiplier: z, samplingRate: 1 };
    },
    configureFit(ctx: Pick<RoundContext, "clip">): FitInstructions {
      return { privacyMode: "local", clipNorm: ctx.clip.clipNorm, localNoiseMultiplier: z };
    },
    aggregateStream: (ctx, updates, plan) => inner.aggregateStream(ctx, updates, plan),
    async aggregateFit(ctx: RoundContext, updates: AsyncIterable<ClientUpdate>): Promise<FitAggregate> {
      const r = await inner.aggregateStream(ctx, updates, {
        clipNorm: Infinity,
        weighting: "uniform",
        noiseStd: 0,
        denominator: "weightSum",
        alwaysFinish: false,
      });
      const warnings = r.count === 0 ? [`round ${ctx.round}: no update arrived; the model is unchanged`] : [];
      for (const w of warnings) ctx.log?.(w);
      return { ...r, clipNorm: Infinity, noiseStd: 0, nextClip: ctx.clip, warnings };
    },
  };
}
