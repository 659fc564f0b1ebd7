/**
 * @module
 * Poisson subsampling of any mechanism's RDP curve: the general upper bound of Zhu & Wang 2019, "Poisson Subsampled
 * Rényi Differential Privacy", ICML (PMLR 97; arXiv 1808.00087, Thm. 5 of the proceedings). For a mechanism with RDP
 * ε(·) at integer orders α ≥ 2 over add/remove neighbours (both directions), the rate-q subsampled one has
 *   ε_q(α) ≤ 1/(α−1) · log{ (1−q)^{α−1}(αq − q + 1) + C(α,2) q² (1−q)^{α−2} e^{ε(2)}
 *                            + 3 Σ_{ℓ=3}^{α} C(α,ℓ) (1−q)^{α−ℓ} q^ℓ e^{(ℓ−1)ε(ℓ)} },
 * taken together with ε(α) itself (the smaller holds). The bound needs every ε(ℓ), ℓ ≤ α, finite: it is +∞ from the
 * first order whose base divergence is infinite. Real orders use ⌈α⌉: D_α is non-decreasing in α (van Erven &
 * Harremoës 2014, IEEE Trans. Inf. Theory 60(7), Thm. 3). Pure.
 */

/** log C(α, ℓ) for integers 0 ≤ ℓ ≤ α (a running sum; exact enough for α ≤ 10⁴). */
function logBinomials(alpha: number): Float64Array {
  const out = new Float64Array(alpha + 1);
  for (let l = 1; l <= alpha; l++) out[l] = out[l - 1]! + Math.log((alpha - l + 1) / l);
  return out;
}

/**
 * The subsampled curve at `orders` (real > 1) of a base mechanism whose unsampled RDP at order α is `base(α)`
 * (+∞ allowed), never above the unsampled value; q = 1 returns the base curve.
 */
export function poissonSubsampledRdp(
  q: number,
  orders: readonly number[],
  base: (order: number) => number,
): Float64Array {
  if (!(q > 0 && q <= 1)) throw new RangeError(`sampleRate must be in (0, 1], got ${q}`);
  const maxOrder = Math.ceil(Math.max(...orders));
  if (!(maxOrder >= 2) || !Number.isFinite(maxOrder) || !orders.every((a) => a > 1)) {
    throw new RangeError("orders must be finite and > 1");
  }
  const out = new Float64Array(orders.length);
  if (q === 1) {
    for (let k = 0; k < orders.length; k++) out[k] = base(orders[k]!);
    return out;
  }
  // ε(ℓ) for ℓ = 2..maxOrder, computed once.
  const eps = new Float64Array(maxOrder + 1);
  for (let l = 2; l <= maxOrder; l++) eps[l] = base(l);
  const cache = new Map<number, number>();
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  for (let k = 0; k < orders.length; k++) {
    const order = orders[k]!;
    const alpha = Math.ceil(order);
    let value = cache.get(alpha);
    // ε(ℓ) is non-decreasing, so ε(α) finite means every ε(ℓ ≤ α) is.
    if (value === undefined && !Number.isFinite(eps[alpha]!)) value = Number.POSITIVE_INFINITY;
    if (value === undefined) {
      const lb = logBinomials(alpha);
      const terms: number[] = [
        (alpha - 1) * log1mQ + Math.log(alpha * q - q + 1),
        lb[2]! + 2 * logQ + (alpha - 2) * log1mQ + eps[2]!,
      ];
      for (let l = 3; l <= alpha; l++) {
        terms.push(Math.log(3) + lb[l]! + (alpha - l) * log1mQ + l * logQ + (l - 1) * eps[l]!);
      }
      let max = Number.NEGATIVE_INFINITY;
      for (const t of terms) if (t > max) max = t;
      let sum = 0;
      for (const t of terms) sum += Math.exp(t - max);
      value = Math.min(eps[alpha]!, (max + Math.log(sum)) / (alpha - 1));
      cache.set(alpha, value);
    }
    out[k] = Math.min(value, base(order));
  }
  return out;
}
