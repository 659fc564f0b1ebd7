/**
 * @module
 * The device's own privacy accounting, from the edge's signed check-in receipts (`receipts.ts`): ε per population,
 * recomputed on the device with the RDP accountant of `@fedge/privacy` (`PrivacyLedger`, the very code that keeps the
 * population's ledger at the edge), one step per round the device checked in for: (q, z) in central and distributed
 * mode, (1, z/2) in local mode (replace-one; see docs/PRIVACY.md "Adjacency per mode"). Beside it, the ε against the
 * edge: the same rounds without amplification by sampling (`PrivacyLedger.spentAgainstEdge`). A device that checked in for
 * every round of a population spends exactly the population's ε (with the population on the RDP accountant); one
 * that checked in for fewer spends less.
 *
 * Stopping on the device's own budget (`maxDeviceEpsilon`) follows Feldman & Zrnic 2021, "Individual Privacy
 * Accounting via a Rényi Filter" (NeurIPS 2021, arXiv 2008.11193, §3, Theorem 3.1 / Algorithm 1): under fully
 * adaptive composition, a party may drop out of step t once the sum of its individual Rényi divergences of order α
 * over steps 1..t would pass a budget B, and the whole interaction is still (α, B)-RDP for it, provided the decision
 * depends only on the past steps' parameters and the next step's (never on the data). Here the steps' parameters
 * (q, z, mode) are public and stated in the receipts, so the decision qualifies; and a device that withdraws from a
 * round (trains and uploads nothing, whatever its coin) makes that round independent of its data, i.e. a step of
 * divergence 0. The filter is over RDP, so this accounting uses the RDP accountant for the device whatever accountant
 * the population uses, and checks the cap on the ε that the RDP curve converts to at the population's δ (the
 * conversion is monotone in the curve, so ε ≤ cap at every step keeps the final ε ≤ cap).
 */
import { PrivacyLedger, distributedSharesOf, type LedgerRound } from "@fedge/privacy";
import type { SignedCheckinReceipt } from "@fedge/protocol/receipt";
import type { StoredReceipt } from "./receipts.ts";

/** What one population cost this device (`client.privacy()`). */
export interface PopulationPrivacySpend {
  /** The population (model name). */
  model: string;
  /**
   * ε spent at `delta`, by the device's own RDP accounting over the receipts it counted: against whoever sees only
   * the released models (amplified by the round's sampling).
   */
  epsilon: number;
  /**
   * ε at `delta` against the edge itself, which flips the coins and sees who takes part: only the counted rounds
   * whose coin put this device's update in (a round it was not sampled for, or added only its noise share to with a
   * zero update, is independent of its data for a party that knows the coins), no amplification by sampling,
   * distributed rounds for zero-out neighbours with this device's own noise share (`PrivacyLedger.spentAgainstEdge`).
   * null when one of them was a central round: the edge saw the clipped update.
   */
  epsilonAgainstEdge: number | null;
  /** The δ of the newest counted receipt (the population budget's δ). */
  delta: number;
  accountant: "rdp";
  /** Rounds counted: every round the device checked in for, selected or not. */
  rounds: number;
  /** Rounds the device withdrew from because they would have passed `maxDeviceEpsilon` (not counted). */
  declinedRounds: number;
}

function ledgerRound(r: SignedCheckinReceipt): LedgerRound {
  const noise = r.distributed_noise;
  return {
    roundId: r.round_id,
    sampleRate: r.sampling_rate,
    noiseMultiplier: r.noise_multiplier,
    mode: r.privacy_mode,
    openedAt: r.checked_in_at,
    // A distributed round is charged its discrete noise (KLS21), as the population's ledger charges it.
    ...(noise ? { distributed: distributedSharesOf(noise) } : {}),
  };
}

function ledgerOf(model: string, receipts: readonly SignedCheckinReceipt[]): PrivacyLedger {
  const ledger = new PrivacyLedger({ population: model, accountant: "rdp" });
  for (const r of receipts) ledger.record(ledgerRound(r));
  return ledger;
}

/** ε of the counted receipts of one population at δ (0 without any). */
export function spentEpsilon(model: string, counted: readonly SignedCheckinReceipt[], delta: number): number {
  return counted.length === 0 ? 0 : ledgerOf(model, counted).spent(delta);
}

/** ε against the edge of the counted receipts at δ (0 without any; null when one is central: no bound). */
export function spentEpsilonAgainstEdge(
  model: string,
  counted: readonly SignedCheckinReceipt[],
  delta: number,
): number | null {
  if (counted.length === 0) return 0;
  const epsilon = ledgerOf(model, counted).spentAgainstEdge(delta);
  return Number.isFinite(epsilon) ? epsilon : null;
}

/** ε after one more round `next` on top of the counted receipts (the filter's test), at `next`'s δ. */
export function epsilonWith(
  model: string,
  counted: readonly SignedCheckinReceipt[],
  next: SignedCheckinReceipt,
): number {
  const ledger = ledgerOf(
    model,
    counted.filter((r) => r.round_id !== next.round_id),
  );
  return ledger.projectedSpend({ ...ledgerRound(next), roundId: `${next.round_id}#next` }, next.delta);
}

/** One entry per population, sorted by name. */
export function privacySpend(entries: readonly StoredReceipt[]): PopulationPrivacySpend[] {
  const byModel = new Map<string, StoredReceipt[]>();
  for (const e of entries) {
    const list = byModel.get(e.receipt.model) ?? [];
    list.push(e);
    byModel.set(e.receipt.model, list);
  }
  return [...byModel.keys()].sort().map((model) => {
    const list = byModel.get(model)!;
    const counted = list.filter((e) => !e.declined).map((e) => e.receipt);
    const included = list.filter((e) => !e.declined && e.updateIncluded !== false).map((e) => e.receipt);
    const delta = (counted.at(-1) ?? list.at(-1)!.receipt).delta;
    return {
      model,
      epsilon: spentEpsilon(model, counted, delta),
      epsilonAgainstEdge: spentEpsilonAgainstEdge(model, included, delta),
      delta,
      accountant: "rdp" as const,
      rounds: counted.length,
      declinedRounds: list.length - counted.length,
    };
  });
}
