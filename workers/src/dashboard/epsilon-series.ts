/**
 * @module
 * ε spent after each charged round of a population, from the edge's public ledger (`GET /v1/populations/:name/privacy`):
 * the k-th point is what the population's accountant reports for its first k charges at the budget's δ, so the last
 * point is the ledger's `epsilon_spent`. The same `PrivacyLedger` of `@fedge/privacy` the RoundCoordinator charges with
 * (budget.ts `ledgerOf`), fed the same steps in the same order. Pure: no I/O.
 */
import { distributedSharesOf, PrivacyLedger } from "@fedge/privacy";
import { isDpMode, type PopulationPrivacyStatus } from "@fedge/protocol";

export interface EpsilonPoint {
  roundId: string;
  /** ε after this round, at the budget's δ. */
  epsilon: number;
}

/** One point per charged round, oldest first; empty without a budget (no δ to report ε at). */
export function epsilonSeries(status: PopulationPrivacyStatus): EpsilonPoint[] {
  if (!status.budget) return [];
  const ledger = new PrivacyLedger({ population: status.model, accountant: status.accountant });
  return status.rounds.map((r) => {
    // The edge charges DP rounds only (budget.ts `chargeOf`); a round in mode none in a ledger is corrupt data.
    if (!isDpMode(r.privacy_mode)) throw new RangeError(`ledger round ${r.round_id} has privacy mode none`);
    ledger.record({
      roundId: r.round_id,
      sampleRate: r.sampling_rate,
      noiseMultiplier: r.noise_multiplier,
      mode: r.privacy_mode,
      openedAt: r.charged_at,
      // a distributed round is charged for the discrete noise shares it ran with, as budget.ts `ledgerRound` does
      ...(r.distributed ? { distributed: distributedSharesOf(r.distributed) } : {}),
    });
    return { roundId: r.round_id, epsilon: ledger.spent(status.budget!.delta) };
  });
}
