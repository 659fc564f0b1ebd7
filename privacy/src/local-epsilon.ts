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
 * which `localReportEpsilon` solves with the shared `gaussianEpsilon` (@fedge/protocol, bisection in log space). The classic bound (Dwork & Roth 2014, "The Algorithmic Foundations of
 * Differential Privacy", Theorem A.1), ε = Δ₂·√(2 ln(1.25/δ))/σ, is valid only for ε < 1 and is never tighter; it is
 * exported as `classicGaussianEpsilon` for comparison. Examples (δ = 1e-5, replace-one, so Δ₂/σ = 2/z): z = 1 → ε ≈ 10.0,
 * z = 4 → ε ≈ 1.99, z = 10 → ε ≈ 0.73 (README table; add-remove halves Δ₂: z = 3.73 → ε ≈ 1.00, Balle & Wang's own
 * calibration for ε = 1, δ = 1e-5). Each further round a device takes part in composes on top (e.g. with the RDP
 * accountant); this module prices one report.
 */
import { gaussianEpsilon } from "./gaussian-mechanism/analytic-gaussian.ts";

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
  // σ = z·C and Δ₂ = ratio·C: only their ratio matters, so price it with C = 1.
  return gaussianEpsilon(delta, z, ratio);
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
