import { describe, expect, it } from "vitest";
import { InvalidPrivacyParameterError } from "./accountant.ts";
import { distributedSubsampledRdp } from "./analysis/distributed-discrete-gaussian.ts";
import { getPrivacySpent } from "./analysis/rdp.ts";
import { PldAccountant } from "./pld.ts";
import { RdpAccountant } from "./rdp.ts";
import { PrivacyLedger, distributedSharesOf, type LedgerRound } from "../ledger.ts";
import { distributedNoiseOf, planDistributedDiscreteGaussian } from "../distributed/plan.ts";
import { distributedEpsilon, getDistributedNoiseMultiplier } from "../distributed/noise-multiplier.ts";

const plan = planDistributedDiscreteGaussian({
  bits: 16,
  length: 7850,
  clipNorm: 1,
  noiseMultiplier: 1.1,
  expectedClients: 100,
  minClients: 80,
});

describe("distributed steps in the accountant and the ledger", () => {
  it("the RDP accountant charges the shares' curve: an independent recomputation over the same orders agrees", () => {
    const acc = new RdpAccountant();
    acc.step({ noiseMultiplier: 1.1, sampleRate: 0.02, distributed: plan.noiseShares }, 200);
    const curve = distributedSubsampledRdp(0.02, plan.noiseShares, acc.orders).map((v) => 200 * v);
    expect(acc.getEpsilon(1e-5)).toBeCloseTo(getPrivacySpent(acc.orders, curve, 1e-5).epsilon, 10);
    expect(acc.history).toEqual([
      { noiseMultiplier: 1.1, sampleRate: 0.02, steps: 200, distributed: plan.noiseShares },
    ]);
  });

  it("costs more than central mode at the same z: fewer shares counted, rounding, Zhu–Wang's general subsampling", () => {
    const central = new RdpAccountant();
    central.step({ noiseMultiplier: 1.1, sampleRate: 0.02 }, 200);
    const distributed = new RdpAccountant();
    distributed.step({ noiseMultiplier: 1.1, sampleRate: 0.02, distributed: plan.noiseShares }, 200);
    expect(distributed.getEpsilon(1e-5)).toBeGreaterThan(central.getEpsilon(1e-5));
    // With every expected share counted and q = 1 (no subsampling), τ ≈ 0 here: the Gaussian's ε up to the rounding.
    const all = { ...plan.noiseShares, clients: 100 };
    const full = new RdpAccountant();
    full.step({ noiseMultiplier: 1.1, sampleRate: 1, distributed: all }, 10);
    const gauss = new RdpAccountant();
    gauss.step({ noiseMultiplier: 1.1 / plan.sensitivityInflation, sampleRate: 1 }, 10);
    expect(full.getEpsilon(1e-5)).toBeCloseTo(gauss.getEpsilon(1e-5), 2);
  });

  it("merges only identical steps, exports and reloads them, and refuses bad shares", () => {
    const acc = new RdpAccountant();
    const step = { noiseMultiplier: 1.1, sampleRate: 0.02, distributed: plan.noiseShares };
    acc.step(step, 3);
    acc.step({ ...step, distributed: { ...plan.noiseShares } }, 2);
    acc.step({ ...step, distributed: { ...plan.noiseShares, clients: 78 } });
    acc.step({ noiseMultiplier: 1.1, sampleRate: 0.02 });
    expect(acc.history.map((e) => e.steps)).toEqual([5, 1, 1]);
    const back = new RdpAccountant();
    back.loadState(JSON.parse(JSON.stringify(acc.exportState())));
    expect(back.getEpsilon(1e-5)).toBe(acc.getEpsilon(1e-5));
    expect(() => acc.step({ ...step, distributed: { ...plan.noiseShares, localVariance: 0.1 } })).toThrow(
      InvalidPrivacyParameterError,
    );
    expect(() => acc.step({ ...step, distributed: { ...plan.noiseShares, sensitivityBound: 2.5 } })).toThrow(
      InvalidPrivacyParameterError,
    );
    expect(acc.totalSteps).toBe(7);
  });

  it("the PLD accountant refuses distributed steps instead of mis-charging them", () => {
    const pld = new PldAccountant();
    const step = { noiseMultiplier: 1.1, sampleRate: 0.02, distributed: plan.noiseShares };
    expect(() => pld.step(step)).toThrow(/rdp accountant/);
    expect(() => pld.epsilonAfter(step, 1, 1e-5)).toThrow(/rdp accountant/);
    expect(pld.totalSteps).toBe(0);
  });

  it("the ledger charges a distributed round its shares, and requires them in that mode only", () => {
    const base: LedgerRound = {
      roundId: "d1",
      sampleRate: 0.02,
      noiseMultiplier: 1.1,
      mode: "distributed",
      openedAt: "2026-12-07T05:00:00Z",
      distributed: plan.noiseShares,
    };
    const ledger = new PrivacyLedger({ population: "mnist" });
    const spent = ledger.open(base, { epsilon: 10, delta: 1e-5 });
    const acc = new RdpAccountant();
    acc.step({ noiseMultiplier: 1.1, sampleRate: 0.02, distributed: plan.noiseShares });
    expect(spent).toBe(acc.getEpsilon(1e-5));
    const { distributed: _shares, ...withoutShares } = base;
    expect(() => ledger.open({ ...withoutShares, roundId: "d2" }, { epsilon: 10, delta: 1e-5 })).toThrow(/distributed/);
    expect(() => ledger.open({ ...base, roundId: "c1", mode: "central" }, { epsilon: 10, delta: 1e-5 })).toThrow(
      /distributed/,
    );
    expect(ledger.size).toBe(1);
    const back = PrivacyLedger.fromJSON(JSON.parse(JSON.stringify(ledger)));
    expect(back.spent(1e-5)).toBe(spent);
    const pldLedger = new PrivacyLedger({ population: "mnist", accountant: "pld" });
    expect(() => pldLedger.open(base, { epsilon: 10, delta: 1e-5 })).toThrow(/rdp accountant/);
    expect(pldLedger.size).toBe(0);
  });

  it("a round released at n_min inputs is charged n_min − 1 shares, never the removed device's own", () => {
    const wire = distributedNoiseOf(plan); // noise_shares 80: the release threshold
    const ledger = new PrivacyLedger({ population: "mnist" });
    ledger.record({
      roundId: "d1",
      sampleRate: 0.02,
      noiseMultiplier: 1.1,
      mode: "distributed",
      openedAt: "2026-12-07T05:00:00Z",
      distributed: distributedSharesOf(wire),
    });
    const charged = (clients: number) => {
      const acc = new RdpAccountant();
      acc.step({ noiseMultiplier: 1.1, sampleRate: 0.02, distributed: { ...plan.noiseShares, clients } });
      return acc.getEpsilon(1e-5);
    };
    expect(ledger.spent(1e-5)).toBe(charged(79));
    expect(ledger.spent(1e-5)).toBeGreaterThan(charged(80));
  });

  it("the demo's settings: ε before and after (1,000 devices, q = 0.2, 10 rounds, b = 20, C = 0.1, δ = 10⁻⁵)", () => {
    // n_expected = 200, n_min = ⌈0.8·200⌉ = 160, n_max = 400, d' = 8,192 (demo/src/setting.ts, docs/PRIVACY.md)
    const demo = { bits: 20, length: 5000, clipNorm: 0.1, expectedClients: 200, minClients: 160, maxClients: 400 };
    const at = planDistributedDiscreteGaussian({ ...demo, noiseMultiplier: 5.12 });
    const before = new RdpAccountant();
    before.step({ noiseMultiplier: 5.12, sampleRate: 0.2, distributed: { ...at.noiseShares, clients: 160 } }, 10);
    const after = distributedEpsilon(at, 0.2, 10, 1e-5);
    expect(at.noiseShares.clients).toBe(159);
    expect(before.getEpsilon(1e-5)).toBeCloseTo(0.9991, 4);
    expect(after).toBeCloseTo(1.0029, 4);
    // the z that meets ε = 1 moves from the 5.12 the demo reported to 5.13
    const z = getDistributedNoiseMultiplier({
      targetEpsilon: 1,
      targetDelta: 1e-5,
      sampleRate: 0.2,
      steps: 10,
      plan: demo,
    });
    expect(z.noiseMultiplier).toBeCloseTo(5.133, 3);
    expect(z.epsilon).toBeLessThanOrEqual(1);
  });

  it("a colluding fraction f raises the z (and each share) that meets the same ε: the honest shares alone meet it", () => {
    const demo = { bits: 20, length: 5000, clipNorm: 0.1, expectedClients: 200, minClients: 160, maxClients: 400 };
    const query = { targetEpsilon: 1, targetDelta: 1e-5, sampleRate: 0.2, steps: 10 };
    const honest = getDistributedNoiseMultiplier({ ...query, plan: demo });
    const colluding = getDistributedNoiseMultiplier({ ...query, plan: { ...demo, corruptFraction: 0.2 } });
    expect(colluding.plan.guaranteedShares).toBe(160 - 1 - 80);
    expect(colluding.noiseMultiplier).toBeGreaterThan(honest.noiseMultiplier * 1.2);
    const perShare = (p: typeof honest.plan) => p.localVariance / p.scale ** 2; // in units of the update, squared
    expect(perShare(colluding.plan)).toBeGreaterThan(perShare(honest.plan) * 1.9);
    // the ε of the 79 honest shares, recomputed from the wire the edge charges, meets the target
    const acc = new RdpAccountant();
    acc.step(
      { noiseMultiplier: 1, sampleRate: 0.2, distributed: distributedSharesOf(distributedNoiseOf(colluding.plan)) },
      10,
    );
    expect(acc.getEpsilon(1e-5)).toBe(colluding.epsilon);
    expect(colluding.epsilon).toBeLessThanOrEqual(1);
  });
});
