/**
 * @module
 * BENCHMARK BASELINE ONLY: accountant/pld.ts (PldAccountant) as it was before the PLD/ledger speed-up (privacy-math branch), kept verbatim
 * (imports aside) so `npm run bench` can time today's algorithm against the new one in the same run. Not used by the
 * library.
 *
 * PLD accountant: composes pessimistic ("connect the dots", arXiv 2207.04380) privacy loss distributions of every
 * history entry with the FFT and reads ε for δ off the result. Both neighbouring directions (add / remove) are
 * composed separately and the larger ε is reported. Formulas and citations are in `analysis/pld.ts`.
 */
import { InvalidPrivacyParameterError, validateDelta } from "@fedge/privacy";
import { HistoryAccountant } from "./history.ts";
import {
  composePmf,
  pmfEpsilon,
  selfComposePmf,
  subsampledGaussianPmf,
  type Pmf,
  type PldDirection,
} from "./pld-analysis.ts";

/** Options of {@link PldAccountant}. */
export interface PldAccountantOptions {
  /**
   * Grid spacing h of privacy-loss values. Smaller is tighter and slower (cost ∝ 1/h). Any h is pessimistic.
   * @default 1e-4 (as Google's dp_accounting)
   */
  discretization?: number;
  /**
   * Tail mass τ cut per PLD construction and per convolution; it is moved pessimistically (to +∞ or up), so it can
   * only add about (steps + 2·log₂ steps)·τ to δ.
   * @default 1e-15
   */
  tailMass?: number;
}

export class BaselinePldAccountant extends HistoryAccountant {
  readonly mechanism = "pld" as const;
  readonly discretization: number;
  readonly tailMass: number;
  private cache: Map<PldDirection, Pmf> | null = null;

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
  }

  /** The composed PLD of the whole history in one direction (cached until the next step). */
  composed(direction: PldDirection): Pmf {
    if (!this.cache) this.cache = new Map();
    let pmf = this.cache.get(direction);
    if (!pmf) {
      const params = { discretization: this.discretization, tailMass: this.tailMass };
      let acc: Pmf = { offset: 0, probs: Float64Array.of(1), infinityMass: 0 }; // identity: all mass at loss 0
      for (const e of this.entries) {
        const single = subsampledGaussianPmf(e.sampleRate, e.noiseMultiplier, direction, params);
        acc = composePmf(acc, selfComposePmf(single, e.steps, this.tailMass), this.tailMass);
      }
      pmf = acc;
      this.cache.set(direction, pmf);
    }
    return pmf;
  }

  getEpsilon(delta: number): number {
    validateDelta(delta);
    if (this.entries.length === 0) return 0;
    const h = this.discretization;
    const remove = pmfEpsilon(this.composed("remove"), delta, h);
    // q = 1 everywhere: the two directions are the same Gaussian, compose once.
    if (this.entries.every((e) => e.sampleRate === 1)) return remove;
    return Math.max(remove, pmfEpsilon(this.composed("add"), delta, h));
  }
}
