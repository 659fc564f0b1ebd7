/**
 * @module
 * PLD accountant: composes pessimistic ("connect the dots", arXiv 2207.04380) privacy loss distributions of every
 * history entry with the FFT and reads ε for δ off the result. Both neighbouring directions (add / remove) are
 * composed separately and the larger ε is reported. Formulas and citations are in `analysis/pld.ts`.
 *
 * Cost. A run of T equal steps is one Chernoff-windowed FFT power (`selfComposePmfs`, both directions in one
 * transform), whatever T; runs are joined by linear convolution (`composePmf`). The composed PLDs of the history are
 * cached and new steps are composed onto them, so a budget check ({@link PldAccountant.epsilonAfter}) or a new step
 * costs one convolution of the history with the new run, not a recomputation of the history. (Composition order
 * does not change the result in exact arithmetic; numerically the incremental path and a recomputation from the
 * history agree to the round-off and truncation terms, both of them pessimistic.)
 */
import {
  HistoryAccountant,
  InvalidPrivacyParameterError,
  validateDelta,
  validateStep,
  type StepParams,
} from "./accountant.ts";
import {
  composePmf,
  pmfDelta,
  pmfEpsilon,
  selfComposePmfs,
  subsampledGaussianPmf,
  type Pmf,
  type PldDirection,
} from "./analysis/pld.ts";

/** Options of {@link PldAccountant}. */
export interface PldAccountantOptions {
  /**
   * Grid spacing h of privacy-loss values. Smaller is tighter and slower (cost ∝ 1/h). Any h is pessimistic.
   * @default 1e-4 (as Google's dp_accounting)
   */
  discretization?: number;
  /**
   * Tail mass τ cut per PLD construction, per self-composition window and per convolution; it is moved
   * pessimistically (to +∞ or up), so it can only add about (runs·3 + 2)·τ to δ.
   * @default 1e-15
   */
  tailMass?: number;
}

/** The composed PLD in both directions. */
interface PldPair {
  remove: Pmf;
  add: Pmf;
}

const IDENTITY: Pmf = { offset: 0, probs: Float64Array.of(1), infinityMass: 0 }; // all mass at loss 0

export class PldAccountant extends HistoryAccountant {
  readonly mechanism = "pld" as const;
  readonly discretization: number;
  readonly tailMass: number;
  /** The composition of the history's first `covered` steps (null: recompute from `entries`). */
  private cache: { pair: PldPair; covered: number } | null = null;
  /** Steps appended since the cache was built, in order. */
  private pending: { params: StepParams; steps: number }[] = [];
  /** The last {@link epsilonAfter} result, adopted by a matching `step`. */
  private projection: { key: string; covered: number; pair: PldPair } | null = null;
  /** One step's PLDs per (q, z). */
  private readonly single = new Map<string, PldPair>();

  constructor(options: PldAccountantOptions = {}) {
    super();
    const h = options.discretization ?? 1e-4;
    const tau = options.tailMass ?? 1e-15;
    if (!(h > 0 && h <= 0.1)) throw new InvalidPrivacyParameterError(`discretization must be in (0, 0.1], got ${h}`);
    if (!(tau > 0 && tau < 1e-6)) throw new InvalidPrivacyParameterError(`tailMass must be in (0, 1e-6), got ${tau}`);
    this.discretization = h;
    this.tailMass = tau;
  }

  protected override changed(): void {
    this.cache = null;
    this.pending = [];
    this.projection = null;
  }

  protected override appended(params: StepParams, steps: number): void {
    if (!this.cache) return;
    const covered = this.cache.covered + this.pending.reduce((s, p) => s + p.steps, 0);
    const p = this.projection;
    if (p && this.pending.length === 0 && p.covered === covered && p.key === keyOf(params, steps)) {
      this.cache = { pair: p.pair, covered: covered + steps };
      this.projection = null;
      return;
    }
    this.pending.push({ params, steps });
  }

