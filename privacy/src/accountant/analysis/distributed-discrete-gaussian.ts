/**
 * @module
 * Rényi DP of the distributed discrete Gaussian: the sum of n devices' independent N_Z(0, σ_l²) noise vectors on
 * integers in d coordinates, released after adding integer updates of L2 norm ≤ Δ₂ (and L1 norm ≤ Δ₁). Pure math.
 *
 * - Kairouz, Liu, Steinke 2021, "The Distributed Discrete Gaussian Mechanism for Federated Learning with Secure
 *   Aggregation", arXiv 2102.06387, Theorem 1: the sum of n discrete Gaussians is close to N_Z(0, nσ_l²), coordinate
 *   by coordinate, with the closeness
 *     τ = 10 · Σ_{k=1}^{n−1} exp(−2π²σ_l² · k/(k + 1)),   valid for σ_l ≥ 1/2;
 *   Proposition 14 (Eq. 17) then bounds the divergence for such noise of variance σ² = nσ_l²:
 *     D_α ≤ min{ α·Δ₂²/(2σ²) + τ·d,
 *                (α/2)·(Δ₂²/σ² + 2·Δ₁·τ/σ + τ²·d),
 *                (α/2)·(Δ₂/σ + τ·√d)² }.
 *   τ = 0 (n = 1) is the discrete Gaussian of Canonne, Kamath, Steinke 2020 (arXiv 2004.00010 Thm. 14): α·Δ₂²/(2σ²).
 * - Poisson subsampling with rate q: the general upper bound of Zhu & Wang 2019, "Poisson Subsampled Rényi
 *   Differential Privacy", ICML (PMLR 97; arXiv 1808.00087, Thm. 5 of the proceedings), for any mechanism with RDP
 *   curve ε(·) at integer orders α ≥ 2:
 *     ε_q(α) ≤ 1/(α−1) · log{ (1−q)^{α−1}(αq − q + 1) + C(α,2) q² (1−q)^{α−2} e^{ε(2)}
 *                              + 3 Σ_{ℓ=3}^{α} C(α,ℓ) (1−q)^{α−ℓ} q^ℓ e^{(ℓ−1)ε(ℓ)} },
 *   taken together with ε(α) itself (the smaller holds). The discrete noise is not a Gaussian, so Mironov et al.'s
 *   sampled-Gaussian formula (`rdp.ts`) does not apply to it.
 * - Fractional orders: Thm. 1 and Prop. 14 hold for every real α ≥ 1, so the unsampled ε(α) is evaluated as is. Zhu &
 *   Wang's bound needs integer orders; D_α is non-decreasing in α (van Erven & Harremoës 2014, "Rényi Divergence and
 *   Kullback-Leibler Divergence", IEEE Trans. Inf. Theory 60(7), Thm. 3), so the subsampled ε_q(α) ≤ ε_q(⌈α⌉).
 */

/** The parameters of one distributed-discrete-Gaussian release, all in integer (grid) units. */
export interface DistributedNoiseShares {
  /** d, coordinates of the integer vectors (the padded length). */
  dimension: number;
  /** n ≥ 1, independent noise shares the sum is guaranteed to hold. */
  clients: number;
  /** σ_l², the variance parameter of each share's discrete Gaussian (≥ 1/4). */
  localVariance: number;
  /** B, the integer bound on one device's ‖k‖₂² after rounding: Δ₂ = √B. */
  sensitivityBound: number;
}

function checkShares(p: DistributedNoiseShares): void {
  const { dimension: d, clients: n, localVariance: v, sensitivityBound: b } = p;
  if (!Number.isSafeInteger(d) || d < 1) throw new RangeError(`dimension must be an integer >= 1, got ${d}`);
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`clients must be an integer >= 1, got ${n}`);
  if (!(v >= 0.25) || !Number.isFinite(v)) {
    throw new RangeError(`localVariance must be finite and >= 1/4 (σ_l >= 1/2, KLS21 Thm. 1), got ${v}`);
  }
  if (!Number.isSafeInteger(b) || b < 1) throw new RangeError(`sensitivityBound must be an integer >= 1, got ${b}`);
}

