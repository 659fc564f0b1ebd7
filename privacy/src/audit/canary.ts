/**
 * @module
 * Canaries of the one-shot audit (Andrew et al. 2024, arXiv 2302.03098 §3): a canary's update is a direction drawn
 * uniformly on the unit sphere of the model's (flattened) parameters, scaled to the clip norm by the caller; after the
 * run the audit measures the cosine of the model delta with it. Pure math, randomness injected.
 */
import { cryptoRandomBytes, fillStandardNormal, type RandomBytes } from "../samplers/random.ts";

/** A direction uniform on the unit sphere of R^length: a standard normal vector, normalised. */
export function randomUnitVector(length: number, random: RandomBytes = cryptoRandomBytes): Float32Array {
  if (!Number.isSafeInteger(length) || length < 1)
    throw new RangeError(`length must be an integer >= 1, got ${length}`);
  const g = new Float64Array(length);
  fillStandardNormal(g, random);
  let ss = 0;
  for (let i = 0; i < length; i++) ss += g[i]! * g[i]!;
  const inv = 1 / Math.sqrt(ss);
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = g[i]! * inv;
  return out;
}

/** cos∠(a, b) = ⟨a, b⟩ / (‖a‖‖b‖), in float64; 0 when either vector is zero. */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`vectors differ in length: ${a.length} vs ${b.length}`);
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  if (na === 0 || nb === 0) return 0;
  return dot / Math.sqrt(na * nb);
}
