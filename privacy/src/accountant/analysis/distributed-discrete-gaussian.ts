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
 *   Differential Privacy", ICML (arXiv 1808.00087), for any mechanism's add/remove RDP curve at integer orders
 *   (`poisson-subsampled-rdp.ts`), taken together with ε(α) itself. The discrete noise is not a Gaussian, so Mironov
 *   et al.'s sampled-Gaussian formula (`rdp.ts`) does not apply to it.
 * - Fractional orders: Thm. 1 and Prop. 14 hold for every real α ≥ 1, so the unsampled ε(α) is evaluated as is. Zhu &
 *   Wang's bound needs integer orders; D_α is non-decreasing in α (van Erven & Harremoës 2014, "Rényi Divergence and
 *   Kullback-Leibler Divergence", IEEE Trans. Inf. Theory 60(7), Thm. 3), so the subsampled ε_q(α) ≤ ε_q(⌈α⌉).
 *
 * Which neighbours (docs/PRIVACY.md, "Which neighbour"). `clients` = g counts the honest shares of OTHER devices;
 * the protected device adds one more share s² = σ_l² with its update k (‖k‖₂² ≤ B).
 * - **Add/remove** (the default, and what Zhu & Wang's amplification needs: their RDP is over datasets that differ
 *   by one record, both ways). With the device the sum is P₁ = k + (g+1 shares), without it P₀ = (g shares): the
 *   device's share leaves with it, so the variances differ. {@link distributedAddRemoveRdp} bounds both
 *   D_α(P₁‖P₀) and D_α(P₀‖P₁) by the exact Rényi divergence of N_Z(k, (g+1)s²) and N_Z(0, g·s²)
 *   (`gaussian-renyi.ts`: the isotropic Gaussians' closed form plus the lattice's slack), plus the sums' distance to
 *   those discrete Gaussians: with KLS21 Thm. 1's closeness per coordinate (max-divergence ≤ τ_n each way for n
 *   shares), ∫p^α q^{1−α} grows by at most e^{ατ_P + (α−1)τ_Q}, i.e. D_α by d·(τ_P·α/(α−1) + τ_Q). The variance
 *   mismatch adds ≈ α·d/(4g²) whatever the noise scale, and D_α(P₁‖P₀) = ∞ from α ≥ g + 1 (σ_α² ≤ 0).
 * - **Zero-out** (`adjacency: "zero-out"`; Kairouz, McMahan, Song, Thakkar, Thakurta, Xu 2021, arXiv 2103.00039):
 *   the device stays and its update is replaced by 0, so both sums hold its share: KLS21 Prop. 14 for g + 1 shares,
 *   mean shift only ({@link distributedRdp}). It is the charge against a party that sees who takes part (the edge),
 *   so it is only accepted without subsampling (q = 1), unless every checked-in device adds its share:
 * - **Zero-out with a checked-in cohort** (`cohort: "checked-in"`): every device that checks in joins the secure
 *   aggregation and adds its share; the coin only decides whether its update k or a zero goes in. Given the others'
 *   coins, the sum with the device is (1 − q)·μ₀ + q·μ₁ against μ₀ without it, where μ₁ = k + (g + 1 shares) and
 *   μ₀ = 0 + (g + 1 shares): the shares are the same in both, so the base pair is KLS21 Prop. 14's mean shift for
 *   g + 1 shares, and the mixture is exactly the structure of Zhu & Wang's add/remove bound (their "record present"
 *   is here "update non-zero"). So the charge is Zhu & Wang over {@link distributedRdp} with g + 1 shares, against
 *   whoever does not see the coins; against the edge, which flips them, it stays the q = 1 zero-out charge.
 */

import { isotropicGaussianRenyi, latticeGaussianRenyiSlack } from "./gaussian-renyi.ts";
import { poissonSubsampledRdp } from "./poisson-subsampled-rdp.ts";

/** The parameters of one distributed-discrete-Gaussian release, all in integer (grid) units. */
export interface DistributedNoiseShares {
  /** d, coordinates of the integer vectors (the padded length). */
  dimension: number;
  /**
   * g ≥ 1, independent noise shares of other (honest) devices every released sum holds besides the protected
   * device's own. ({@link distributedRdp}, the bound for a sum of n shares, reads it as n.)
   */
  clients: number;
  /** σ_l², the variance parameter of each share's discrete Gaussian (≥ 1/4). */
  localVariance: number;
  /** B, the integer bound on one device's ‖k‖₂² after rounding: Δ₂ = √B. */
  sensitivityBound: number;
  /**
   * The neighbours the charge bounds (module header): `add-remove` (the device and its share absent from one sum)
   * or `zero-out` (the device's update replaced by 0, its share in both; only without subsampling).
   * @default "add-remove"
   */
  adjacency?: DistributedAdjacency | undefined;
  /**
   * Who adds a share (module header): `sampled` (only the devices the coin selects) or `checked-in` (every device
   * that checks in, a coin-excluded one with a zero update). `checked-in` is charged for zero-out neighbours and
   * admits amplification by sampling; it cannot be combined with `adjacency: "add-remove"`.
   * @default "sampled"
   */
  cohort?: DistributedCohort | undefined;
}

/** Which neighbouring sums a distributed charge compares (module header). */
export type DistributedAdjacency = "add-remove" | "zero-out";

/** Who adds a noise share to a distributed round's sum (module header). */
export type DistributedCohort = "sampled" | "checked-in";

/** The adjacency a release of these shares is charged for: zero-out for a checked-in cohort, else as stated. */
export function chargedAdjacency(p: Pick<DistributedNoiseShares, "adjacency" | "cohort">): DistributedAdjacency {
  return p.cohort === "checked-in" ? "zero-out" : (p.adjacency ?? "add-remove");
}

