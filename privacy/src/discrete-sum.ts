/**
 * @module
 * The central-mode noise mechanism that floating point cannot break: clipped updates are quantised to a fixed-point
 * grid, summed exactly in integers, and the sum gets exact discrete Gaussian noise. Pure: no I/O, randomness injected.
 *
 * Why (Mironov 2012, "On significance of the least significant bits for differential privacy", CCS'12): a float
 * sample x + N(0, σ²) does not have the ideal distribution; its low-order bits depend on x, and the set of reachable
 * doubles differs between neighbouring inputs, which can reveal x outright. Adding integer noise to an integer sum
 * has no such gap: every step below is exact integer arithmetic, and only the released integer vector is rescaled
 * (post-processing).
 *
 * The mechanism, per round (d coordinates, clip norm C, grid γ = C/M for M grid points per C):
 * 1. Clip with a factor rounded DOWN ({@link clipFactorDown}): f ≤ C/‖u‖₂ in real arithmetic, so ‖f·u‖₂ ≤ C.
 * 2. Quantise by nearest rounding: k_i = round(f·u_i/γ). Then ‖k‖₂ ≤ ‖f·u/γ‖₂ + ‖k − f·u/γ‖₂ ≤ M + √d/2, i.e. in
 *    float units the L2 sensitivity after rounding is Δ₂ ≤ C + γ√d/2. The bound is not only argued but enforced:
 *    Σk_i² is computed exactly (integers below 2⁵³) and checked against the integer B = M² + ⌊√(M²d)⌋ + ⌊d/4⌋
 *    ≤ (M + √d/2)²; an update that fails (possible only through the float rounding of step 1/2 at the boundary) is
 *    shrunk and quantised again. So Δ₂ = √B grid units under add/remove-one-device adjacency, exactly.
 * 3. Sum the k's in a Float64Array: integers stay exact while |Σ| < 2⁵³ (checked).
 * 4. Add Y_i ~ N_Z(0, σ²) per coordinate with σ = z·√B (integer units; the exact sampler of Canonne, Kamath, Steinke
 *    2020, arXiv 2004.00010 Alg. 3, `samplers/discrete-gaussian.ts`), σ² rounded up.
 * 5. Release (Σk + Y)·γ/denominator (post-processing).
 *
 * Accounting: the multivariate discrete Gaussian with L2 sensitivity Δ₂ and parameter σ satisfies ½(Δ₂/σ)²-concentrated
 * DP (CKS20 Thm. 14), i.e. every Rényi divergence D_α is at most the continuous Gaussian's α·Δ₂²/(2σ²); here
 * σ/Δ₂ = z exactly, so a round is charged as the Gaussian mechanism with noise multiplier z (the ledger is unchanged).
 * With Poisson subsampling, the sampled-Gaussian RDP at integer orders (Mironov, Talwar, Zhang 2019, arXiv 1908.10530
 * §3.3) is a positive combination of exp((k−1)·D_k), so the bound carries over there. The (ε, δ) profile is NOT
 * dominated exactly: the privacy loss lives on a lattice and its δ(ε) can exceed the continuous one's by a relative
 * ≈ 2/σ² (σ in grid units; measured in the tests), which the default grid (σ ≥ z·500·√d) makes ≲ 10⁻⁷ of δ. The
 * PLD accountant, fractional RDP orders and the add direction use the continuous Gaussian under that approximation
 * (docs/PRIVACY.md "What the accountant assumes").
 * The grid costs noise, not ε: σ grows by the factor √B/M ≈ 1 + √d/(2M) ({@link DiscreteGaussianSumPlan.noiseInflation});
 * the default M makes it ≤ 1.001.
 */
import { fillDiscreteGaussian, isqrt } from "./samplers/discrete-gaussian.ts";
import { cryptoRandomBytes, type RandomBytes } from "./samplers/random.ts";

/** Unit roundoff of float64. */
const U = 2 ** -53;

/**
 * A clip factor rounded down: f ≤ min(1, C/‖u‖₂) in exact arithmetic, where ‖u‖₂² is the exact sum of the squares of
 * `length` float32 values and `sumSq` its float64 sum (any order). The float64 sum errs by at most (length − 1)·u
 * relative (each square of a float32 is exact), the square root and the division by u each; the factor is shrunk by
 * (length + 8)·2u to cover them, so it can only be too small, never too large.
 */
