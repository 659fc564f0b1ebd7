/**
 * @module
 * The population's privacy view, a capability of the coordinator: setting its budget, its status (ε spent and left,
 * every charged round) and a device's own record (`GET /v1/devices/:id/privacy`), over the ledger the coordinator
 * charges rounds to. The rules are pure functions in `budget.ts`; this capability reads the tables they judge.
 */
import type { DeviceCheckedInRound, PopulationPrivacyStatus, PrivacyBudgetRequest } from "@fedge/protocol";
import type { Result } from "../../training/result.ts";
import {
  budgetChangeVerdict,
  checkedInRound,
  deviceEpsilon,
  deviceEpsilonAgainstEdge,
  privacyStatus,
} from "./budget.ts";
import type { PopulationLedger } from "./population-ledger.ts";
import type { Rounds } from "./rounds.ts";
import type { ShardFanout } from "./shard-fanout.ts";

/** What the capability needs of the object that holds it. */
export interface PrivacyHost {
  /** Whether the object has its tables (a population nobody opened a round or set a budget for has none). */
  hasTables(): boolean;
  /** Creates the tables (an admin's write: the first legitimate one may). */
  ensureTables(): void;
  /** The population's model name, null before its first round. */
  modelName(): string | null;
}

export class PopulationPrivacy {
  readonly #host: PrivacyHost;
  readonly #ledger: PopulationLedger;
  readonly #rounds: Rounds;
  readonly #fanout: ShardFanout;

  constructor(host: PrivacyHost, deps: { ledger: PopulationLedger; rounds: Rounds; fanout: ShardFanout }) {
    this.#host = host;
    this.#ledger = deps.ledger;
    this.#rounds = deps.rounds;
    this.#fanout = deps.fanout;
  }

  /** Sets (or changes) the population's budget (see `budgetChangeVerdict` for what is refused). */
  setBudget(input: {
    model: string;
    budget: PrivacyBudgetRequest;
    now: number;
  }): Result<{ status: PopulationPrivacyStatus }> {
    const { model, budget: request, now } = input;
    this.#host.ensureTables();
    const verdict = budgetChangeVerdict({
      model,
      budget: this.#ledger.budget(),
      charges: this.#ledger.charges(),
      unchargedRounds: this.#ledger.unchargedRounds(),
      request,
    });
    if (!verdict.ok) return verdict;
    this.#ledger.setBudget({
      epsilon: request.epsilon,
      delta: request.delta,
      accountant: request.accountant,
      set_at: now,
    });
    return { ok: true, status: this.status(model) };
  }

  /** The population's budget, ε spent and left, and every charged round (no device counts). */
  status(model: string): PopulationPrivacyStatus {
    // a population nobody opened a round or set a budget for keeps no storage (the route is public)
    if (!this.#host.hasTables()) return privacyStatus(model, null, [], () => 0);
    const charges = this.#ledger.charges();
    return privacyStatus(
      model,
      this.#ledger.budget(),
      charges,
      (b) => this.#ledger.spent(model, b, charges),
      (b) => this.#ledger.spentAgainstEdge(model, b, charges),
    );
  }

  /**
   * Every charged round `deviceId` checked in for, oldest first, with the device's ε over exactly those rounds at the
   * budget's δ (RDP, as its SDK computes it from the receipts).
   */
  async ofDevice(deviceId: string): Promise<{
    rounds: DeviceCheckedInRound[];
    epsilon: number | null;
    epsilon_against_edge: number | null;
    delta: number | null;
  }> {
    if (!this.#host.hasTables()) return { rounds: [], epsilon: null, epsilon_against_edge: null, delta: null };
    const rounds = this.#ledger.chargesOfDevice(deviceId).map((c) => ({ ...c }));
    // Sharded rounds: the device's check-ins are on the shard it had under each round's S (it may have moved since).
    const model = this.#host.modelName();
    if (model !== null && this.#rounds.shardedRounds().size > 0) {
      const charges = new Map(this.#ledger.charges().map((c) => [c.round_seq, c]));
      for (const [seq, { at, selected }] of await this.#fanout.checkinTimes(model, deviceId)) {
        const charge = charges.get(seq);
        if (charge) rounds.push({ ...charge, checked_in_at: at, selected });
      }
      rounds.sort((a, b) => a.round_seq - b.round_seq);
    }
    const budget = this.#ledger.budget();
    return {
      rounds: rounds.map((c) => checkedInRound(c, c.checked_in_at, c.selected === 1)),
      epsilon: deviceEpsilon(model!, rounds, budget),
      epsilon_against_edge: deviceEpsilonAgainstEdge(model!, rounds, budget),
      delta: budget?.delta ?? null,
    };
  }
}
