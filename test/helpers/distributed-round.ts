/**
 * @module
 * The fields of a `distributed` round's open request, kept consistent as the edge demands: the devices' discrete
 * Gaussian (KLS21's plan, `@fedge/privacy`) as `mechanism.distributed`, a fresh rotation seed, and the secure
 * aggregation in the same ring (`modulus_bits` = b, `encoded_length` = the padded length d').
 */
import { secureAggregationFor, toBase64Url } from "@fedge/protocol";
import { distributedNoiseOf, planDistributedDiscreteGaussian, type DistributedPlan } from "@fedge/privacy";

export interface DistributedRoundOptions {
  bits: number;
  /** z: the noise shares of `expectedClients` devices sum to σ = z·C. @default 1 */
  noiseMultiplier?: number;
  clipNorm?: number;
  expectedClients: number;
  /** The fewest masked inputs the edge releases a sum of (the shares the charge counts). */
  minClients: number;
  /** n_max: the most inputs the modulus is planned for; with a checked-in cohort, the edge's cap on check-ins. */
  maxClients?: number;
  /**
   * Who adds noise shares: `checked-in` puts every device that checks in into the secure aggregation (a coin-excluded
   * one with a zero update), and the round takes at most `maxClients` check-ins (`secure_aggregation.max_devices`).
   * @default "sampled"
   */
  cohort?: "sampled" | "checked-in";
}

export function distributedRoundFields(
  length: number,
  o: DistributedRoundOptions,
): { plan: DistributedPlan; fields: Record<string, unknown> } {
  const noiseMultiplier = o.noiseMultiplier ?? 1;
  const clipNorm = o.clipNorm ?? 1;
  const plan = planDistributedDiscreteGaussian({
    bits: o.bits,
    length,
    clipNorm,
    noiseMultiplier,
    expectedClients: o.expectedClients,
    minClients: o.minClients,
    ...(o.maxClients !== undefined ? { maxClients: o.maxClients } : {}),
    ...(o.cohort !== undefined ? { cohort: o.cohort } : {}),
  });
  const distributed = distributedNoiseOf(plan);
  const secureAggregation = secureAggregationFor(distributed);
  return {
    plan,
    fields: {
      privacy_mode: "distributed",
      clip_norm: clipNorm,
      mechanism: { noise_multiplier: noiseMultiplier, clip_rule: "fixed", distributed },
      rotation_seed: toBase64Url(crypto.getRandomValues(new Uint8Array(32))),
      secure_aggregation:
        plan.cohort === "checked-in" ? { ...secureAggregation, max_devices: plan.maxClients } : secureAggregation,
    },
  };
}