export function clipFactorDown(sumSq: number, clipNorm: number, length: number): number {
  if (!(clipNorm > 0) || !Number.isFinite(clipNorm))
    throw new RangeError(`clipNorm must be finite and > 0, got ${clipNorm}`);
  if (!(sumSq >= 0) || !Number.isFinite(sumSq)) throw new RangeError(`sumSq must be finite and >= 0, got ${sumSq}`);
  if (!Number.isSafeInteger(length) || length < 0)
    throw new RangeError(`length must be an integer >= 0, got ${length}`);
  const slack = (length + 8) * 2 * U;
  if (sumSq * (1 + slack) <= clipNorm * clipNorm * (1 - 4 * U)) return 1; // certainly ‖u‖ ≤ C
  return Math.min(1, (clipNorm / Math.sqrt(sumSq)) * (1 - slack));
}

/** Σ v_i² of float32 values in float64, and an upper bound on the exact sum. */
function sumSquares32(v: Float32Array): { sum: number; upper: number } {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  return { sum: s, upper: s * (1 + (v.length + 2) * 2 * U) };
}

/**
 * Clips a float32 update so that the float32 result has ‖·‖₂ ≤ C in exact arithmetic (checked with a rigorous upper
 * bound on its float64 norm, shrinking the factor again if needed). Returns the clipped copy, the factor and whether
 * the update was left unclipped (‖u‖ ≤ C, the b_i of adaptive clipping).
 */
export function clipToNorm(
  u: Float32Array,
  clipNorm: number,
): { clipped: Float32Array; factor: number; unclipped: boolean } {
  const { sum } = sumSquares32(u);
  if (!Number.isFinite(sum)) throw new RangeError("update has a non-finite value (or its squared norm overflows)");
  const unclipped = sum <= clipNorm * clipNorm;
  let f = clipFactorDown(sum, clipNorm, u.length);
  const limit = clipNorm * clipNorm * (1 - 4 * U);
  for (;;) {
    const out = new Float32Array(u.length);
    for (let i = 0; i < u.length; i++) out[i] = f * u[i]!; // fl32 rounding may go up by 2⁻²⁴ per coordinate
    if (sumSquares32(out).upper <= limit) return { clipped: out, factor: f, unclipped };
    f *= 1 - 2 ** -22;
  }
}

/**
 * σ² for the sampler, never below `v`: an integer when σ² ≥ 64 (the exact sampler's rationals then stay small, which
 * makes it several times faster; the extra noise is below 1/128 of σ²'s relative precision at that size), else `v`.
 */
function roundVarianceUp(v: number): number {
  return v >= 64 ? Math.ceil(v) : v;
}

/** Options of {@link DiscreteGaussianSum}. */
export interface DiscreteGaussianSumOptions {
  /** d, the number of coordinates of every update. */
  length: number;
  /** C > 0, the L2 clip norm. */
  clipNorm: number;
  /** z > 0: the noise std in units of the sensitivity (σ = z·Δ₂); what the accountant is charged. */
  noiseMultiplier: number;
  /**
   * Largest acceptable noise inflation √B/M − 1 from the grid; the grid is M = ⌈√d/(2·ι)⌉ points per C.
   * @default 1e-3
   */
  maxNoiseInflation?: number;
  /**
   * Grid points per clip norm M (overrides `maxNoiseInflation`), an integer ≥ 1 with M + √d/2 < 2²⁶ (squares stay
   * exact in float64).
   */
  gridPointsPerClip?: number;
}

/** The grid and noise a {@link DiscreteGaussianSum} uses. */
export interface DiscreteGaussianSumPlan {
  /** M: grid points per clip norm (γ = C/M). */
  gridPointsPerClip: number;
  /** γ = C/M, the value of one integer step. */
  gridStep: number;
  /** B: the exact bound on Σk_i² of one quantised update; Δ₂ = √B grid units. */
  sensitivityBound: number;
  /** Δ₂ in float units, √B·γ (≥ C; ≤ C + γ√d/2). */
  sensitivity: number;
  /** σ² of the integer noise (rounded up so that σ ≥ z·√B). */
  noiseVariance: number;
  /** σ in float units, √(σ²)·γ. */
  noiseStd: number;
  /** √B/M: how much more noise than z·C the grid costs (z is unchanged). */
  noiseInflation: number;
}

