/**
 * @module
 * Local-mode noise: the device adds N(0, σ²·I) with σ = z·C to its clipped update before upload (the Gaussian
 * mechanism run on the device), from @fedge/protocol `addGaussianNoise` fed by the injected CSPRNG, never a non-cryptographic PRNG.
 * What one such report costs in (ε, δ) is computed in `epsilon.ts`.
 *
 * Caveat (Mironov 2012, "On significance of the least significant bits for differential privacy", CCS'12):
 * floating-point Gaussian samplers are not the ideal distribution; the guarantee is approximate.
 */
import { addGaussianNoise } from "./samplers/random.ts";

/** Fills a buffer with random bytes (crypto.getRandomValues or an injected CSPRNG). */
export type NoiseRandom = (buf: Uint8Array) => void;

/**
 * Adds N(0, (z·C)²) to every coordinate of `update` in place (the update must already be clipped to ‖·‖₂ ≤ C).
 * Throws RangeError for a non-finite or negative z or C.
 */
export function addLocalNoise(
  update: Float32Array,
  clipNorm: number,
  noiseMultiplier: number,
  random: NoiseRandom,
): void {
  if (!(Number.isFinite(clipNorm) && clipNorm > 0))
    throw new RangeError(`clipNorm must be finite and > 0, got ${clipNorm}`);
  if (!(Number.isFinite(noiseMultiplier) && noiseMultiplier >= 0)) {
    throw new RangeError(`noiseMultiplier must be finite and >= 0, got ${noiseMultiplier}`);
  }
  addGaussianNoise(update, noiseMultiplier * clipNorm, random);
}
