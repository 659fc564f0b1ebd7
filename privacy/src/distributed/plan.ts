/**
 * @module
 * Parameters of the distributed discrete Gaussian (Kairouz, Liu, Steinke 2021, arXiv 2102.06387 §4): bit width b
 * (the modulus 2^b secure aggregation sums in), the scale γ (grid steps per unit of the update), each device's noise
 * variance and the rounded sensitivity the accountant is charged with. Pure.
 *
 * How γ is chosen ({@link planDistributedDiscreteGaussian}): the largest γ whose sum stays inside the modulus with
 * probability ≥ 1 − p. After the rotation (`rotation.ts`) coordinate j of the integer sum of up to n_max devices is
 *   A_j = γ·(H·D·Σx_i)_j/√d' + Σ_i r_ij + Σ_i Y_ij,
 * a sum of independent sub-Gaussian terms: the rotated signal has variance proxy γ²‖Σx_i‖²/d' ≤ γ²n_max²C²/d'
 * (Hoeffding over the shared random signs), each rounding error r_ij lies in an interval of length 1 (proxy 1/4) and
 * each noise share Y_ij ~ N_Z(0, σ_l²) is σ_l²-sub-Gaussian (Canonne, Kamath, Steinke 2020, arXiv 2004.00010 §2).
 * With v = γ²n_max²C²/d' + n_max/4 + n_max·σ_l², the centred sum wraps (|A_j| ≥ 2^(b−1)) at some coordinate with
 * probability ≤ 2d'·exp(−2^(2b−2)/(2v)) (the tail bound and a union bound over d'): KLS21 §4.4's choice of γ with
 * "k standard deviations" made a stated probability. The conditional rounding's retries (which only shrink norms) are
 * left out of this tail bound.
 *
 * The noise and what the charge counts (docs/PRIVACY.md, "Which neighbour"): a released sum holds at least n_min
 * inputs (secure aggregation aborts below, the round stays charged), each with one noise share. Of those, at most
 * c = ⌊f·n_max⌋ come from devices that collude with the server (f = `corruptFraction`: their shares are known to it,
 * so they protect no one), and one is the protected device's own share: it leaves with the device in the neighbour
 * with one device fewer. So the charge is for g = n_min − 1 − c honest shares of other devices, the device's sum
 * with its own share (g + 1) against theirs alone (g): add/remove neighbours, whose variance mismatch the accountant
 * charges too (`accountant/analysis/distributed-discrete-gaussian.ts`); a plan with g < 1 is refused. With
 * `cohort: "checked-in"` every checked-in device adds a share whether or not its coin selects it, so n counts
 * checked-in devices and the share is in both neighbouring sums: zero-out, g + 1 shares, amplified by sampling. Each device adds N_Z(0, σ_l²) with
 * σ_l² = (z·C·γ)²/h, h = n_expected − ⌊f·n_expected⌋: the honest devices of a round of the expected size alone sum
 * to σ = z·C (in float units), so `getDistributedNoiseMultiplier` scales the shares up as f grows.
 */
import type { DistributedNoiseShares } from "../accountant/analysis/distributed-discrete-gaussian.ts";
import { distributedTau } from "../accountant/analysis/distributed-discrete-gaussian.ts";
import { paddedLength } from "./rotation.ts";
import { DEFAULT_ROUNDING_BETA, roundedNormBound } from "./rounding.ts";

/** Largest γ·C: keeps the rounded vector's integers and their squared norm exact in float64 (B < 2⁵²). */
const MAX_SCALED_CLIP = 2 ** 24;

/** Options of {@link planDistributedDiscreteGaussian}. */
export interface DistributedPlanOptions {
  /** b ∈ [2, 32]: devices' values and the sum live in Z_{2^b}. */
  bits: number;
  /** d, the update's length before padding to a power of two. */
  length: number;
  /** C > 0, the L2 clip norm. */
  clipNorm: number;
  /** z > 0: the noise shares of `expectedClients` devices sum to σ = z·C. */
  noiseMultiplier: number;
  /** n_expected: the noise is split into this many shares. */
  expectedClients: number;
  /**
   * n_min: the fewest reports a round releases; the accountant counts this many noise shares.
   * @default expectedClients
   */
  minClients?: number;
  /**
   * n_max: the most reports a round sums (the overflow bound holds up to this many).
   * @default 2·expectedClients
   */
  maxClients?: number;
  /**
   * p: the accepted probability that some coordinate of the sum wraps around the modulus.
   * @default 1e-9
   */
  overflowProbability?: number;
  /**
   * β of the conditional rounding.
   * @default e^(−1/2) (KLS21's experiments)
   */
  roundingBeta?: number;
  /** γ, overriding the choice (must still meet `overflowProbability`). */
  scale?: number;
  /**
   * f ∈ [0, 1/3): the fraction of a round's selected devices that may collude with the server (reveal or skip their
   * noise share). The charge counts only honest shares; the shares are scaled so that the honest ones carry σ = z·C.
   * f < 1/3 is the regime of SecAgg+'s thresholds (Bell et al. CCS 2020, §4: corrupt and dropped devices each below a
   * third). 0 states an edge that controls no device (the secure aggregation's own parameters assume this too).
   * @default 0
   */
  corruptFraction?: number;
  /**
   * Who adds a noise share (`DistributedNoiseShares.cohort`): `sampled`, only the devices the coin selects, charged for
   * add/remove neighbours; or `checked-in`, every device that checks in (a coin-excluded one inputs a zero update and
   * its share), charged for zero-out neighbours with amplification by sampling. With `checked-in`, expectedClients,
   * minClients and maxClients count the checked-in devices whose inputs a sum holds, not the sampled ones.
   * @default "sampled"
   */
  cohort?: "sampled" | "checked-in";
}