/** The grid plan of {@link DiscreteGaussianSum} for these options (validated). */
export function planDiscreteGaussianSum(o: DiscreteGaussianSumOptions): DiscreteGaussianSumPlan {
  const { length: d, clipNorm: c, noiseMultiplier: z } = o;
  if (!Number.isSafeInteger(d) || d < 1) throw new RangeError(`length must be a positive integer, got ${d}`);
  if (!(c > 0) || !Number.isFinite(c)) throw new RangeError(`clipNorm must be finite and > 0, got ${c}`);
  if (!(z > 0) || !Number.isFinite(z)) throw new RangeError(`noiseMultiplier must be finite and > 0, got ${z}`);
  let m: number;
  if (o.gridPointsPerClip !== undefined) {
    m = o.gridPointsPerClip;
    if (!Number.isSafeInteger(m) || m < 1) throw new RangeError(`gridPointsPerClip must be an integer >= 1, got ${m}`);
  } else {
    const iota = o.maxNoiseInflation ?? 1e-3;
    if (!(iota > 0 && iota <= 1)) throw new RangeError(`maxNoiseInflation must be in (0, 1], got ${iota}`);
    m = Math.ceil(Math.sqrt(d) / (2 * iota));
  }
  if (!(m + Math.sqrt(d) / 2 < 2 ** 26)) {
    throw new RangeError(`grid too fine: M + √d/2 must stay below 2^26 (M = ${m}, d = ${d})`);
  }
  // B = M² + ⌊√(M²·d)⌋ + ⌊d/4⌋ ≤ M² + M√d + d/4 = (M + √d/2)², exact in bigints.
  const mb = BigInt(m);
  const b = Number(mb * mb + isqrt(mb * mb * BigInt(d)) + BigInt(d) / 4n);
  const sensitivityUnits = Math.sqrt(b);
  const noiseVariance = roundVarianceUp(z * z * b * (1 + 8 * U));
  const gridStep = c / m;
  return {
    gridPointsPerClip: m,
    gridStep,
    sensitivityBound: b,
    sensitivity: sensitivityUnits * gridStep,
    noiseVariance,
    noiseStd: Math.sqrt(noiseVariance) * gridStep,
    noiseInflation: sensitivityUnits / m,
  };
}

/**
 * Exact central-mode sum: add clipped-and-quantised updates one by one, then {@link finish} with discrete Gaussian
 * noise. Memory O(d). See the module header for the mechanism and its sensitivity.
 */
export class DiscreteGaussianSum {
  readonly length: number;
  readonly clipNorm: number;
  readonly noiseMultiplier: number;
  readonly plan: DiscreteGaussianSumPlan;
  private readonly acc: Float64Array;
  private readonly scratch: Float64Array;
  private count = 0;
  private unclipped = 0;
  private done = false;

  constructor(options: DiscreteGaussianSumOptions) {
    this.plan = planDiscreteGaussianSum(options);
    this.length = options.length;
    this.clipNorm = options.clipNorm;
    this.noiseMultiplier = options.noiseMultiplier;
    this.acc = new Float64Array(options.length);
    this.scratch = new Float64Array(options.length);
  }

  /** Updates added so far and how many were left unclipped (‖u‖ ≤ C). */
  stats(): { count: number; unclippedCount: number } {
    return { count: this.count, unclippedCount: this.unclipped };
  }

