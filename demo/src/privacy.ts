/**
 * @module
 * Where the demo reads ε from, in one place:
 *
 * - {@link populationPrivacy}: the population's spend from the edge's ledger, `GET /v1/populations/{name}/privacy`
 *   (the ledger the edge charges when a round opens). Every ε the report shows comes through here; an ε the edge
 *   cannot source is not shown.
 * - {@link recomputedEpsilon}: the independent check, a fresh accountant fed the (q, z) of every round the edge charged.
 * - {@link deviceEpsilon}: one device's ε, composed over the rounds it checked in for (a round it sat out never touched
 *   its data), with the population's accountant and the (q, z) the ledger charged. The report sets it beside the
 *   device's own `client.privacy()`, which the SDK recomputes from the edge's signed receipts alone.
 */
import { createAccountant } from "@fedge/privacy";

/** One charged round: its id and the step (q, z) the accountant composes. */
export interface ChargedStep {
  roundId: string;
  sampleRate: number;
  noiseMultiplier: number;
}

/** A population's privacy spend, as the edge's ledger states it. */
export interface PopulationPrivacy {
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

/** The population's spend from the edge's ledger. Throws when the edge cannot state it: no ε without a source. */
export async function populationPrivacy(o: {
  baseUrl: string;
  population: string;
  fetch?: typeof fetch;
}): Promise<PopulationPrivacy> {
  const f = o.fetch ?? globalThis.fetch;
  const res = await f(`${o.baseUrl}/v1/populations/${encodeURIComponent(o.population)}/privacy`);
  if (!res.ok) {
    const body = await res.text();
    throw new Error(`GET /v1/populations/${o.population}/privacy answered ${res.status}: ${body.slice(0, 300)}`);
  }
  const s = (await res.json()) as EdgePrivacyStatus;
  if (s.epsilon_spent === null || s.delta === null)
    throw new Error(`the edge's ledger of ${o.population} has no budget, so no ε`);
  return {
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

/**
 * ε of the edge's charged rounds, recomputed by a fresh accountant of the ledger's kind: a second path to the number
 * the edge states, sharing only the pure accountant code and the (q, z) the edge published.
 */
export function recomputedEpsilon(p: PopulationPrivacy): number {
  if (p.rounds.length === 0) return 0;
  const acc = createAccountant(p.accountant);
  for (const r of p.rounds) acc.step({ noiseMultiplier: r.noiseMultiplier, sampleRate: r.sampleRate });
  return acc.getEpsilon(p.delta);
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
