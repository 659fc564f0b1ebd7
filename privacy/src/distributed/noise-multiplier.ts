/**
 * @module
 * The smallest noise multiplier z whose distributed-discrete-Gaussian rounds meet a target (ε, δ): the inverse of
 * the RDP accountant's charge for {@link planDistributedDiscreteGaussian}'s noise shares (the plan, and so γ, the
 * share variance and the rounded sensitivity, is rebuilt for every z tried). Doubles z, then bisects, returning the
 * upper end of the bracket (the side that meets the target), as `accountant/noise-multiplier.ts` does for the
 * Gaussian.
 *
 * The charge is for add/remove neighbours (`accountant/analysis/distributed-discrete-gaussian.ts`): besides the mean
 * shift, which shrinks as z grows, the device's share leaving the sum changes its variance from (g+1)s² to g·s², a
 * divergence of ≈ α·d'/(4g²) per round that no z removes. Before searching, the target is checked against that floor
 * ({@link distributedEpsilonFloor}); when the floor alone exceeds it, no z can meet it and the error names the two
 * ways out: more shares (n_min) or a shorter padded update (d'). A plan whose cohort is `checked-in` (every checked-in
 * device adds its share, so the share is in both neighbouring sums) is charged for zero-out neighbours with
 * amplification: there is no variance term and no floor, so z alone decides and the check is skipped.
 */
import { InvalidPrivacyParameterError, validateDelta, validateStep } from "../accountant/accountant.ts";
import { distributedAddRemoveFloor } from "../accountant/analysis/distributed-discrete-gaussian.ts";
import { poissonSubsampledRdp } from "../accountant/analysis/poisson-subsampled-rdp.ts";
import { DEFAULT_ORDERS, getPrivacySpent } from "../accountant/analysis/rdp.ts";
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

/** ε after `steps` rounds of `plan` with rate q, at δ (RDP accountant, the charge of the plan's cohort). */
export function distributedEpsilon(plan: DistributedPlan, sampleRate: number, steps: number, delta: number): number {
  const acc = new RdpAccountant();
  acc.step({ noiseMultiplier: plan.noiseMultiplier, sampleRate, distributed: plan.noiseShares }, steps);
  return acc.getEpsilon(delta);
}

/**
 * The ε at δ below which no z takes `steps` rounds of rate q with d' coordinates and g other honest shares: the
 * variance term of the add/remove charge alone ({@link distributedAddRemoveFloor}), subsampled and composed as the
 * accountant does (default orders).
 */
export function distributedEpsilonFloor(
  dimension: number,
  clients: number,
  sampleRate: number,
  steps: number,
  delta: number,
): number {
  const curve = poissonSubsampledRdp(sampleRate, DEFAULT_ORDERS, (a) =>
    distributedAddRemoveFloor(dimension, clients, a),
  );
  return getPrivacySpent(
    DEFAULT_ORDERS,
    curve.map((v) => steps * v),
    delta,
  ).epsilon;
}

/** The smallest integer in [from, 2^40] with `ok`, for `ok` monotone (false below, true above); null if none. */
function smallestWith(from: number, ok: (n: number) => boolean): number | null {
  let lo = from - 1;
  let hi = from;
  while (!ok(hi)) {
    lo = hi;
    hi *= 2;
    if (hi > 2 ** 40) return null;
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (ok(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** Throws when the target is below {@link distributedEpsilonFloor} for `plan`'s d' and g, naming what must change. */
function assertFloorReachable(plan: DistributedPlan, query: DistributedNoiseMultiplierQuery): void {
  const { targetEpsilon, targetDelta, sampleRate, steps } = query;
  // A checked-in cohort keeps the device's share in both sums (zero-out): no variance term, so no floor.
  if (plan.cohort === "checked-in") return;
  const floorAt = (d: number, g: number) => distributedEpsilonFloor(d, g, sampleRate, steps, targetDelta);
  const floor = floorAt(plan.paddedLength, plan.guaranteedShares);
  if (floor <= targetEpsilon) return;
  const shares = smallestWith(plan.guaranteedShares + 1, (g) => floorAt(plan.paddedLength, g) <= targetEpsilon);
  let padded = plan.paddedLength;
  while (padded > 1 && floorAt(padded, plan.guaranteedShares) > targetEpsilon) padded /= 2;
  const fixes: string[] = [];
  if (shares !== null) {
    fixes.push(
      `raise minClients (n_min) from ${plan.minClients} to at least ${shares + 1 + plan.corruptClients} ` +
        `(${shares} honest shares besides the device's own)`,
    );
  }
  if (floorAt(padded, plan.guaranteedShares) <= targetEpsilon) {
    fixes.push(`or shrink the update to d' <= ${padded} coordinates (now ${plan.paddedLength})`);
  }
  throw new InvalidPrivacyParameterError(
    `no noise multiplier meets ε=${targetEpsilon}, δ=${targetDelta} over ${steps} rounds at q=${sampleRate}: ` +
      `a device's noise share leaving the sum (add/remove) changes its variance from ${plan.guaranteedShares + 1} ` +
      `to ${plan.guaranteedShares} shares in ${plan.paddedLength} coordinates, which alone costs ε=${floor.toPrecision(4)} ` +
      `whatever z; ${fixes.join(", ")}`,
    { reason: "unreachable_target" },
  );
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
  // d' and g do not depend on z: any z gives them (and the plan's own checks run now, before the search).
  assertFloorReachable(planDistributedDiscreteGaussian({ ...query.plan, noiseMultiplier: 1 }), query);
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
