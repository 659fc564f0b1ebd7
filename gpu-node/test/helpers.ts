/** Shared test helpers: deterministic inputs (seeded ChaCha20 bytes, test-only) and the reference round. */
import { seededRandomBytes } from "@fedge/privacy/testing";
import { GaussianStream, clipFactor, finishInto, reciprocal, sumSquares } from "../src/math.ts";

/** K updates of `length` values uniform in (−scale_k, scale_k), scale_k = scales[k % scales.length]. */
export function makeUpdates(seed: number, k: number, length: number, scales: number[] = [1]): Float32Array[] {
  const random = seededRandomBytes(seed);
  return Array.from({ length: k }, (_, j) => {
    const words = new Uint32Array(length);
    random(new Uint8Array(words.buffer));
    const s = scales[j % scales.length]!;
    const u = new Float32Array(length);
    for (let i = 0; i < length; i++) u[i] = (words[i]! / 4294967296 - 0.5) * 2 * s;
    return u;
  });
}

export interface ReferenceRound {
  out: Float32Array;
  norms: number[];
  unclipped: number;
  clippedAny: boolean;
}

/** The canonical round written with the pure reference functions (TypedArray loops). */
export function referenceRound(
  updates: Float32Array[],
  weights: number[],
  clipNorm: number,
  noiseStd: number,
  denominator: number,
  noiseSeed: number,
): ReferenceRound {
  const n = updates[0]!.length;
  const acc = new Float32Array(n);
  const norms: number[] = [];
  let unclipped = 0;
  updates.forEach((u, k) => {
    const s = sumSquares(u);
    norms.push(Math.sqrt(s));
    if (Math.sqrt(s) <= clipNorm) unclipped++;
    const f = clipFactor(s, clipNorm, weights[k]!);
    for (let i = 0; i < n; i++) acc[i] = acc[i]! + Math.fround(f * u[i]!);
  });
  const out = new Float32Array(n);
  const r = reciprocal(denominator);
  if (noiseStd === 0) finishInto(out, acc, null, r);
  else {
    const noise = new Float32Array(n);
    new GaussianStream(n, noiseStd, seededRandomBytes(noiseSeed)).fill(noise);
    finishInto(out, acc, noise, r);
  }
  return { out, norms, unclipped, clippedAny: unclipped < updates.length };
}

/** Largest |a_i − b_i| divided by max_i |b_i| (a scale-free closeness measure). */
export function relMaxDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return m === 0 ? d : d / m;
}