  /** One step's PLD pair for (q, z) (memoised; q = 1 has one direction only, shared). */
  private stepPair(p: StepParams): PldPair {
    const key = `${p.sampleRate}|${p.noiseMultiplier}`;
    let pair = this.single.get(key);
    if (!pair) {
      const params = { discretization: this.discretization, tailMass: this.tailMass };
      const remove = subsampledGaussianPmf(p.sampleRate, p.noiseMultiplier, "remove", params);
      const add = p.sampleRate === 1 ? remove : subsampledGaussianPmf(p.sampleRate, p.noiseMultiplier, "add", params);
      pair = { remove, add };
      if (this.single.size >= 64) this.single.clear();
      this.single.set(key, pair);
    }
    return pair;
  }

  /** The PLD pair of `steps` steps of `p` (one packed FFT power for both directions). */
  private runPair(p: StepParams, steps: number): PldPair {
    const one = this.stepPair(p);
    if (one.add === one.remove) {
      const [c] = selfComposePmfs([one.remove], steps, this.tailMass);
      return { remove: c!, add: c! };
    }
    const [remove, add] = selfComposePmfs([one.remove, one.add], steps, this.tailMass);
    return { remove: remove!, add: add! };
  }

  private join(a: PldPair, b: PldPair): PldPair {
    const tau = this.tailMass;
    const remove = composePmf(a.remove, b.remove, tau);
    const add = a.add === a.remove && b.add === b.remove ? remove : composePmf(a.add, b.add, tau);
    return { remove, add };
  }

  /** The cached composition of the whole history (pending steps folded in). */
  private pair(): PldPair {
    if (!this.cache) {
      let acc: PldPair = { remove: IDENTITY, add: IDENTITY };
      let covered = 0;
      for (const e of this.entries) {
        const run = this.runPair(e, e.steps);
        acc = covered === 0 ? run : this.join(acc, run);
        covered += e.steps;
      }
      this.cache = { pair: acc, covered };
      this.pending = [];
      this.projection = null;
    }
    for (const p of this.pending.splice(0)) {
      const run = this.runPair(p.params, p.steps);
      this.cache = {
        pair: this.cache.covered === 0 ? run : this.join(this.cache.pair, run),
        covered: this.cache.covered + p.steps,
      };
    }
    return this.cache.pair;
  }

  /** The composed PLD of the whole history in one direction (cached; new steps are composed onto it). */
  composed(direction: PldDirection): Pmf {
    return this.pair()[direction];
  }

  private epsilonOf(pair: PldPair, delta: number): number {
    const h = this.discretization;
    const remove = pmfEpsilon(pair.remove, delta, h);
    return pair.add === pair.remove ? remove : Math.max(remove, pmfEpsilon(pair.add, delta, h));
  }

  getEpsilon(delta: number): number {
    validateDelta(delta);
    if (this.entries.length === 0) return 0;
    return this.epsilonOf(this.pair(), delta);
  }

  /** δ(ε) of the composition: the larger of the two directions' hockey-stick divergences. */
  getDelta(epsilon: number): number {
    if (typeof epsilon !== "number" || Number.isNaN(epsilon)) {
      throw new InvalidPrivacyParameterError(`epsilon must be a number, got ${String(epsilon)}`);
    }
    if (this.entries.length === 0) return 0;
    const pair = this.pair();
    const h = this.discretization;
    return Math.max(pmfDelta(pair.remove, epsilon, h), pmfDelta(pair.add, epsilon, h));
  }

  /** The PLD of the distributed discrete Gaussian is not implemented: such steps need the RDP accountant. */
  protected override assertSupported(params: StepParams): void {
    if (params.distributed !== undefined) {
      throw new InvalidPrivacyParameterError(
        "the PLD accountant has no analysis of the distributed discrete Gaussian; use the rdp accountant",
      );
    }
  }

  epsilonAfter(params: StepParams, steps: number, delta: number): number {
    validateStep(params, steps);
    this.assertSupported(params);
    validateDelta(delta);
    const run = this.runPair(params, steps);
    const hasHistory = this.entries.length > 0;
    const pair = hasHistory ? this.join(this.pair(), run) : run;
    this.projection = { key: keyOf(params, steps), covered: hasHistory ? this.cache!.covered : 0, pair };
    if (!hasHistory) this.cache = { pair: { remove: IDENTITY, add: IDENTITY }, covered: 0 };
    return this.epsilonOf(pair, delta);
  }
}

function keyOf(p: StepParams, steps: number): string {
  return `${p.sampleRate}|${p.noiseMultiplier}|${steps}`;
}