/** What a distributed round runs with (every number a device and the server need, plus the accountant's). */
export interface DistributedPlan {
  bits: number;
  /** d before padding. */
  length: number;
  /** d', the power of two the rotation works on. */
  paddedLength: number;
  clipNorm: number;
  noiseMultiplier: number;
  expectedClients: number;
  minClients: number;
  maxClients: number;
  /** f: the fraction of selected devices that may collude with the server. */
  corruptFraction: number;
  /** Who adds a noise share (see {@link DistributedPlanOptions.cohort}). */
  cohort: "sampled" | "checked-in";
  /** c = ⌊f·n_max⌋: the most colluding devices a released sum may hold. */
  corruptClients: number;
  /** g = n_min − 1 − c: the honest shares, besides the protected device's own, every released sum holds (charged). */
  guaranteedShares: number;
  /** γ: grid steps per unit; devices send round(γ·HDx/√d'), the server divides by γ. */
  scale: number;
  roundingBeta: number;
  /** B: the enforced integer bound on a device's ‖k‖₂² after rounding (Δ₂ = √B grid units). */
  sensitivityBound: number;
  /** σ_l²: each device's discrete Gaussian variance in grid units (an integer once ≥ 64). */
  localVariance: number;
  /** Bound on the probability that the sum of up to maxClients reports wraps at some coordinate. */
  overflowProbability: number;
  /** τ of KLS21 Thm. 1 for the guaranteed shares. */
  tau: number;
  /** √B/(γ·C): how much the rounding inflates the sensitivity. */
  sensitivityInflation: number;
  /** What the accountant is charged with. */
  noiseShares: DistributedNoiseShares;
  /** Why this γ, in words. */
  explanation: string;
}

function check(cond: boolean, message: string): void {
  if (!cond) throw new RangeError(message);
}

/** The overflow bound 2d'·exp(−2^(2b−2)/(2v)) for a sum with variance proxy v per coordinate (see the module header). */
export function overflowBound(bits: number, padded: number, varianceProxy: number): number {
  const half = 2 ** (bits - 1);
  return Math.min(1, 2 * padded * Math.exp(-(half * half) / (2 * varianceProxy)));
}

