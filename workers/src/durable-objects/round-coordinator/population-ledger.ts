/**
 * @module
 * `PopulationLedger` owns the population's privacy ledger: `privacy_budget` (one row, the admin's (ε_max, δ) and
 * accountant) and `privacy_charges` (one row per charged round: q, z, σ_b, mode, clip rule, time). Rows are only ever
 * added: a charge is never taken back. The rules (what a round charges, whether the budget admits it) are pure
 * functions in `budget.ts`; the RoundCoordinator writes a charge in the same SQLite transaction as the round it pays
 * for, so a round is open exactly when it is charged.
 *
 * ε spent is recomputed from the charges with the shared accountant and memoised per (charges, δ, accountant), so the
 * public read does not rerun the accountant on every request.
 */
import type { CoordinatorHost } from "./host.ts";
import { ledgerOf, type BudgetRow, type ChargeRow } from "./budget.ts";

export class PopulationLedger {
  private readonly host: Pick<CoordinatorHost, "sql">;
  private memo: { key: string; epsilon: number } | null = null;
  private edgeMemo: { key: string; epsilon: number } | null = null;

  constructor(host: Pick<CoordinatorHost, "sql">) {
    this.host = host;
  }

  budget(): BudgetRow | null {
    return (
      this.host.sql
        .exec<BudgetRow>("SELECT epsilon, delta, accountant, set_at FROM privacy_budget WHERE id = 1")
        .toArray()[0] ?? null
    );
  }

  /** Every charged round, oldest first. */
  charges(): ChargeRow[] {
    return this.host.sql
      .exec<ChargeRow>(
        `SELECT round_seq, round_id, sampling_rate, noise_multiplier, count_noise_std, privacy_mode, clip_rule,
           distributed_noise, charged_at
         FROM privacy_charges ORDER BY round_seq`,
      )
      .toArray();
  }

  /** The charge of round `seq`, if it was charged. */
  chargeOf(seq: number): ChargeRow | null {
    return (
      this.host.sql
        .exec<ChargeRow>(
          `SELECT round_seq, round_id, sampling_rate, noise_multiplier, count_noise_std, privacy_mode, clip_rule,
             distributed_noise, charged_at
           FROM privacy_charges WHERE round_seq = ?`,
          seq,
        )
        .toArray()[0] ?? null
    );
  }

  /**
   * Every charged round `deviceId` checked in for (its coin was flipped: its loss accrues, selected or not), with the
   * time of its first check-in and its coin (1: its update went in), oldest first.
   */
  chargesOfDevice(deviceId: string): (ChargeRow & { checked_in_at: number; selected: number })[] {
    return this.host.sql
      .exec<ChargeRow & { checked_in_at: number; selected: number }>(
        `SELECT p.round_seq, p.round_id, p.sampling_rate, p.noise_multiplier, p.count_noise_std, p.privacy_mode,
           p.clip_rule, p.distributed_noise, p.charged_at, c.at AS checked_in_at, c.selected
         FROM checkins c JOIN privacy_charges p ON p.round_seq = c.round_seq
         WHERE c.device_id = ? ORDER BY p.round_seq`,
        deviceId,
      )
      .toArray();
  }

  /** Rounds of the population that no budget charged (mode `none`, or opened before the edge kept ledgers). */
  unchargedRounds(): number {
    return this.host.sql
      .exec<{ n: number }>("SELECT COUNT(*) AS n FROM rounds WHERE seq NOT IN (SELECT round_seq FROM privacy_charges)")
      .one().n;
  }

  setBudget(budget: BudgetRow): void {
    this.host.sql.exec(
      `INSERT INTO privacy_budget (id, epsilon, delta, accountant, set_at) VALUES (1, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET epsilon = excluded.epsilon, delta = excluded.delta,
         accountant = excluded.accountant, set_at = excluded.set_at`,
      budget.epsilon,
      budget.delta,
      budget.accountant,
      budget.set_at,
    );
  }

  /** Records a round's charge (inside the transaction that opens the round). */
  charge(c: ChargeRow): void {
    this.host.sql.exec(
      `INSERT INTO privacy_charges (round_seq, round_id, sampling_rate, noise_multiplier, count_noise_std, privacy_mode,
         clip_rule, distributed_noise, charged_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      c.round_seq,
      c.round_id,
      c.sampling_rate,
      c.noise_multiplier,
      c.count_noise_std,
      c.privacy_mode,
      c.clip_rule,
      c.distributed_noise,
      c.charged_at,
    );
  }

  /** ε spent by `charges` at `budget`'s δ with its accountant (memoised). */
  spent(model: string, budget: BudgetRow, charges: readonly ChargeRow[]): number {
    const key = `${charges.length}|${charges.at(-1)?.round_seq ?? 0}|${budget.delta}|${budget.accountant}`;
    if (this.memo?.key === key) return this.memo.epsilon;
    const epsilon = ledgerOf(model, budget.accountant, charges).spent(budget.delta);
    this.memo = { key, epsilon };
    return epsilon;
  }

  /** ε against the edge of `charges` at `budget`'s δ (PrivacyLedger `spentAgainstEdge`; +∞ for no bound; memoised). */
  spentAgainstEdge(model: string, budget: BudgetRow, charges: readonly ChargeRow[]): number {
    const key = `${charges.length}|${charges.at(-1)?.round_seq ?? 0}|${budget.delta}|${budget.accountant}`;
    if (this.edgeMemo?.key === key) return this.edgeMemo.epsilon;
    const epsilon = ledgerOf(model, budget.accountant, charges).spentAgainstEdge(budget.delta);
    this.edgeMemo = { key, epsilon };
    return epsilon;
  }
}
