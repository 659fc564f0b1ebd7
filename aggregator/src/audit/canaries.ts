/**
 * @module
 * The canary clients of a one-shot privacy audit (Andrew et al. 2024, "One-shot Empirical Privacy Estimation for
 * Federated Learning", ICLR 2024, arXiv 2302.03098 §3): k directions that take part in training and k' more that
 * never do, each drawn uniformly on the unit sphere of the trainable parameters from `crypto.getRandomValues`. An
 * inserted canary, when its Poisson coin says so, reports its direction scaled to the round's clip norm C, through the
 * device pipeline (clip, clip bit, local noise) like any device. After the run {@link CanarySet.cosines} measures the
 * final model delta against both sets; `@fedge/privacy`'s `estimateEpsilonOneShot` turns them into ε̂.
 *
 * Memory: (k + k') × length float32 values.
 */
import { cosineSimilarity, cryptoRandomBytes, randomUnitVector, type RandomBytes } from "@fedge/privacy";

/** Options of {@link CanarySet.create}. */
export interface CanarySetOptions {
  /** Length of the flattened trainable parameters. */
  length: number;
  /** Canaries inserted into training (k ≥ 2). */
  inserted: number;
  /**
   * Canaries drawn the same way and never inserted (k' ≥ 2).
   * @default inserted
   */
  held?: number;
  /** @default cryptoRandomBytes */
  random?: RandomBytes;
}

/** The final model delta's cosines with both canary sets. */
export interface CanaryCosines {
  observed: Float64Array;
  unobserved: Float64Array;
}

export class CanarySet {
  readonly length: number;
  private readonly inserted: Float32Array[];
  private readonly held: Float32Array[];

  private constructor(length: number, inserted: Float32Array[], held: Float32Array[]) {
    this.length = length;
    this.inserted = inserted;
    this.held = held;
  }

  static create(o: CanarySetOptions): CanarySet {
    const held = o.held ?? o.inserted;
    for (const [name, k] of [
      ["inserted", o.inserted],
      ["held", held],
    ] as const) {
      if (!Number.isSafeInteger(k) || k < 2) throw new RangeError(`${name} canaries must be an integer >= 2, got ${k}`);
    }
    const random = o.random ?? cryptoRandomBytes;
    const draw = (k: number) => Array.from({ length: k }, () => randomUnitVector(o.length, random));
    return new CanarySet(o.length, draw(o.inserted), draw(held));
  }

  /** k: canaries that take part in training. */
  get count(): number {
    return this.inserted.length;
  }

  /** Writes inserted canary `i`'s update: its unit direction times `clipNorm` (‖update‖ = C). */
  update(i: number, clipNorm: number, out: Float32Array): void {
    const c = this.inserted[i];
    if (!c) throw new RangeError(`no canary ${i} (there are ${this.inserted.length})`);
    if (!(clipNorm > 0 && Number.isFinite(clipNorm))) throw new RangeError(`clipNorm must be > 0, got ${clipNorm}`);
    if (out.length !== this.length) throw new RangeError(`out has ${out.length} values, canaries ${this.length}`);
    for (let j = 0; j < c.length; j++) out[j] = c[j]! * clipNorm;
  }

  /** Cosines of Δ = final − initial (flattened trainable parameters) with every inserted and every held canary. */
  cosines(initial: Float32Array, final: Float32Array): CanaryCosines {
    if (initial.length !== this.length || final.length !== this.length)
      throw new RangeError(`models have ${initial.length}/${final.length} values, canaries ${this.length}`);
    const delta = new Float64Array(this.length);
    for (let j = 0; j < delta.length; j++) delta[j] = final[j]! - initial[j]!;
    const of = (set: Float32Array[]) => Float64Array.from(set, (c) => cosineSimilarity(delta, c));
    return { observed: of(this.inserted), unobserved: of(this.held) };
  }
}
