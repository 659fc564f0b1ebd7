/**
 * @module
 * Rényi DP of the Poisson-subsampled Gaussian mechanism and its conversion to (ε, δ)-DP. Pure math, no state.
 * Ported from opacus `opacus/accountants/analysis/rdp.py` (itself from TF Privacy's `rdp_accountant.py`).
 *
 * - RDP of one step at order α: ε(α) = log(A_α)/(α − 1) (Mironov, Talwar, Zhang 2019, "Rényi Differential Privacy of
 *   the Sampled Gaussian Mechanism", arXiv 1908.10530 §3.3), with A_α computed in log space:
 *   integer α (§3.3, Eq. for integer α): A_α = Σ_{i=0..α} C(α,i) (1−q)^{α−i} q^i exp((i² − i)/(2σ²));
 *   fractional α (§3.3): A_α = A₀ + A₁, the two integrals split at z₀ = σ² log(1/q − 1) + 1/2, each an alternating
 *   binomial series whose terms use log erfc.
 *   q = 1 is the Gaussian mechanism: ε(α) = α/(2σ²) exactly (Mironov 2017, "Rényi Differential Privacy",
 *   arXiv 1702.07476 Prop. 7 / Table II). q = 0 gives 0 and σ = 0 gives ∞.
 * - Composition: RDP at a fixed order adds up over steps (arXiv 1702.07476 Prop. 1).
 * - Conversion, improved (Balle, Barthe, Gaboardi, Hsu, Sato 2020, "Hypothesis Testing Interpretations and Rényi
 *   Differential Privacy", arXiv 1905.09982 Thm. 21; the same bound as Canonne, Kamath, Steinke 2020, arXiv 2004.00010
 *   Prop. 12 / Cor. 13): ε = rdp(α) + log((α − 1)/α) − (log δ + log α)/(α − 1). This is what opacus's
 *   `get_privacy_spent` uses.
 * - Conversion, classic (arXiv 1702.07476 Prop. 3): ε = rdp(α) − log δ/(α − 1), as in Abadi et al. 2016 and the
 *   original TF Privacy tutorial.
 * The best ε is the minimum over an order grid (see {@link DEFAULT_ORDERS}); a negative ε is clamped to 0, which is
 * sound because (ε, δ)-DP with ε < 0 implies (0, δ)-DP.
 */
import { logAdd, logErfc, logSub } from "../../gaussian-mechanism/special.ts";

/**
 * The default order grid: opacus's `RDPAccountant.DEFAULT_ALPHAS` (1 + x/10 for x = 1..99, then 12..63, identical to
 * TF Privacy's tutorial orders) extended with 64, 80, 96, 128, 192, 256, 512 and 1024 so that very private settings
 * (small ε, optimum at large α) are not cut off by the grid. Extending the grid can only lower ε (it is a minimum over
 * valid bounds), and for the opacus test settings the optimum lies inside the opacus grid, so results match opacus.
 */
export const DEFAULT_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10),
  ...Array.from({ length: 52 }, (_, i) => 12 + i),
  64,
  80,
  96,
  128,
  192,
  256,
  512,
  1024,
]);

/** log A_α for integer α ≥ 2 and 0 < q < 1 (arXiv 1908.10530 §3.3). */
function logAInt(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const inv2s2 = 1 / (2 * sigma * sigma);
  // All terms are positive: log Σ e^{s_i} = M + log Σ e^{s_i − M} with M = max s_i (same result as repeated logAdd,
  // one exp per term instead of exp + log1p).
  const terms = new Float64Array(alpha + 1);
  let logBinom = 0; // log C(α, 0)
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i <= alpha; i++) {
    if (i > 0) logBinom += Math.log((alpha - i + 1) / i);
    const s = logBinom + i * logQ + (alpha - i) * log1mQ + (i * i - i) * inv2s2;
    terms[i] = s;
    if (s > max) max = s;
  }
  let sum = 0;
  for (let i = 0; i <= alpha; i++) sum += Math.exp(terms[i]! - max);
  return max + Math.log(sum);
}