  /**
   * Clips, quantises and adds one update (atomic: throws RangeError and adds nothing on a wrong length or a
   * non-finite value). Returns whether it was left unclipped.
   */
  add(update: Float32Array): boolean {
    if (this.done) throw new RangeError("DiscreteGaussianSum was already finished");
    const d = this.length;
    if (!(update instanceof Float32Array) || update.length !== d) {
      throw new RangeError(`update must be a Float32Array of ${d} values`);
    }
    let sumSq = 0;
    for (let i = 0; i < d; i++) sumSq += update[i]! * update[i]!;
    if (!Number.isFinite(sumSq)) throw new RangeError("update has a non-finite value (or its squared norm overflows)");
    const { gridPointsPerClip: m, sensitivityBound: bound } = this.plan;
    const c = this.clipNorm;
    const isUnclipped = sumSq <= c * c;
    let f = clipFactorDown(sumSq, c, d);
    const k = this.scratch;
    for (;;) {
      const g = (f * m) / c; // grid steps per unit of u
      let sq = 0;
      for (let i = 0; i < d; i++) {
        const v = Math.round(update[i]! * g);
        k[i] = v;
        sq += v * v; // exact: integers, partial sums ≤ bound < 2⁵³ until we stop
        if (sq > bound) break;
      }
      if (sq <= bound) break;
      f *= 1 - 2 ** -20; // only reachable at the rounding boundary; shrink and quantise again
    }
    // |Σk_i| ≤ count·√B must stay below 2⁵² so that the integer sum (and the noise added to it) is exact.
    if ((this.count + 1) * Math.sqrt(bound) >= 2 ** 52)
      throw new RangeError("too many updates for an exact float64 sum");
    const acc = this.acc;
    for (let i = 0; i < d; i++) acc[i] = acc[i]! + k[i]!;
    this.count++;
    if (isUnclipped) this.unclipped++;
    return isUnclipped;
  }

  /**
   * Adds N_Z(0, σ²) to every coordinate of the integer sum, rescales by γ/denominator and returns float32 (the
   * accumulator is released). Noise is released whatever the count, so the output never depends on it.
   */
  finish(options: { denominator: number; random?: RandomBytes }): Float32Array {
    if (this.done) throw new RangeError("DiscreteGaussianSum was already finished");
    const den = options.denominator;
    if (!(den > 0) || !Number.isFinite(den)) throw new RangeError(`denominator must be finite and > 0, got ${den}`);
    this.done = true;
    const noise = this.scratch;
    fillDiscreteGaussian(noise, this.plan.noiseVariance, options.random ?? cryptoRandomBytes);
    const scale = this.plan.gridStep / den;
    const out = new Float32Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = (this.acc[i]! + noise[i]!) * scale;
    return out;
  }
}

/**
 * Adaptive clipping's centred count released with discrete noise: 2·Σ(b_i − ½) = 2·unclipped − reports is an
 * integer with sensitivity 1 under add/remove (the centred count's ½, doubled), so N_Z(0, (2σ_b)²) on it is the
 * discrete twin of N(0, σ_b²) on Σ(b_i − ½) (same σ/Δ = 2σ_b; CKS20 Thm. 14 as above). Returns
 * b̃ = (2·Σ(b_i − ½) + Y)/(2m) + ½ (Andrew et al. 2021, arXiv 1905.03871 §3.1; TF Privacy `QuantileEstimatorQuery`).
 */
export function discreteNoisyUnclippedFraction(
  input: { unclippedCount: number; reportCount: number; expectedClients: number; countNoiseStd: number },
  random: RandomBytes = cryptoRandomBytes,
): number {
  const { unclippedCount: u, reportCount: n, expectedClients: m, countNoiseStd: s } = input;
  if (!(Number.isSafeInteger(n) && n >= 0)) throw new RangeError(`reportCount must be an integer >= 0, got ${n}`);
  if (!(Number.isSafeInteger(u) && u >= 0 && u <= n)) {
    throw new RangeError(`unclippedCount must be an integer in [0, reportCount], got ${u}`);
  }
  if (!(m > 0) || !Number.isFinite(m)) throw new RangeError(`expectedClients must be > 0, got ${m}`);
  if (!(s > 0) || !Number.isFinite(s)) throw new RangeError(`countNoiseStd must be finite and > 0, got ${s}`);
  const y = new Float64Array(1);
  fillDiscreteGaussian(y, roundVarianceUp(4 * s * s * (1 + 8 * U)), random);
  return (2 * u - n + y[0]!) / (2 * m) + 0.5;
}