/** τ of KLS21 Theorem 1: 10·Σ_{k=1}^{n−1} exp(−2π²σ_l²·k/(k+1)) (0 for one share). */
export function distributedTau(clients: number, localVariance: number): number {
  const c = -2 * Math.PI * Math.PI * localVariance;
  let sum = 0;
  for (let k = 1; k < clients; k++) {
    const term = Math.exp((c * k) / (k + 1));
    sum += term;
    // The terms grow towards exp(c); once they are below 1e-300 of the sum's scale they can no longer matter.
    if (term === 0 && Math.exp(c) === 0) break;
  }
  return 10 * sum;
}

/** Δ₁ bound for an integer vector with ‖k‖₂² ≤ B in d coordinates: min(√(d·B), B) (|k_i| ≤ k_i² on integers). */
export function distributedL1Bound(dimension: number, sensitivityBound: number): number {
  return Math.min(Math.sqrt(dimension * sensitivityBound), sensitivityBound);
}

/** The unsampled RDP ε(α) of one release (KLS21 Prop. 14 with Thm. 1's τ), for a real α > 1. */
export function distributedRdp(p: DistributedNoiseShares, order: number): number {
  checkShares(p);
  if (!(order > 1)) throw new RangeError(`RDP order must be > 1, got ${order}`);
  if (order === Number.POSITIVE_INFINITY) return Number.POSITIVE_INFINITY;
  const alpha = order;
  const sigma2 = p.clients * p.localVariance;
  const sigma = Math.sqrt(sigma2);
  const tau = distributedTau(p.clients, p.localVariance);
  const d = p.dimension;
  const l2Squared = p.sensitivityBound / sigma2;
  const l1 = distributedL1Bound(d, p.sensitivityBound) / sigma;
  const a = (alpha * l2Squared) / 2 + tau * d;
  const b = (alpha / 2) * (l2Squared + 2 * l1 * tau + tau * tau * d);
  const c = (alpha / 2) * (Math.sqrt(l2Squared) + tau * Math.sqrt(d)) ** 2;
  return Math.min(a, b, c);
}

/** log C(α, ℓ) for integers 0 ≤ ℓ ≤ α (a running sum; exact enough for α ≤ 10⁴). */
function logBinomials(alpha: number): Float64Array {
  const out = new Float64Array(alpha + 1);
  for (let l = 1; l <= alpha; l++) out[l] = out[l - 1]! + Math.log((alpha - l + 1) / l);
  return out;
}

/**
 * RDP at each order of ONE Poisson-subsampled release with rate q (Zhu & Wang 2019's general bound, see the module
 * header), never above the unsampled ε(α). Orders are real > 1; with q < 1 the bound is evaluated at ⌈α⌉.
 */
export function distributedSubsampledRdp(
  q: number,
  p: DistributedNoiseShares,
  orders: readonly number[],
): Float64Array {
  checkShares(p);
  if (!(q > 0 && q <= 1)) throw new RangeError(`sampleRate must be in (0, 1], got ${q}`);
  const maxOrder = Math.ceil(Math.max(...orders));
  if (!(maxOrder >= 2) || !Number.isFinite(maxOrder)) throw new RangeError("orders must be finite and > 1");
  // ε(ℓ) for ℓ = 2..maxOrder, computed once.
  const eps = new Float64Array(maxOrder + 1);
  for (let l = 2; l <= maxOrder; l++) eps[l] = distributedRdp(p, l);
  const out = new Float64Array(orders.length);
  const cache = new Map<number, number>();
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  for (let k = 0; k < orders.length; k++) {
    const order = orders[k]!;
    const unsampled = distributedRdp(p, order);
    if (q === 1) {
      out[k] = unsampled;
      continue;
    }
    const alpha = Math.ceil(order);
    let value = cache.get(alpha);
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
    out[k] = Math.min(value, unsampled);
  }
  return out;
}
