/**
 * @module
 * The privacy of one local-mode report: the device adds N(0, σ²·I) with σ = z·C to its clipped update before upload
 * (see local-noise.ts), so the server never sees an un-noised update. Pure math, no I/O.
 *
 * What one report costs, per device. The report is f(D) = clip_C(Δ(D)), so ‖f(D)‖₂ ≤ C for every local dataset D.
 * - `replace-one` neighbours (local DP proper: any two datasets of one device): L2 sensitivity Δ₂ = 2C.
 * - `add-remove` neighbours (the device reports vs. an all-zero report): Δ₂ = C.
 * With σ = z·C the mechanism is (ε, δ)-DP for the smallest ε satisfying the analytic Gaussian mechanism condition
 * (Balle & Wang 2018, "Improving the Gaussian Mechanism for Differential Privacy", arXiv 1805.06530, Theorem 8):
 *
 *     Φ(Δ₂/(2σ) − εσ/Δ₂) − e^ε · Φ(−Δ₂/(2σ) − εσ/Δ₂) ≤ δ,
 *
 * which `localReportEpsilon` solves by bisection. The classic bound (Dwork & Roth 2014, "The Algorithmic Foundations of
 * Differential Privacy", Theorem A.1), ε = Δ₂·√(2 ln(1.25/δ))/σ, is valid only for ε < 1 and is never tighter; it is
 * exported as `classicGaussianEpsilon` for comparison. Examples (δ = 1e-5, replace-one, so Δ₂/σ = 2/z): z = 1 → ε ≈ 10.0,
 * z = 4 → ε ≈ 1.99, z = 10 → ε ≈ 0.73 (README table; add-remove halves Δ₂: z = 3.73 → ε ≈ 1.00, Balle & Wang's own
 * calibration for ε = 1, δ = 1e-5). Each further round a device takes part in composes on top (e.g. with the RDP
 * accountant); this module prices one report.
 */
export type Neighbouring = "replace-one" | "add-remove";

export interface LocalEpsilonOptions {
  /** z in σ = z·C. */
  noiseMultiplier: number;
  /** Target δ. @default 1e-5 */
  delta?: number;
  /** Which datasets count as neighbours. @default "replace-one" */
  neighbouring?: Neighbouring;
}

/** The ε of one local-mode report (analytic Gaussian mechanism, Balle & Wang 2018 Theorem 8). Infinity when z = 0. */
export function localReportEpsilon(options: LocalEpsilonOptions): number {
  const { z, delta, ratio } = check(options);
  if (z === 0) return Infinity;
  // With s = Δ₂/σ: δ(ε) = Φ(s/2 − ε/s) − e^ε Φ(−s/2 − ε/s), decreasing in ε.
  const s = ratio / z;
  const deltaOf = (eps: number) => normalCdf(s / 2 - eps / s) - Math.exp(eps) * normalCdf(-s / 2 - eps / s);
  if (deltaOf(0) <= delta) return 0;
  let hi = 1;
  while (deltaOf(hi) > delta) {
    hi *= 2;
    if (hi > 1e6) return Infinity;
  }
  let lo = 0;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (deltaOf(mid) > delta) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** Classic Gaussian-mechanism ε = Δ₂·√(2 ln(1.25/δ))/σ (Dwork & Roth 2014, Theorem A.1; meaningful only when < 1). */
export function classicGaussianEpsilon(options: LocalEpsilonOptions): number {
  const { z, delta, ratio } = check(options);
  if (z === 0) return Infinity;
  return (ratio / z) * Math.sqrt(2 * Math.log(1.25 / delta));
}

function check(options: LocalEpsilonOptions): { z: number; delta: number; ratio: number } {
  const z = options.noiseMultiplier;
  const delta = options.delta ?? 1e-5;
  if (!(Number.isFinite(z) && z >= 0)) throw new RangeError(`noiseMultiplier must be finite and >= 0, got ${z}`);
  if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
  const n = options.neighbouring ?? "replace-one";
  if (n !== "replace-one" && n !== "add-remove") throw new RangeError(`unknown neighbouring ${JSON.stringify(n)}`);
  return { z, delta, ratio: n === "replace-one" ? 2 : 1 };
}

/** Standard normal CDF Φ(x) = erfc(−x/√2)/2. */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

/**
 * Complementary error function, fractional error < 1.2e-7 everywhere (Chebyshev fit; Press et al., Numerical Recipes
 * in C, 2nd ed., §6.2 `erfcc`). Relative accuracy holds in the far tail, which δ ≈ 1e-5..1e-10 needs.
 */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}
