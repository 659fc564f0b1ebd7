/**
 * @module
 * RDP accountant (after opacus `opacus/accountants/rdp.py`): sums the RDP curve of every history entry over an order
 * grid and converts to (ε, δ) with the improved conversion of Balle et al. 2020 (arXiv 1905.09982 Thm. 21) by default.
 * All formulas and citations are in `analysis/rdp.ts`.
 *
 * Incremental: RDP composes by addition (arXiv 1702.07476 Prop. 1), so the curve of the history is kept as a running
 * sum and each step's curve is computed once per distinct (q, z) (memoised); a new step or a budget check costs
 * O(orders), whatever the history's length.
 */
import {
  HistoryAccountant,
  InvalidPrivacyParameterError,
  validateDelta,
  validateStep,
  type StepParams,
} from "./accountant.ts";
import { distributedSubsampledRdp } from "./analysis/distributed-discrete-gaussian.ts";
import { computeRdp, DEFAULT_ORDERS, getPrivacySpent, type PrivacySpent, type RdpConversion } from "./analysis/rdp.ts";

/** Options of {@link RdpAccountant}. */
export interface RdpAccountantOptions {
  /**
   * RDP orders α > 1 over which ε is minimised.
   * @default DEFAULT_ORDERS (opacus's grid 1.1..10.9 step 0.1, 12..63, extended with 64..1024)
   */
  orders?: readonly number[];
  /**
   * RDP → (ε, δ) conversion: `improved` (Balle et al. 2020, arXiv 1905.09982 Thm. 21, as opacus) or `classic`
   * (Mironov 2017, arXiv 1702.07476 Prop. 3, as Abadi et al. 2016).
   * @default "improved"
   */
  conversion?: RdpConversion;
}

export class RdpAccountant extends HistoryAccountant {
  readonly mechanism = "rdp" as const;
  readonly orders: readonly number[];
  readonly conversion: RdpConversion;

  constructor(options: RdpAccountantOptions = {}) {
    super();
    const orders = options.orders ?? DEFAULT_ORDERS;
    if (
      !Array.isArray(orders) ||
      orders.length === 0 ||
      !orders.every((a) => typeof a === "number" && a > 1 && Number.isFinite(a))
    ) {
      throw new InvalidPrivacyParameterError("orders must be a non-empty list of finite numbers > 1");
    }
    const conversion = options.conversion ?? "improved";
    if (conversion !== "improved" && conversion !== "classic") {
      throw new InvalidPrivacyParameterError(`conversion must be "improved" or "classic", got ${String(conversion)}`);
    }
    this.orders = Object.freeze([...orders]);
    this.conversion = conversion;
  }

  /** Running sum of the history's curves (null: recompute from `entries`). */
  private curve: Float64Array | null = null;
  /** One step's curve per (q, z). */
  private readonly perStep = new Map<string, Float64Array>();

  protected override changed(): void {
    this.curve = null;
  }

  protected override appended(params: StepParams, steps: number): void {
    if (!this.curve) return;
    const one = this.stepCurve(params);
    for (let k = 0; k < one.length; k++) this.curve[k] = this.curve[k]! + steps * one[k]!;
  }

  /** RDP of one step at `orders` (memoised): the sampled Gaussian of (q, z), or a distributed step's bound. */
  private stepCurve(p: StepParams): Float64Array {
    const s = p.distributed;
    const key = s
      ? `${p.sampleRate}|ddg|${s.dimension}|${s.clients}|${s.localVariance}|${s.sensitivityBound}|${s.adjacency ?? "add-remove"}|${s.cohort ?? "sampled"}`
      : `${p.sampleRate}|${p.noiseMultiplier}`;
    let c = this.perStep.get(key);
    if (!c) {
      c = s
        ? distributedSubsampledRdp(p.sampleRate, s, this.orders)
        : computeRdp(p.sampleRate, p.noiseMultiplier, 1, this.orders);
      if (this.perStep.size >= 1024) this.perStep.clear();
      this.perStep.set(key, c);
    }
    return c;
  }

  /** The composed RDP curve at `orders` (ε_RDP(α) summed over the history); a copy. */
  rdpCurve(): Float64Array {
    if (!this.curve) {
      const total = new Float64Array(this.orders.length);
      for (const e of this.entries) {
        const one = this.stepCurve(e);
        for (let k = 0; k < total.length; k++) total[k] = total[k]! + e.steps * one[k]!;
      }
      this.curve = total;
    }
    return Float64Array.from(this.curve);
  }

  /** ε, the best order and whether it sits at the grid's edge. */
  getPrivacySpent(delta: number, conversion: RdpConversion = this.conversion): PrivacySpent {
    validateDelta(delta);
    if (this.entries.length === 0) return { epsilon: 0, order: Number.NaN, orderAtGridEdge: false };
    return getPrivacySpent(this.orders, this.rdpCurve(), delta, conversion);
  }

  getEpsilon(delta: number): number {
    return this.getPrivacySpent(delta).epsilon;
  }

  epsilonAfter(params: StepParams, steps: number, delta: number): number {
    validateStep(params, steps);
    validateDelta(delta);
    const curve = this.rdpCurve();
    const one = this.stepCurve(params);
    for (let k = 0; k < curve.length; k++) curve[k] = curve[k]! + steps * one[k]!;
    return getPrivacySpent(this.orders, curve, delta, this.conversion).epsilon;
  }
}
