/**
 * @module
 * The smallest noise multiplier z whose distributed-discrete-Gaussian rounds meet a target (ε, δ): the inverse of
 * the RDP accountant's charge for {@link planDistributedDiscreteGaussian}'s noise shares (the plan, and so γ, the
 * share variance and the rounded sensitivity, is rebuilt for every z tried). Doubles z, then bisects, returning the
 * upper end of the bracket (the side that meets the target), as `accountant/noise-multiplier.ts` does for the
 * Gaussian.
 */
import { InvalidPrivacyParameterError, validateDelta, validateStep } from "../accountant/accountant.ts";
import { MAX_NOISE_MULTIPLIER } from "../accountant/noise-multiplier.ts";
import { RdpAccountant } from "../accountant/rdp.ts";
import { planDistributedDiscreteGaussian, type DistributedPlan, type DistributedPlanOptions } from "./plan.ts";

/** A target for {@link getDistributedNoiseMultiplier}. */
export interface DistributedNoiseMultiplierQuery {
  targetEpsilon: number;
  targetDelta: number;
  /** q of every round. */
  sampleRate: number;
  /** Rounds T. */
  steps: number;
  /** The plan's options but z. */
  plan: Omit<DistributedPlanOptions, "noiseMultiplier">;
  /**
   * Width of the final bracket on z.
   * @default 0.01
   */
  tolerance?: number;
}

/** ε after `steps` rounds of `plan` with rate q, at δ (RDP accountant, KLS21's bound). */
export function distributedEpsilon(plan: DistributedPlan, sampleRate: number, steps: number, delta: number): number {
  const acc = new RdpAccountant();
  acc.step({ noiseMultiplier: plan.noiseMultiplier, sampleRate, distributed: plan.noiseShares }, steps);
  return acc.getEpsilon(delta);
}

/** The smallest z (within `tolerance`) whose plan meets the target, with that plan and its ε. */
export function getDistributedNoiseMultiplier(query: DistributedNoiseMultiplierQuery): {
  noiseMultiplier: number;
  epsilon: number;
  plan: DistributedPlan;
} {
  const { targetEpsilon, targetDelta, sampleRate, steps } = query;
  const tolerance = query.tolerance ?? 0.01;
  if (!(targetEpsilon > 0) || !Number.isFinite(targetEpsilon)) {
    throw new InvalidPrivacyParameterError(`targetEpsilon must be a finite number > 0, got ${String(targetEpsilon)}`);
  }
  validateDelta(targetDelta);
  validateStep({ sampleRate, noiseMultiplier: 1 }, steps);
  if (!(tolerance > 0)) throw new InvalidPrivacyParameterError(`tolerance must be > 0, got ${tolerance}`);
  const at = (z: number) => {
    const plan = planDistributedDiscreteGaussian({ ...query.plan, noiseMultiplier: z });
    return { plan, epsilon: distributedEpsilon(plan, sampleRate, steps, targetDelta) };
  };
  let lo = 0;
  let hi = 1;
  let best = at(hi);
  while (best.epsilon > targetEpsilon) {
    lo = hi;
    hi *= 2;
    if (hi > MAX_NOISE_MULTIPLIER) {
      throw new InvalidPrivacyParameterError(
        `the privacy budget ε=${targetEpsilon}, δ=${targetDelta} is out of reach for q=${sampleRate} and ${steps} rounds`,
        { reason: "unreachable_target" },
      );
    }
    best = at(hi);
  }
  while (hi - lo > tolerance) {
    const mid = (lo + hi) / 2;
    let r;
    try {
      r = at(mid);
    } catch (e) {
      // a z so small that a share falls below σ_l = 1/2 (outside KLS21 Thm. 1): not a candidate
      if (e instanceof RangeError && !(e instanceof InvalidPrivacyParameterError)) {
        lo = mid;
        continue;
      }
      throw e;
    }
    if (r.epsilon <= targetEpsilon) {
      hi = mid;
      best = r;
    } else {
      lo = mid;
    }
  }
  return { noiseMultiplier: hi, epsilon: best.epsilon, plan: best.plan };
}
