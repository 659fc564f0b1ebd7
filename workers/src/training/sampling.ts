/**
 * @module
 * Poisson sampling of devices: each device that checks in during a round is selected independently with probability q,
 * decided once and recorded (so a repeat check-in gets the same answer). This is the sampling the privacy accountant
 * assumes (Poisson subsampled Gaussian: Mironov, Talwar, Zhang 2019, arXiv 1908.10530 §3; DP-FedAvg's user sampling,
 * McMahan et al. 2018, arXiv 1710.06963 §2), never "the first N check-ins".
 *
 * Pure: the randomness comes from an injected CSPRNG (`crypto.getRandomValues` in production).
 */

/** Fills a Uint32Array with uniform random words, e.g. `(a) => crypto.getRandomValues(a)`. */
export type RandomWords = (out: Uint32Array) => Uint32Array;

/** A uniform double in [0, 1) with 53 random bits (two 32-bit words, 21 + 32 bits). */
export function uniform53(random: RandomWords): number {
  const w = random(new Uint32Array(2));
  return ((w[0]! >>> 11) * 2 ** 32 + w[1]!) / 2 ** 53;
}

/** One coin with P(true) = q (to within 2⁻⁵³). `q` must be in [0, 1]. */
export function poissonCoin(q: number, random: RandomWords): boolean {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`poissonCoin: q must be in [0, 1], got ${q}`);
  return uniform53(random) < q;
}
