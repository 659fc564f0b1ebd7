import { describe, expect, it } from "vitest";
import { InvalidPrivacyParameterError } from "./accountant/accountant.ts";
import { RdpAccountant } from "./accountant/rdp.ts";
import { gaussianEpsilon } from "./gaussian-mechanism/analytic-gaussian.ts";
import { localReportEpsilon } from "./local-epsilon.ts";
import { PrivacyBudgetExceededError, PrivacyLedger, type LedgerRound } from "./ledger.ts";

const round = (i: number, extra: Partial<LedgerRound> = {}): LedgerRound => ({
  roundId: `r${i}`,
  sampleRate: 0.01,
  noiseMultiplier: 1.1,
  mode: "central",
  openedAt: `2026-11-23T10:${String(i % 60).padStart(2, "0")}:00Z`,
  ...extra,
});

describe("PrivacyLedger", () => {
  it("records rounds and spends exactly what an RDP accountant with the same steps spends", () => {
    const ledger = new PrivacyLedger({ population: "mnist" });
    for (let i = 0; i < 50; i++) ledger.record(round(i));
    const acc = new RdpAccountant();
    acc.step({ noiseMultiplier: 1.1, sampleRate: 0.01 }, 50);
    expect(ledger.spent(1e-5)).toBe(acc.getEpsilon(1e-5));
    expect(ledger.rounds).toHaveLength(50);
  });

  it("projectedSpend includes the next round; assertCanOpen refuses over budget with a typed error and records nothing", () => {
    const ledger = new PrivacyLedger({ population: "mnist" });
    const budget = { epsilon: 1, delta: 1e-5 };
    let i = 0;
    for (; ; i++) {
      const projected = ledger.projectedSpend(round(i), budget.delta);
      if (projected > budget.epsilon) break;
      expect(ledger.open(round(i), budget)).toBeCloseTo(projected, 12);
    }
    expect(i).toBeGreaterThan(10);
    const before = ledger.rounds;
    let err: unknown;
    try {
      ledger.assertCanOpen(round(i), budget);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PrivacyBudgetExceededError);
    const e = err as PrivacyBudgetExceededError;
    expect(e.reason).toBe("budget_exceeded");
    // a domain error: no HTTP status or wire code (the edge and the CLI map it)
    expect(e).not.toHaveProperty("status");
    expect(e).not.toHaveProperty("code");
    expect(e.message).toMatch(/budget ε=1, δ=0\.00001/);
    expect(e.message).toContain(`round "r${i}"`);
    expect(e.projectedEpsilon).toBeGreaterThan(1);
    expect(() => ledger.open(round(i), budget)).toThrow(PrivacyBudgetExceededError);
    expect(ledger.rounds).toEqual(before);
  });

  it("local rounds are charged like the SDK prices a report: replace-one, sensitivity 2C, q = 1 (z/2 steps)", () => {
    const ledger = new PrivacyLedger({ population: "p" });
    ledger.record(round(1, { mode: "local", noiseMultiplier: 5, sampleRate: 0.001 }));
    ledger.record(round(2, { mode: "local", noiseMultiplier: 5, sampleRate: 0.001 }));
    const acc = new RdpAccountant();
    acc.step({ noiseMultiplier: 5 / 2, sampleRate: 1 }, 2);
    expect(ledger.spent(1e-5)).toBe(acc.getEpsilon(1e-5));
    const central = new PrivacyLedger({ population: "p" });
    central.record(round(1, { noiseMultiplier: 5, sampleRate: 0.001 }));
    central.record(round(2, { noiseMultiplier: 5, sampleRate: 0.001 }));
    expect(central.spent(1e-5)).toBeLessThan(ledger.spent(1e-5));
  });

  it("one local round spends exactly the SDK's per-report ε (local-epsilon.ts, replace-one); T rounds compose", () => {
    for (const z of [1, 4, 10]) {
      const ledger = new PrivacyLedger({ population: "p", accountant: "pld" });
      ledger.record(round(1, { mode: "local", noiseMultiplier: z, sampleRate: 0.05 }));
      const sdk = localReportEpsilon({ noiseMultiplier: z, delta: 1e-5 }); // replace-one is the SDK's default
      const spent = ledger.spent(1e-5);
      expect(spent).toBeGreaterThanOrEqual(sdk);
      expect(spent - sdk).toBeLessThan(1e-3 * sdk);
      // add/remove (Δ = C) would be cheaper: the ledger must not use it for local reports
      expect(spent).toBeGreaterThan(
        localReportEpsilon({ noiseMultiplier: z, delta: 1e-5, neighbouring: "add-remove" }),
      );
    }
    // three local reports of one device: Gaussian composition, Δ/σ = 2/z each → √3·2/z in total
    const ledger = new PrivacyLedger({ population: "p", accountant: "pld" });
    for (let i = 1; i <= 3; i++) ledger.record(round(i, { mode: "local", noiseMultiplier: 4, sampleRate: 0.05 }));
    const exact = gaussianEpsilon(1e-5, 4 / (2 * Math.sqrt(3)));
    expect(ledger.spent(1e-5)).toBeGreaterThanOrEqual(exact);
    expect(ledger.spent(1e-5) - exact).toBeLessThan(1e-3 * exact);
  });

  it("charges incrementally: a live ledger agrees with one rebuilt from JSON, for runs of equal rounds", () => {
    for (const accountant of ["rdp", "pld"] as const) {
      const options = accountant === "pld" ? { discretization: 1e-3 } : undefined;
      const live = new PrivacyLedger({
        population: "p",
        accountant,
        ...(options ? { accountantOptions: options } : {}),
      });
      const budget = { epsilon: 50, delta: 1e-5 };
      let i = 0;
      for (const [q, z, n] of [
        [0.01, 1.1, 40],
        [0.02, 0.9, 25],
        [0.01, 1.3, 30],
      ] as const) {
        for (let k = 0; k < n; k++, i++) {
          const next = round(i, { sampleRate: q, noiseMultiplier: z });
          const projected = live.projectedSpend(next, budget.delta);
          expect(live.open(next, budget)).toBe(projected); // open reuses the projection
        }
      }
      const rebuilt = PrivacyLedger.fromJSON(live.toJSON(), options);
      expect(rebuilt.size).toBe(95);
      const a = live.spent(1e-5);
      const b = rebuilt.spent(1e-5);
      if (accountant === "rdp") expect(a).toBeCloseTo(b, 9);
      // 95 one-round convolutions vs three runs: each adds its own (pessimistic) round-off pad to ω_∞
      else expect(Math.abs(a - b)).toBeLessThan(1e-5 * b);
    }
  });

  it("round-trips through JSON and rejects malformed states", () => {
    const ledger = new PrivacyLedger({
      population: "mnist",
      accountant: "pld",
      accountantOptions: { discretization: 1e-3 },
    });
    ledger.record(round(1));
    ledger.record(round(2, { mode: "local", noiseMultiplier: 0.9 }));
    const json = JSON.parse(JSON.stringify(ledger));
    const back = PrivacyLedger.fromJSON(json, { discretization: 1e-3 });
    expect(back.toJSON()).toEqual(ledger.toJSON());
    expect(back.spent(1e-5)).toBe(ledger.spent(1e-5));
    for (const bad of [
      null,
      { ...json, version: 2 },
      { ...json, accountant: "gdp" },
      { ...json, rounds: [{ ...json.rounds[0], sampleRate: 0 }] },
      { ...json, rounds: [{ ...json.rounds[0], openedAt: "yesterday" }] },
      { ...json, rounds: [json.rounds[0], json.rounds[0]] },
    ]) {
      expect(() => PrivacyLedger.fromJSON(bad)).toThrow(InvalidPrivacyParameterError);
    }
    expect(() => PrivacyLedger.fromJSON(null)).toThrow(expect.objectContaining({ reason: "invalid_state" }));
    expect(() => PrivacyLedger.fromJSON({ ...json, rounds: [json.rounds[0], json.rounds[0]] })).toThrow(
      expect.objectContaining({ reason: "duplicate_round" }),
    );
  });

  it("rejects bad rounds, budgets and options without changing state", () => {
    const ledger = new PrivacyLedger({ population: "p" });
    ledger.record(round(1));
    for (const bad of [
      round(1), // duplicate id
      round(2, { sampleRate: 1.5 }),
      round(3, { noiseMultiplier: 0 }),
      round(4, { mode: "secret" as never }),
      round(5, { roundId: "" }),
    ]) {
      expect(() => ledger.record(bad)).toThrow(InvalidPrivacyParameterError);
    }
    expect(() => ledger.record(round(1))).toThrow(expect.objectContaining({ reason: "duplicate_round" }));
    expect(() => ledger.record(round(2, { sampleRate: 1.5 }))).toThrow(
      expect.objectContaining({ reason: "invalid_parameter" }),
    );
    expect(() => ledger.assertCanOpen(round(6), { epsilon: -1, delta: 1e-5 })).toThrow(InvalidPrivacyParameterError);
    expect(() => ledger.assertCanOpen(round(6), { epsilon: 1, delta: 1 })).toThrow(InvalidPrivacyParameterError);
    expect(ledger.rounds).toHaveLength(1);
    expect(() => new PrivacyLedger({ population: "" })).toThrow(InvalidPrivacyParameterError);
    expect(() => new PrivacyLedger({ population: "p", accountant: "gdp" as never })).toThrow(
      InvalidPrivacyParameterError,
    );
  });
});
