/**
 * The budget rules (round-coordinator/budget.ts) on hand-built rows: pure functions, no Durable Object or storage.
 */
import { describe, expect, it } from "vitest";
import type { RoundParams } from "@fedge/protocol";
import { createAccountant } from "@fedge/privacy";
import {
  budgetChangeVerdict,
  chargeOf,
  chargeVerdict,
  privacyStatus,
  type BudgetRow,
  type ChargeRow,
} from "../src/durable-objects/round-coordinator/budget.ts";

const T0 = Date.parse("2026-11-01T00:00:00Z");

const params: RoundParams = {
  model_version: 1,
  clip_norm: 1,
  learning_rate: 0.1,
  local_epochs: 1,
  batch_size: 16,
  privacy_mode: "central",
  trainable: "all",
  update_length: 8,
  update_dtype: "float32",
  sampling_rate: 0.5,
  min_reports: 1,
  mechanism: { noise_multiplier: 1.5, clip_rule: "adaptive", count_noise_std: 4 },
};

const budget = (epsilon: number, accountant: "rdp" | "pld" = "rdp"): BudgetRow => ({
  epsilon,
  delta: 1e-5,
  accountant,
  set_at: T0,
});

function epsilonOf(steps: number): number {
  const acc = createAccountant("rdp");
  acc.step({ noiseMultiplier: 1.5, sampleRate: 0.5 }, steps);
  return acc.getEpsilon(1e-5);
}

const charges = (n: number): ChargeRow[] =>
  Array.from({ length: n }, (_, i) => chargeOf(i + 1, `m_${i + 1}`, params, T0 + i)!);

const verdict = (b: BudgetRow | null, n: number, p: RoundParams = params) =>
  chargeVerdict({
    model: "m",
    roundSeq: n + 1,
    roundId: `m_${n + 1}`,
    params: p,
    budget: b,
    charges: charges(n),
    now: T0,
  });

describe("chargeVerdict", () => {
  it("charges (q, z, σ_b, mode, clip rule) and admits a round whose projected ε stays within ε_max", () => {
    const v = verdict(budget(epsilonOf(3)), 2);
    expect(v).toEqual({
      ok: true,
      epsilon: epsilonOf(3),
      charge: {
        round_seq: 3,
        round_id: "m_3",
        sampling_rate: 0.5,
        noise_multiplier: 1.5,
        count_noise_std: 4,
        privacy_mode: "central",
        clip_rule: "adaptive",
        distributed_noise: null,
        charged_at: T0,
      },
    });
  });

  it("refuses the round that would pass ε_max, a population without a budget, and mode none under a budget", () => {
    expect(verdict(budget(epsilonOf(3) * 0.999), 2)).toMatchObject({ ok: false, status: 409, code: "budget_exceeded" });
    expect(verdict(null, 0)).toMatchObject({ ok: false, status: 409, code: "budget_exceeded" });
    const none: RoundParams = { ...params, privacy_mode: "none", mechanism: undefined, max_reports: 5 };
    expect(verdict(budget(100), 0, none)).toMatchObject({ ok: false, code: "budget_exceeded" });
    expect(verdict(null, 0, none)).toEqual({ ok: true, charge: null, epsilon: null });
    expect(verdict(budget(100), 0, { ...params, mechanism: undefined })).toMatchObject({ ok: false, status: 400 });
  });
});

describe("budgetChangeVerdict", () => {
  const request = { epsilon: 4, delta: 1e-5, accountant: "rdp" as const };
  it("refuses a population with uncharged rounds and an accountant change after charges", () => {
    expect(budgetChangeVerdict({ model: "m", budget: null, charges: [], unchargedRounds: 1, request })).toMatchObject({
      ok: false,
      code: "conflict",
    });
    expect(
      budgetChangeVerdict({
        model: "m",
        budget: budget(4),
        charges: charges(1),
        unchargedRounds: 0,
        request: { ...request, accountant: "pld" },
      }),
    ).toMatchObject({ ok: false, code: "conflict" });
    expect(
      budgetChangeVerdict({ model: "m", budget: budget(4, "pld"), charges: [], unchargedRounds: 0, request }),
    ).toEqual({ ok: true });
    expect(
      budgetChangeVerdict({
        model: "m",
        budget: budget(4),
        charges: charges(3),
        unchargedRounds: 0,
        request: { ...request, epsilon: 1 },
      }),
    ).toEqual({ ok: true });
  });
});

describe("privacyStatus", () => {
  it("never reports a negative remainder", () => {
    const s = privacyStatus("m", budget(1), charges(2), () => 1.5);
    expect(s).toMatchObject({ epsilon_spent: 1.5, epsilon_remaining: 0, delta: 1e-5 });
    expect(s.rounds).toHaveLength(2);
  });
});
