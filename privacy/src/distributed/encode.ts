/**
 * @module
 * The device side of the distributed discrete Gaussian (Kairouz, Liu, Steinke 2021, arXiv 2102.06387 Algorithm 1,
 * client procedure): clip to C, rotate with the round's randomized Hadamard transform, scale by γ, round with the
 * conditional norm bound, add N_Z(0, σ_l²) per coordinate, reduce mod 2^b. The output is what the device hands to
 * secure aggregation: a `Uint32Array` of d' residues. Randomness for the coins and the noise comes from
 * `crypto.getRandomValues` unless a test injects a source.
 */
import { clipToNorm } from "../discrete-sum.ts";
import { fillDiscreteGaussian } from "../samplers/discrete-gaussian.ts";
import { cryptoRandomBytes, type RandomBytes } from "../samplers/random.ts";
import type { DistributedPlan } from "./plan.ts";
import { reduceModulo } from "./modular.ts";
import { rotate, rotationSigns } from "./rotation.ts";
import { conditionalRound } from "./rounding.ts";

/** What a device needs of a round's {@link DistributedPlan} (the fields a round task carries). */
export type DeviceDistributedPlan = Pick<
  DistributedPlan,
  "bits" | "length" | "paddedLength" | "clipNorm" | "scale" | "sensitivityBound" | "localVariance"
>;

/** Options of {@link encodeDistributedUpdate}. */
export interface DistributedEncodeOptions {
  plan: DeviceDistributedPlan;
  /** The round's public 32-byte rotation seed (from the round task). */
  rotationSeed: Uint8Array;
  /**
   * CSPRNG for the rounding coins and the noise.
   * @default cryptoRandomBytes
   */
  random?: RandomBytes;
  /**
   * Signs of the rotation already derived from `rotationSeed` (a simulation encoding many updates of one round).
   * @default rotationSigns(rotationSeed, plan.paddedLength)
   */
  signs?: Int8Array;
  /**
   * TEST MODE ONLY, never private: skip the noise so the sum of encodings is the plain sum of the rounded vectors.
   * @default false
   */
  withoutNoise?: boolean;
}

/** What {@link encodeDistributedUpdate} returns. */
export interface DistributedEncoding {
  /** d' residues mod 2^b: the device's input to secure aggregation. */
  encoded: Uint32Array;
  /** The rounded integer vector before noise (kept for tests of exactness; never sent). */
  rounded: Int32Array;
  /** Whether ‖u‖₂ ≤ C already (adaptive clipping's bit). */
  unclipped: boolean;
  /** The factor the update was clipped by (1 when unclipped). */
  clipFactor: number;
  /** Conditional rounding tries. */
  roundingTries: number;
}

/** Encodes one device's update for a distributed round (see the module header); throws `RangeError` on bad input. */
export function encodeDistributedUpdate(update: Float32Array, o: DistributedEncodeOptions): DistributedEncoding {
  const { plan } = o;
  if (!(update instanceof Float32Array) || update.length !== plan.length) {
    throw new RangeError(`update must be a Float32Array of ${plan.length} values`);
  }
  const random = o.random ?? cryptoRandomBytes;
  const signs = o.signs ?? rotationSigns(o.rotationSeed, plan.paddedLength);
  if (signs.length !== plan.paddedLength) throw new RangeError(`signs must have ${plan.paddedLength} entries`);
  const { clipped, factor, unclipped } = clipToNorm(update, plan.clipNorm);
  const y = rotate(clipped, signs);
  for (let i = 0; i < y.length; i++) y[i] = y[i]! * plan.scale;
  const { rounded, tries } = conditionalRound(y, plan.sensitivityBound, random);
  const noise = new Float64Array(y.length);
  if (!o.withoutNoise) fillDiscreteGaussian(noise, plan.localVariance, random);
  const encoded = new Uint32Array(y.length);
  for (let i = 0; i < y.length; i++) encoded[i] = reduceModulo(rounded[i]! + noise[i]!, plan.bits);
  return { encoded, rounded, unclipped, clipFactor: factor, roundingTries: tries };
}