function checkShares(p: DistributedNoiseShares): void {
  const { dimension: d, clients: n, localVariance: v, sensitivityBound: b } = p;
  if (!Number.isSafeInteger(d) || d < 1) throw new RangeError(`dimension must be an integer >= 1, got ${d}`);
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`clients must be an integer >= 1, got ${n}`);
  if (!(v >= 0.25) || !Number.isFinite(v)) {
    throw new RangeError(`localVariance must be finite and >= 1/4 (σ_l >= 1/2, KLS21 Thm. 1), got ${v}`);
  }
  if (!Number.isSafeInteger(b) || b < 1) throw new RangeError(`sensitivityBound must be an integer >= 1, got ${b}`);
  const a = p.adjacency;
  if (a !== undefined && a !== "add-remove" && a !== "zero-out") {
    throw new RangeError(`adjacency must be "add-remove" or "zero-out", got ${String(a)}`);
  }
  const cohort = p.cohort;
  if (cohort !== undefined && cohort !== "sampled" && cohort !== "checked-in") {
    throw new RangeError(`cohort must be "sampled" or "checked-in", got ${String(cohort)}`);
  }
  if (cohort === "checked-in" && a === "add-remove") {
    throw new RangeError(
      `a checked-in cohort keeps every device's share in the sum, so it is charged for zero-out neighbours, not add/remove`,
    );
  }
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

/** The two directions of the add/remove pair at order α (module header): D_α(P₁‖P₀) (device present against
 * absent) and D_α(P₀‖P₁), each the exact lattice-Gaussian bound plus KLS21's τ correction; +∞ where infinite. */
export function distributedAddRemoveDirections(
  p: DistributedNoiseShares,
  order: number,
): { present: number; absent: number } {
  checkShares(p);
  if (!(order > 1)) throw new RangeError(`RDP order must be > 1, got ${order}`);
  const g = p.clients;
  const s2 = p.localVariance;
  const tauWith = distributedTau(g + 1, s2);
  const tauWithout = distributedTau(g, s2);
  const d = p.dimension;
  const direction = (variance1: number, variance2: number, tau1: number, tau2: number): number => {
    const pair = { dimension: d, meanDistanceSquared: p.sensitivityBound, variance1, variance2 };
    const exact = isotropicGaussianRenyi(pair, order);
    if (exact === Number.POSITIVE_INFINITY) return exact;
    return exact + latticeGaussianRenyiSlack(pair, order) + d * ((tau1 * order) / (order - 1) + tau2);
  };
  return {
    present: direction((g + 1) * s2, g * s2, tauWith, tauWithout),
    absent: direction(g * s2, (g + 1) * s2, tauWithout, tauWith),
  };
}

/**
 * The unsampled RDP ε(α) of one release for add/remove neighbours: the larger direction of
 * {@link distributedAddRemoveDirections}; +∞ from α ≥ g + 1.
 */
export function distributedAddRemoveRdp(p: DistributedNoiseShares, order: number): number {
  const { present, absent } = distributedAddRemoveDirections(p, order);
  return Math.max(present, absent);
}

/**
 * The part of {@link distributedAddRemoveRdp} no noise scale removes: the divergence of N(0, (g+1)I_d) and
 * N(0, g·I_d), larger direction (the mean term vanishes as the shares grow; τ and the lattice slack are ≥ 0). Every
 * add/remove charge of d coordinates and g other shares is at least this, whatever z.
 */
export function distributedAddRemoveFloor(dimension: number, clients: number, order: number): number {
  if (!Number.isSafeInteger(clients) || clients < 1)
    throw new RangeError(`clients must be an integer >= 1, got ${clients}`);
  const pair = (variance1: number, variance2: number) =>
    isotropicGaussianRenyi({ dimension, meanDistanceSquared: 0, variance1, variance2 }, order);
  return Math.max(pair(clients + 1, clients), pair(clients, clients + 1));
}

/**
 * The unsampled RDP ε(α) of one release for the shares' adjacency: {@link distributedAddRemoveRdp}, or under
 * zero-out {@link distributedRdp} with the device's own share counted (g + 1 shares).
 */
export function distributedStepRdp(p: DistributedNoiseShares, order: number): number {
  if (chargedAdjacency(p) === "zero-out") return distributedRdp({ ...p, clients: p.clients + 1 }, order);
  return distributedAddRemoveRdp(p, order);
}

/**
 * RDP at each order of ONE Poisson-subsampled release with rate q (Zhu & Wang 2019's general bound, see the module
 * header) for the shares' adjacency ({@link distributedStepRdp}), never above the unsampled ε(α). Orders are real
 * > 1; with q < 1 the bound is evaluated at ⌈α⌉ and needs ε(ℓ) finite for every ℓ ≤ ⌈α⌉, so under add/remove it is
 * +∞ from ⌈α⌉ ≥ g + 1 (the accountant then minimises over the orders below). Zero-out steps must have q = 1 unless
 * their cohort is `checked-in`.
 */
export function distributedSubsampledRdp(
  q: number,
  p: DistributedNoiseShares,
  orders: readonly number[],
): Float64Array {
  checkShares(p);
  if (!(q > 0 && q <= 1)) throw new RangeError(`sampleRate must be in (0, 1], got ${q}`);
  if (p.adjacency === "zero-out" && p.cohort !== "checked-in" && q !== 1) {
    throw new RangeError(
      `zero-out adjacency of a sampled cohort is charged without subsampling (sampleRate 1): amplification needs add/remove or a checked-in cohort, got ${q}`,
    );
  }
  return poissonSubsampledRdp(q, orders, (order) => distributedStepRdp(p, order));
}
