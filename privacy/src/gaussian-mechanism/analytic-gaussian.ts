/**
 * @module
 * The exact privacy curve of the Gaussian mechanism and the analytic Gaussian mechanism of Balle & Wang 2018,
 * "Improving the Gaussian Mechanism for Differential Privacy: Analytical Calibration and Optimal Denoising"
 * (arXiv 1805.06530). Pure math.
 *
 * Thm. 8 of arXiv 1805.06530: the Gaussian mechanism with noise σ and L2 sensitivity Δ is (ε, δ)-DP iff
 *   δ ≥ Φ(Δ/(2σ) − εσ/Δ) − e^ε Φ(−Δ/(2σ) − εσ/Δ).
 * This is also the hockey-stick divergence H_{e^ε}(N(Δ, σ²) ‖ N(0, σ²)), the building block of the PLD accountant.
 * Alg. 1 of arXiv 1805.06530 calibrates σ for a target (ε, δ); it is ported from the authors' reference code
 * (github.com/BorjaBalle/analytic-gaussian-mechanism: doubling then bisection on s with tolerance 1e-12).
 */
import { logNormalCdf } from "./special.ts";

/** Φ(a) − e^c Φ(b) computed as Φ(a)·(−expm1(c + log Φ(b) − log Φ(a))), accurate deep in the tails; ≥ 0. */
function phiDiff(a: number, c: number, b: number): number {
  const la = logNormalCdf(a);
  const r = c + logNormalCdf(b) - la;
  if (r >= 0) return 0;
  return Math.exp(la) * -Math.expm1(r);
}

/**
 * δ(ε) of the Gaussian mechanism, noise σ and sensitivity Δ (arXiv 1805.06530 Thm. 8); ε may be any real.
 * σ = 0 gives 1 (for ε finite), σ = ∞ gives max(0, 1 − e^ε)... clamped at 0 for ε ≥ 0.
 */
export function gaussianDelta(epsilon: number, sigma: number, sensitivity = 1): number {
  if (sigma === 0) return 1;
  if (epsilon === Number.POSITIVE_INFINITY) return 0;
  const u = sensitivity / (2 * sigma);
  const v = (epsilon * sigma) / sensitivity;
  return phiDiff(u - v, epsilon, -u - v);
}

/** The exact smallest ε ≥ 0 such that the Gaussian mechanism (σ, Δ) is (ε, δ)-DP (bisection on Thm. 8 to machine precision). */
export function gaussianEpsilon(delta: number, sigma: number, sensitivity = 1): number {
  if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
  if (sigma === 0) return Number.POSITIVE_INFINITY;
  if (gaussianDelta(0, sigma, sensitivity) <= delta) return 0;
  let lo = 0;
  let hi = 1;
  while (gaussianDelta(hi, sigma, sensitivity) > delta) {
    lo = hi;
    hi *= 2;
    if (hi > 1e12) return Number.POSITIVE_INFINITY;
  }
  for (let i = 0; i < 200 && hi - lo > 1e-15 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (gaussianDelta(mid, sigma, sensitivity) > delta) lo = mid;
    else hi = mid;
  }
  return hi; // the side that satisfies δ(ε) ≤ delta
}

/**
 * Analytic Gaussian mechanism (arXiv 1805.06530 Alg. 1): the smallest σ such that adding N(0, σ²) to a query of L2
 * sensitivity Δ is (ε, δ)-DP. Follows the reference implementation step by step (cases A/B, doubling, bisection to
 * |δ(s) − δ| ≤ tol), with Φ evaluated in log space.
 */
export function analyticGaussianSigma(epsilon: number, delta: number, sensitivity = 1, tol = 1e-12): number {
  if (!(epsilon > 0 && Number.isFinite(epsilon)))
    throw new RangeError(`epsilon must be > 0 and finite, got ${epsilon}`);
  if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
  if (!(sensitivity > 0)) throw new RangeError(`sensitivity must be > 0, got ${sensitivity}`);
  // B⁺ (case A) and B⁻ (case B) of arXiv 1805.06530 Lemmas 6–7 / Alg. 1.
  const caseA = (s: number) => phiDiff(Math.sqrt(epsilon * s), epsilon, -Math.sqrt(epsilon * (s + 2)));
  const caseB = (s: number) => phiDiff(-Math.sqrt(epsilon * s), epsilon, -Math.sqrt(epsilon * (s + 2)));
  const deltaThr = caseA(0);
  let alpha: number;
  if (delta === deltaThr) {
    alpha = 1;
  } else {
    const a = delta > deltaThr;
    const f = a ? caseA : caseB;
    const stopDoubling = a ? (s: number) => f(s) >= delta : (s: number) => f(s) <= delta;
    const goLeft = a ? (s: number) => f(s) > delta : (s: number) => f(s) < delta;
    let sInf = 0;
    let sSup = 1;
    while (!stopDoubling(sSup)) {
      sInf = sSup;
      sSup = 2 * sInf;
    }
    let sMid = sInf + (sSup - sInf) / 2;
    for (let i = 0; i < 2000 && Math.abs(f(sMid) - delta) > tol; i++) {
      if (goLeft(sMid)) sSup = sMid;
      else sInf = sMid;
      sMid = sInf + (sSup - sInf) / 2;
    }
    alpha = a ? Math.sqrt(1 + sMid / 2) - Math.sqrt(sMid / 2) : Math.sqrt(1 + sMid / 2) + Math.sqrt(sMid / 2);
  }
  return (alpha * sensitivity) / Math.sqrt(2 * epsilon);
}
