/**
 * @module
 * Where the demo reads ε from, in one place:
 *
 * - {@link populationPrivacy}: the population's spend from the edge's ledger, `GET /v1/populations/{name}/privacy`
 *   (the ledger the edge charges when a round opens). Until an edge serves that route (it answers 404), the aggregator's
 *   own ledger (the `RoundEngine` checkpoint, charged by the same rounds) stands in, and the result says so
 *   (`source`). Every ε the report shows comes through here.
 * - {@link deviceEpsilon}: one device's own ε, composed over the rounds it checked in for (a round it sat out never
 *   touched its data), with the same accountant and the (q, z) the ledger charged. Devices do not get privacy receipts
 *   yet; this is what such a receipt would state, computed here with @fedge/privacy.
 */
import { createAccountant, PrivacyLedger, type LedgerState } from "@fedge/privacy";

/** One charged round: its id and the step (q, z) the accountant composes. */
export interface ChargedStep {
  roundId: string;
  sampleRate: number;
  noiseMultiplier: number;
}

/** A population's privacy spend. */
export interface PopulationPrivacy {
  /** `edge`: from `GET /v1/populations/{name}/privacy`; `aggregator`: the aggregator's ledger (the edge has no route). */
  source: "edge" | "aggregator";
  accountant: "rdp" | "pld";
  epsilon: number;
  delta: number;
  rounds: ChargedStep[];
}

/** What the edge route answers (the fields the demo reads). */
interface EdgePrivacyStatus {
  accountant: "rdp" | "pld";
  epsilon_spent: number | null;
  delta: number | null;
  rounds: { round_id: string; sampling_rate: number; noise_multiplier: number }[];
}

/**
 * The population's spend from the edge's ledger, or from `aggregatorLedger` while the edge has no privacy route
 * (see the module header). Throws on any other failure: an ε the report cannot source is not shown.
 */
export async function populationPrivacy(o: {
  baseUrl: string;
  population: string;
  delta: number;
  aggregatorLedger: LedgerState | null;
  fetch?: typeof fetch;
}): Promise<PopulationPrivacy> {
  const f = o.fetch ?? globalThis.fetch;
  const res = await f(`${o.baseUrl}/v1/populations/${encodeURIComponent(o.population)}/privacy`);
  if (res.ok) {
    const s = (await res.json()) as EdgePrivacyStatus;
    if (s.epsilon_spent === null || s.delta === null)
      throw new Error(`the edge's ledger of ${o.population} has no budget, so no ε`);
    return {
      source: "edge",
      accountant: s.accountant,
      epsilon: s.epsilon_spent,
      delta: s.delta,
      rounds: s.rounds.map((r) => ({
        roundId: r.round_id,
        sampleRate: r.sampling_rate,
        noiseMultiplier: r.noise_multiplier,
      })),
    };
  }
  await res.body?.cancel();
  if (res.status !== 404) throw new Error(`GET /v1/populations/${o.population}/privacy answered ${res.status}`);
  if (!o.aggregatorLedger) throw new Error(`no ledger for ${o.population}`);
  const ledger = PrivacyLedger.fromJSON(o.aggregatorLedger);
  return {
    source: "aggregator",
    accountant: ledger.accountant,
    epsilon: ledger.spent(o.delta),
    delta: o.delta,
    rounds: ledger.rounds.map((r) => ({
      roundId: r.roundId,
      sampleRate: r.sampleRate,
      noiseMultiplier: r.noiseMultiplier,
    })),
  };
}

/**
 * A device's own ε at `delta`: the charged steps of the rounds in `checkedIn` composed with `accountant` (0 when it
 * checked in for none). The rounds a device sat out do not enter its guarantee.
 */
export function deviceEpsilon(o: {
  rounds: ChargedStep[];
  checkedIn: Iterable<string>;
  accountant: "rdp" | "pld";
  delta: number;
}): { epsilon: number; rounds: number } {
  const mine = new Set(o.checkedIn);
  const acc = createAccountant(o.accountant);
  let n = 0;
  for (const r of o.rounds) {
    if (!mine.has(r.roundId)) continue;
    acc.step({ noiseMultiplier: r.noiseMultiplier, sampleRate: r.sampleRate });
    n++;
  }
  return { epsilon: n === 0 ? 0 : acc.getEpsilon(o.delta), rounds: n };
}