/** log A_α for fractional α > 1 and 0 < q < 1 (arXiv 1908.10530 §3.3; series stopped once terms < e⁻³⁰). */
function logAFrac(q: number, sigma: number, alpha: number): number {
  let logA0 = Number.NEGATIVE_INFINITY;
  let logA1 = Number.NEGATIVE_INFINITY;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const inv2s2 = 1 / (2 * sigma * sigma);
  const sqrt2Sigma = Math.SQRT2 * sigma;
  let logAbsCoef = 0; // log |C(α, 0)|
  let coefPositive = true;
  for (let i = 0; ; i++) {
    if (i > 0) {
      const f = (alpha - i + 1) / i;
      logAbsCoef += Math.log(Math.abs(f));
      if (f < 0) coefPositive = !coefPositive;
    }
    const j = alpha - i;
    const logT0 = logAbsCoef + i * logQ + j * log1mQ;
    const logT1 = logAbsCoef + j * logQ + i * log1mQ;
    const logE0 = Math.log(0.5) + logErfc((i - z0) / sqrt2Sigma);
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / sqrt2Sigma);
    const logS0 = logT0 + (i * i - i) * inv2s2 + logE0;
    const logS1 = logT1 + (j * j - j) * inv2s2 + logE1;
    if (coefPositive) {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    } else {
      logA0 = logSub(logA0, logS0);
      logA1 = logSub(logA1, logS1);
    }
    if (Math.max(logS0, logS1) < -30) break;
    if (i > 100_000)
      throw new RangeError(`fractional-order RDP series did not converge (q=${q}, σ=${sigma}, α=${alpha})`);
  }
  return logAdd(logA0, logA1);
}

/**
 * RDP of ONE step of the Poisson-subsampled Gaussian mechanism (sensitivity 1, noise multiplier σ) at order α > 1.
 * May be `Infinity`.
 */
export function rdpOfStep(q: number, sigma: number, alpha: number): number {
  if (q === 0) return 0;
  if (sigma === 0) return Number.POSITIVE_INFINITY;
  if (q === 1) return alpha / (2 * sigma * sigma);
  if (alpha === Number.POSITIVE_INFINITY) return Number.POSITIVE_INFINITY;
  const logA = Number.isInteger(alpha) ? logAInt(q, sigma, alpha) : logAFrac(q, sigma, alpha);
  return logA / (alpha - 1);
}

/** RDP of `steps` identical steps at each order (composition adds: arXiv 1702.07476 Prop. 1). */
export function computeRdp(
  q: number,
  sigma: number,
  steps: number,
  orders: readonly number[] = DEFAULT_ORDERS,
): Float64Array {
  const out = new Float64Array(orders.length);
  for (let k = 0; k < orders.length; k++) out[k] = steps === 0 ? 0 : rdpOfStep(q, sigma, orders[k]!) * steps;
  return out;
}

/** The result of an RDP → (ε, δ) conversion. */
export interface PrivacySpent {
  epsilon: number;
  /** The order α at which the minimum was attained (NaN if ε is infinite at every order). */
  order: number;
  /** True when the best order is the smallest or largest of the grid: extending the grid could lower ε. */
  orderAtGridEdge: boolean;
}

/** Which RDP → (ε, δ) conversion to use: `improved` (arXiv 1905.09982 Thm. 21, the default) or `classic` (arXiv 1702.07476 Prop. 3). */
export type RdpConversion = "improved" | "classic";

/** ε at one order for the given conversion. */
export function epsilonAtOrder(
  rdp: number,
  alpha: number,
  delta: number,
  conversion: RdpConversion = "improved",
): number {
  if (conversion === "classic") return rdp - Math.log(delta) / (alpha - 1);
  return rdp + Math.log1p(-1 / alpha) - (Math.log(delta) + Math.log(alpha)) / (alpha - 1);
}

/** Best (ε, α) over the grid for a composed RDP curve (like opacus `get_privacy_spent`), ε clamped at 0. */
export function getPrivacySpent(
  orders: readonly number[],
  rdp: ArrayLike<number>,
  delta: number,
  conversion: RdpConversion = "improved",
): PrivacySpent {
  if (orders.length !== rdp.length) throw new RangeError("orders and rdp must have the same length");
  let best = Number.POSITIVE_INFINITY;
  let bestIdx = -1;
  for (let k = 0; k < orders.length; k++) {
    const alpha = orders[k]!;
    if (!(alpha > 1)) throw new RangeError(`RDP orders must be > 1, got ${alpha}`);
    const eps = epsilonAtOrder(rdp[k]!, alpha, delta, conversion);
    if (eps < best) {
      best = eps;
      bestIdx = k;
    }
  }
  if (bestIdx < 0) return { epsilon: Number.POSITIVE_INFINITY, order: Number.NaN, orderAtGridEdge: false };
  return {
    epsilon: Math.max(0, best),
    order: orders[bestIdx]!,
    orderAtGridEdge: bestIdx === 0 || bestIdx === orders.length - 1,
  };
}
