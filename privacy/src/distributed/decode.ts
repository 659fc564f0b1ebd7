/**
 * @module
 * The server side of the distributed discrete Gaussian (Kairouz, Liu, Steinke 2021, arXiv 2102.06387 Algorithm 1,
 * server procedure): read the modular sum as centred integers, divide by γ, invert the rotation and drop the padding.
 * The result is the noised sum of the clipped updates (divide by the expected count for DP-FedAvg's mean). Pure
 * post-processing: it costs no privacy.
 */
import type { DistributedPlan } from "./plan.ts";
import { centredValue } from "./modular.ts";
import { rotationSigns, unrotate } from "./rotation.ts";

/** Decodes the modular sum of a round's encodings into the noised sum of clipped updates (float32, length d). */
export function decodeDistributedSum(
  sum: Uint32Array,
  o: {
    plan: Pick<DistributedPlan, "bits" | "length" | "paddedLength" | "scale">;
    rotationSeed: Uint8Array;
    signs?: Int8Array;
  },
): Float32Array {
  const { plan } = o;
  if (!(sum instanceof Uint32Array) || sum.length !== plan.paddedLength) {
    throw new RangeError(`sum must be a Uint32Array of ${plan.paddedLength} residues`);
  }
  const signs = o.signs ?? rotationSigns(o.rotationSeed, plan.paddedLength);
  const m = 2 ** plan.bits;
  const y = new Float64Array(sum.length);
  for (let i = 0; i < sum.length; i++) {
    if (sum[i]! >= m) throw new RangeError(`coordinate ${i} (${sum[i]}) is not a residue mod 2^${plan.bits}`);
    y[i] = centredValue(sum[i]!, plan.bits) / plan.scale;
  }
  unrotate(y, signs);
  return Float32Array.from(y.subarray(0, plan.length));
}
