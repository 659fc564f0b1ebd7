/**
 * @module
 * Special functions for privacy accounting, accurate in the far tails (pure, no I/O).
 *
 * erfc follows W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23 (1969) 631–637
 * (the CALERF routine of SPECFUN, ~1e-16 relative accuracy). For x ≥ 0.46875 Cody writes erfc(x) = exp(−x²)·R(x) with
 * R rational, so log erfc(x) = −x² + log R(x) is evaluated without underflow for any x (needed for log A_α at
 * fractional orders, arXiv 1908.10530 §3.3, and for Gaussian hockey-stick divergences in the far tail).
 */

const A = [3.1611237438705656, 113.864154151050156, 377.485237685302021, 3209.37758913846947, 0.185777706184603153];
const B = [23.6012909523441209, 244.024637934444173, 1282.61652607737228, 2844.23683343917062];
const C = [
  0.564188496988670089, 8.88314979438837594, 66.1191906371416295, 298.635138197400131, 881.95222124176909,
  1712.04761263407058, 2051.07837782607147, 1230.33935479799725, 2.15311535474403846e-8,
];
const D = [
  15.7449261107098347, 117.693950891312499, 537.181101862009858, 1621.38957456669019, 3290.79923573345963,
  4362.61909014324716, 3439.36767414372164, 1230.33935480374942,
];
const P = [
  0.305326634961232344, 0.360344899949804439, 0.125781726111229246, 0.0160837851487422766, 6.58749161529837803e-4,
  0.0163153871373020978,
];
const Q = [
  2.56852019228982242, 1.87295284992346047, 0.527905102951428412, 0.0605183413124413191, 0.00233520497626869185,
];
const SQRPI = 0.56418958354775628695; // 1/√π

/** erf(x) for |x| ≤ 0.46875 (Cody's first interval). */
function erfSmall(x: number): number {
  const z = x * x;
  let num = A[4]! * z;
  let den = z;
  for (let i = 0; i < 3; i++) {
    num = (num + A[i]!) * z;
    den = (den + B[i]!) * z;
  }
  return (x * (num + A[3]!)) / (den + B[3]!);
}

/** For y ≥ 0.46875: log erfc(y) = −y² + log R(y) (Cody's second and third intervals), finite for all y. */
function logErfcPositive(y: number): number {
  let r: number;
  if (y <= 4) {
    let num = C[8]! * y;
    let den = y;
    for (let i = 0; i < 7; i++) {
      num = (num + C[i]!) * y;
      den = (den + D[i]!) * y;
    }
    r = (num + C[7]!) / (den + D[7]!);
  } else {
    const z = 1 / (y * y);
    let num = P[5]! * z;
    let den = z;
    for (let i = 0; i < 4; i++) {
      num = (num + P[i]!) * z;
      den = (den + Q[i]!) * z;
    }
    r = (SQRPI - (z * (num + P[4]!)) / (den + Q[4]!)) / y;
  }
  // −y² split as in CALERF: y² = t² + (y − t)(y + t) with t = ⌊16y⌋/16, so the exponent keeps full precision.
  const t = Math.trunc(y * 16) / 16;
  return -t * t - (y - t) * (y + t) + Math.log(r);
}

/** log erfc(x), accurate for all real x (no underflow for large x). */
export function logErfc(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  if (x === Number.POSITIVE_INFINITY) return Number.NEGATIVE_INFINITY;
  if (Math.abs(x) <= 0.46875) return Math.log1p(-erfSmall(x));
  if (x > 0) return logErfcPositive(x);
  return Math.log(2 - Math.exp(logErfcPositive(-x))); // erfc(x) = 2 − erfc(−x) ∈ (1, 2]
}

/** erfc(x) = 1 − erf(x). */
export function erfc(x: number): number {
  if (Math.abs(x) <= 0.46875) return 1 - erfSmall(x);
  return Math.exp(logErfc(x));
}

/** log Φ(x) for the standard normal CDF Φ(x) = erfc(−x/√2)/2, accurate in both tails. */
export function logNormalCdf(x: number): number {
  return logErfc(-x / Math.SQRT2) - Math.LN2;
}

/** Φ(x), the standard normal CDF, with full relative accuracy in the lower tail. */
export function normalCdf(x: number): number {
  return Math.exp(logNormalCdf(x));
}

// ───────────── log-space arithmetic (after opacus analysis/rdp.py, from TF Privacy) ─────────────

/** log(eˣ + eʸ) without overflow. */
export function logAdd(x: number, y: number): number {
  const a = Math.min(x, y);
  const b = Math.max(x, y);
  if (a === Number.NEGATIVE_INFINITY) return b;
  return Math.log1p(Math.exp(a - b)) + b;
}

/** log(eˣ − eʸ) for x ≥ y; returns −∞ when x = y. Throws RangeError if x < y. */
export function logSub(x: number, y: number): number {
  if (x < y) throw new RangeError("logSub: the result would be negative");
  if (y === Number.NEGATIVE_INFINITY) return x;
  if (x === y) return Number.NEGATIVE_INFINITY;
  const d = x - y;
  return d > 700 ? x : Math.log(Math.expm1(d)) + y;
}