/** Validates the options and picks γ (see the module header); throws `RangeError` naming the bad parameter. */
export function planDistributedDiscreteGaussian(o: DistributedPlanOptions): DistributedPlan {
  const { bits: b, length, clipNorm: c, noiseMultiplier: z, expectedClients: nExp } = o;
  check(Number.isSafeInteger(b) && b >= 2 && b <= 32, `bits must be an integer in [2, 32], got ${b}`);
  const padded = paddedLength(length);
  check(c > 0 && Number.isFinite(c), `clipNorm must be finite and > 0, got ${c}`);
  check(z > 0 && Number.isFinite(z), `noiseMultiplier must be finite and > 0, got ${z}`);
  check(Number.isSafeInteger(nExp) && nExp >= 1, `expectedClients must be an integer >= 1, got ${nExp}`);
  const nMin = o.minClients ?? nExp;
  check(Number.isSafeInteger(nMin) && nMin >= 1, `minClients must be an integer >= 1, got ${nMin}`);
  const nMax = o.maxClients ?? 2 * nExp;
  check(
    Number.isSafeInteger(nMax) && nMax >= Math.max(nMin, nExp),
    `maxClients must be an integer >= minClients and expectedClients, got ${nMax}`,
  );
  const p = o.overflowProbability ?? 1e-9;
  check(p > 0 && p < 1, `overflowProbability must be in (0, 1), got ${p}`);
  const beta = o.roundingBeta ?? DEFAULT_ROUNDING_BETA;
  check(beta >= 0 && beta < 1, `roundingBeta must be in [0, 1), got ${beta}`);
  const cohort = o.cohort ?? "sampled";
  check(
    cohort === "sampled" || cohort === "checked-in",
    `cohort must be "sampled" or "checked-in", got ${String(cohort)}`,
  );
  const f = o.corruptFraction ?? 0;
  check(f >= 0 && f < 1 / 3, `corruptFraction must be in [0, 1/3) (SecAgg+'s regime), got ${f}`);
  const corrupt = Math.floor(f * nMax);
  const guaranteed = nMin - 1 - corrupt;
  check(
    guaranteed >= 1,
    `minClients: ${nMin} inputs leave no honest noise share besides the protected device's own ` +
      `(${nMin} − 1 − ${corrupt} colluding = ${guaranteed}); raise minClients or lower corruptFraction`,
  );
  const honestExpected = nExp - Math.floor(f * nExp);

  // v(γ) ≤ γ²·(n_max²C²/d' + n_max·z²C²/h) + n_max/4 + n_max (the last: σ_l² rounded up by < 1).
  const half = 2 ** (b - 1);
  const allowed = (half * half) / (2 * Math.log((2 * padded) / p));
  const perScale2 = (nMax * nMax * c * c) / padded + (nMax * z * z * c * c) / honestExpected;
  const room = allowed - nMax / 4 - nMax;
  check(room > 0, `bits: ${b} bits cannot hold the rounding error of ${nMax} reports at overflow probability ${p}`);
  let scale = Math.min(Math.sqrt(room / perScale2), MAX_SCALED_CLIP / c);
  if (o.scale !== undefined) {
    check(
      o.scale > 0 && Number.isFinite(o.scale) && o.scale <= scale,
      `scale must be in (0, ${scale}] for these parameters, got ${o.scale}`,
    );
    scale = o.scale;
  }
  const exactVariance = (z * c * scale) ** 2 / honestExpected;
  const localVariance = exactVariance >= 64 ? Math.ceil(exactVariance) : exactVariance;
  check(
    localVariance >= 0.25,
    `noise share too small: σ_l² = ${localVariance} < 1/4 (KLS21 Thm. 1 needs σ_l ≥ 1/2); raise bits or noiseMultiplier`,
  );
  const sensitivityBound = roundedNormBound(scale * c, padded, beta);
  const proxy = scale * scale * ((nMax * nMax * c * c) / padded) + nMax / 4 + nMax * localVariance;
  const overflow = overflowBound(b, padded, proxy);
  const tau = distributedTau(guaranteed, localVariance);
  const inflation = Math.sqrt(sensitivityBound) / (scale * c);
  const explanation =
    `γ = ${scale.toPrecision(6)} grid steps per unit: the largest scale (capped at γ·C ≤ 2^24) for which the sum of ` +
    `up to ${nMax} reports wraps around 2^${b} at any of the ${padded} coordinates with probability ≤ ` +
    `${overflow.toExponential(2)} (target ${p}; sub-Gaussian tail with variance proxy γ²n²C²/d' + n/4 + n·σ_l², ` +
    `union bound over d'). Each device adds N_Z(0, ${localVariance.toPrecision(6)}) (σ = z·C = ${(z * c).toPrecision(4)} ` +
    `over the ${honestExpected} honest shares of ${nExp} expected); rounding inflates the sensitivity by ` +
    `${inflation.toFixed(5)}×. Charged: ${guaranteed} shares (${nMin} released inputs − the protected device's own − ` +
    `${corrupt} colluding), τ = ${tau.toExponential(2)}, ` +
    (cohort === "checked-in"
      ? `every checked-in device adding its share (zero-out neighbours, amplified by sampling).`
      : `only sampled devices adding shares (add/remove neighbours).`);
  return {
    bits: b,
    length,
    paddedLength: padded,
    clipNorm: c,
    noiseMultiplier: z,
    expectedClients: nExp,
    minClients: nMin,
    maxClients: nMax,
    cohort,
    corruptFraction: f,
    corruptClients: corrupt,
    guaranteedShares: guaranteed,
    scale,
    roundingBeta: beta,
    sensitivityBound,
    localVariance,
    overflowProbability: overflow,
    tau,
    sensitivityInflation: inflation,
    noiseShares: {
      dimension: padded,
      clients: guaranteed,
      localVariance,
      sensitivityBound,
      ...(cohort === "checked-in" ? { cohort } : {}),
    },
    explanation,
  };
}

/**
 * The plan's noise in the wire's snake_case form (`@fedge/protocol` `DistributedNoise`): what a distributed round's open
 * request states as `mechanism.distributed`. `noise_shares` is the release threshold n_min (the fewest inputs a sum is
 * released of) and `corrupt_devices` c (stated only when > 0, so rounds without colluders keep their wire form); the
 * charge counts `noise_shares − 1 − corrupt_devices` (`distributedSharesOf` in ledger.ts).
 */
export function distributedNoiseOf(plan: DistributedPlan): {
  bits: number;
  scale: number;
  dimension: number;
  noise_shares: number;
  share_variance: number;
  sensitivity_bound: number;
  corrupt_devices?: number;
  cohort?: "checked-in";
} {
  return {
    bits: plan.bits,
    scale: plan.scale,
    dimension: plan.paddedLength,
    noise_shares: plan.minClients,
    share_variance: plan.localVariance,
    sensitivity_bound: plan.sensitivityBound,
    ...(plan.corruptClients > 0 ? { corrupt_devices: plan.corruptClients } : {}),
    ...(plan.cohort === "checked-in" ? { cohort: "checked-in" as const } : {}),
  };
}
