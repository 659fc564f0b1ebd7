/**
 * @module
 * Inverse accounting: the smallest noise multiplier z that meets a target (ε, δ) for q and steps, after opacus
 * `get_noise_multiplier` (opacus/accountants/utils.py): double z until the target is met, then bisect until the
 * bracket is narrower than `tolerance`, and return the upper end (the side that meets the target).
 */
import { InvalidPrivacyParameterError, validateDelta, validateStep, type AccountantMechanism } from "./accountant.ts";
import { createAccountant, type AccountantOptionsByMechanism } from "./registry.ts";

/** Above this z the budget is declared unreachable (as opacus MAX_SIGMA). */
export const MAX_NOISE_MULTIPLIER = 1e6;

export interface NoiseMultiplierQuery<M extends AccountantMechanism = AccountantMechanism> {
  targetEpsilon: number;
  targetDelta: number;
  sampleRate: number;
  steps: number;
  /** @default "rdp" */
  accountant?: M;
  accountantOptions?: AccountantOptionsByMechanism[M];
  /**
   * Width of the final bracket on z.
   * @default 0.01
   */
  tolerance?: number;
}

/** Result: the noise multiplier and the ε it achieves (≤ targetEpsilon). */
export interface NoiseMultiplierResult {
  noiseMultiplier: number;
  epsilon: number;
}

export function getNoiseMultiplier(query: NoiseMultiplierQuery): NoiseMultiplierResult {
  const { targetEpsilon, targetDelta, sampleRate, steps } = query;
  const mechanism = query.accountant ?? "rdp";
  const tolerance = query.tolerance ?? 0.01;
  if (typeof targetEpsilon !== "number" || !(targetEpsilon > 0) || !Number.isFinite(targetEpsilon)) {
    throw new InvalidPrivacyParameterError(`targetEpsilon must be a finite number > 0, got ${String(targetEpsilon)}`);
  }
  validateDelta(targetDelta);
  validateStep({ sampleRate, noiseMultiplier: 1 }, steps);
  if (!(tolerance > 0)) throw new InvalidPrivacyParameterError(`tolerance must be > 0, got ${tolerance}`);
  const epsilonAt = (z: number): number => {
    const acc = createAccountant(mechanism, query.accountantOptions);
    acc.step({ noiseMultiplier: z, sampleRate }, steps);
    return acc.getEpsilon(targetDelta);
  };
  let lo = 0;
  let hi = 10;
  let epsHi = epsilonAt(hi);
  while (epsHi > targetEpsilon) {
    lo = hi;
    hi *= 2;
    if (hi > MAX_NOISE_MULTIPLIER) {
      throw new InvalidPrivacyParameterError(
        `the privacy budget ε=${targetEpsilon}, δ=${targetDelta} is too low for q=${sampleRate} and ${steps} steps`,
        { reason: "unreachable_target" },
      );
    }
    epsHi = epsilonAt(hi);
  }
  while (hi - lo > tolerance) {
    const mid = (lo + hi) / 2;
    const eps = epsilonAt(mid);
    if (eps <= targetEpsilon) {
      hi = mid;
      epsHi = eps;
    } else {
      lo = mid;
    }
  }
  return { noiseMultiplier: hi, epsilon: epsHi };
}
