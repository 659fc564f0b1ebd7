/**
 * @module
 * BENCHMARK BASELINE ONLY: accountant/rdp.ts (RdpAccountant) as it was before the PLD/ledger speed-up (privacy-math branch), kept verbatim
 * (imports aside) so `npm run bench` can time today's algorithm against the new one in the same run. Not used by the
 * library.
 *
 * RDP accountant (after opacus `opacus/accountants/rdp.py`): sums the RDP curve of every history entry over an order
 * grid and converts to (ε, δ) with the improved conversion of Balle et al. 2020 (arXiv 1905.09982 Thm. 21) by default.
 * All formulas and citations are in `analysis/rdp.ts`.
 */
import { validateDelta, InvalidPrivacyParameterError } from "@fedge/privacy";
import { HistoryAccountant } from "./history.ts";
import { computeRdp, DEFAULT_ORDERS, getPrivacySpent, type PrivacySpent, type RdpConversion } from "@fedge/privacy";

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

export class BaselineRdpAccountant extends HistoryAccountant {
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

  /** The composed RDP curve at `orders` (ε_RDP(α) summed over the history). */
  rdpCurve(): Float64Array {
    const total = new Float64Array(this.orders.length);
    for (const e of this.entries) {
      const r = computeRdp(e.sampleRate, e.noiseMultiplier, e.steps, this.orders);
      for (let k = 0; k < total.length; k++) total[k] = total[k]! + r[k]!;
    }
    return total;
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
}
