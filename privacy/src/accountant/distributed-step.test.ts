import { describe, expect, it } from "vitest";
import { InvalidPrivacyParameterError } from "./accountant.ts";
import { distributedRdp, distributedSubsampledRdp } from "./analysis/distributed-discrete-gaussian.ts";
import { poissonSubsampledRdp } from "./analysis/poisson-subsampled-rdp.ts";
import { getPrivacySpent } from "./analysis/rdp.ts";
import { getNoiseMultiplier } from "./noise-multiplier.ts";
import { PldAccountant } from "./pld.ts";
import { RdpAccountant } from "./rdp.ts";
import { PrivacyLedger, distributedSharesOf, type LedgerRound } from "../ledger.ts";
import { distributedNoiseOf, planDistributedDiscreteGaussian } from "../distributed/plan.ts";
import {
  distributedEpsilon,
  distributedEpsilonFloor,
  getDistributedNoiseMultiplier,
} from "../distributed/noise-multiplier.ts";

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
    // Zero-out with every expected share present and q = 1 (no subsampling), τ ≈ 0 here: the Gaussian's ε up to the
    // rounding (the device's own share and 99 others).
    const all = { ...plan.noiseShares, clients: 99, adjacency: "zero-out" as const };
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
    expect(at.noiseShares.clients).toBe(159);
    // before: the mean shift of 159 shares only (what the ledger charged until the variance term was added)
    const orders = new RdpAccountant().orders;
    const meanShiftOnly = poissonSubsampledRdp(0.2, orders, (a) => distributedRdp(at.noiseShares, a));
    const before = getPrivacySpent(
      orders,
      meanShiftOnly.map((v) => 10 * v),
      1e-5,
    ).epsilon;
    const after = distributedEpsilon(at, 0.2, 10, 1e-5);
    expect(before).toBeCloseTo(1.0029, 4);
    expect(after).toBeCloseTo(2.5187, 4);
    // the device's share leaving the sum costs more than the mean shift at this d' and g: the floor alone is 2.16
    expect(distributedEpsilonFloor(8192, 159, 0.2, 10, 1e-5)).toBeCloseTo(2.1573, 4);
    // against the edge (q = 1, zero-out, the device's own share in both sums): 3.11
    const edge = new RdpAccountant();
    edge.step({ noiseMultiplier: 5.12, sampleRate: 1, distributed: { ...at.noiseShares, adjacency: "zero-out" } }, 10);
    expect(edge.getEpsilon(1e-5)).toBeCloseTo(3.1053, 4);
    // so no z meets ε = 1 here: the error says which of n_min or d' must change, and by how much
    const query = { targetEpsilon: 1, targetDelta: 1e-5, sampleRate: 0.2, steps: 10, plan: demo };
    expect(() => getDistributedNoiseMultiplier(query)).toThrow(InvalidPrivacyParameterError);
    expect(() => getDistributedNoiseMultiplier(query)).toThrow(
      /alone costs ε=2\.157 whatever z; raise minClients \(n_min\) from 160 to at least 297 .*or shrink the update to d' <= 2048/,
    );
    // the remedies are right: n_min = 297 and d' = 2,048 each bring the floor under 1, one share or one halving less does not
    expect(distributedEpsilonFloor(8192, 296, 0.2, 10, 1e-5)).toBeLessThanOrEqual(1);
    expect(distributedEpsilonFloor(8192, 295, 0.2, 10, 1e-5)).toBeGreaterThan(1);
    expect(distributedEpsilonFloor(2048, 159, 0.2, 10, 1e-5)).toBeLessThanOrEqual(1);
    expect(distributedEpsilonFloor(4096, 159, 0.2, 10, 1e-5)).toBeGreaterThan(1);
    // with 400 expected and 320 released inputs a z exists, and its ε is the accountant's
    const bigger = getDistributedNoiseMultiplier({
      ...query,
      plan: { ...demo, expectedClients: 400, minClients: 320, maxClients: 800 },
    });
    expect(bigger.epsilon).toBeLessThanOrEqual(1);
    expect(distributedEpsilon(bigger.plan, 0.2, 10, 1e-5)).toBe(bigger.epsilon);
    expect(
      distributedEpsilon(
        planDistributedDiscreteGaussian({ ...bigger.plan, noiseMultiplier: bigger.noiseMultiplier - 0.02 }),
        0.2,
        10,
        1e-5,
      ),
    ).toBeGreaterThan(1);
  });

  it("the demo's settings with a checked-in cohort: no floor, so the solver meets ε = 1 at central's own q", () => {
    // the same 1,000 devices at q = 0.2: every one that checks in adds a share (n_expected = 1,000 check-ins, a sum
    // released from n_min = 800 inputs), so the add/remove floor of 2.16 above is gone
    const covered = {
      bits: 20,
      length: 5000,
      clipNorm: 0.1,
      expectedClients: 1000,
      minClients: 800,
      maxClients: 2000,
      cohort: "checked-in" as const,
    };
    const query = { targetEpsilon: 1, targetDelta: 1e-5, sampleRate: 0.2, steps: 10 };
    const solved = getDistributedNoiseMultiplier({ ...query, plan: covered });
    expect(solved.plan.cohort).toBe("checked-in");
    expect(solved.epsilon).toBeLessThanOrEqual(1);
    expect(distributedEpsilon(solved.plan, 0.2, 10, 1e-5)).toBe(solved.epsilon);
    const less = planDistributedDiscreteGaussian({ ...covered, noiseMultiplier: solved.noiseMultiplier - 0.02 });
    expect(distributedEpsilon(less, 0.2, 10, 1e-5)).toBeGreaterThan(1);
    // never below central's z: the charge counts n_min of n_expected shares and Zhu & Wang's bound is not below
    // Mironov's exact sampled Gaussian; the same shares as a sampled cohort cannot reach ε = 1 at all
    const central = getNoiseMultiplier({ ...query, sampleRate: 0.2, accountant: "rdp" }).noiseMultiplier;
    expect(solved.noiseMultiplier).toBeGreaterThan(central * Math.sqrt(1000 / 800));
    // the floor belongs to the sampled cohort: 200 shares, 160 released, refused as sampled, solved as checked-in
    const few = { ...covered, expectedClients: 200, minClients: 160, maxClients: 400 };
    expect(() => getDistributedNoiseMultiplier({ ...query, plan: { ...few, cohort: "sampled" } })).toThrow(
      /whatever z/,
    );
    const fewCovered = getDistributedNoiseMultiplier({ ...query, plan: few });
    expect(fewCovered.epsilon).toBeLessThanOrEqual(1);
    expect(fewCovered.noiseMultiplier).toBeGreaterThan(solved.noiseMultiplier * 0.99); // 160 of 200 ≈ 800 of 1,000
  });

  it("a colluding fraction f raises the z (and each share) that meets the same ε: the honest shares alone meet it", () => {
    // a 1,000-parameter model (d' = 1,024) at ε = 2: at d' = 8,192 the variance term alone exceeds it (above)
    const demo = { bits: 20, length: 1000, clipNorm: 0.1, expectedClients: 200, minClients: 160, maxClients: 400 };
    const query = { targetEpsilon: 2, targetDelta: 1e-5, sampleRate: 0.2, steps: 10 };
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
    expect(colluding.epsilon).toBeLessThanOrEqual(2);
  });

  it("against the edge: no amplification, zero-out with the device's own share (g + 1), and no bound after a central round", () => {
    const round = (roundId: string, mode: LedgerRound["mode"] = "distributed"): LedgerRound => ({
      roundId,
      sampleRate: 0.2,
      noiseMultiplier: 1.1,
      mode,
      openedAt: "2026-12-07T05:00:00Z",
      ...(mode === "distributed" ? { distributed: plan.noiseShares } : {}),
    });
    const ledger = new PrivacyLedger({ population: "mnist" });
    for (const id of ["d1", "d2", "d3"]) ledger.record(round(id));
    // the same three rounds at q = 1, each the RDP of g + 1 = 80 shares shifted by √B (KLS21 Prop. 14)
    const orders = new RdpAccountant().orders;
    const curve = orders.map((a) => 3 * distributedRdp({ ...plan.noiseShares, clients: 80 }, a));
    expect(ledger.spentAgainstEdge(1e-5)).toBeCloseTo(getPrivacySpent(orders, curve, 1e-5).epsilon, 10);
    expect(ledger.spentAgainstEdge(1e-5)).toBeGreaterThan(ledger.spent(1e-5)); // q = 0.02 amplifies the other ε only
    ledger.record(round("l1", "local"));
    const local = new RdpAccountant();
    local.step({ noiseMultiplier: 1.1, sampleRate: 1, distributed: { ...plan.noiseShares, adjacency: "zero-out" } }, 3);
    local.step({ noiseMultiplier: 0.55, sampleRate: 1 });
    expect(ledger.spentAgainstEdge(1e-5)).toBeCloseTo(local.getEpsilon(1e-5), 10);
    ledger.record(round("c1", "central")); // the edge stores the clipped update of a central round
    expect(ledger.spentAgainstEdge(1e-5)).toBe(Number.POSITIVE_INFINITY);
    expect(Number.isFinite(ledger.spent(1e-5))).toBe(true);
    expect(PrivacyLedger.edgeStepOf(round("x"))).toEqual({
      noiseMultiplier: 1.1,
      sampleRate: 1,
      distributed: { ...plan.noiseShares, adjacency: "zero-out" },
    });
  });

  it("a checked-in cohort: the wire's cohort reaches the ledger, which charges zero-out with amplification", () => {
    // 1,000 checked in, at least 800 inputs released, q = 0.1: every input carries a share whether sampled or not.
    const covered = planDistributedDiscreteGaussian({
      bits: 20,
      length: 7850,
      clipNorm: 1,
      noiseMultiplier: 1.1,
      expectedClients: 1000,
      minClients: 800,
      cohort: "checked-in",
    });
    const wire = distributedNoiseOf(covered);
    expect(wire.cohort).toBe("checked-in");
    expect(distributedNoiseOf(plan)).not.toHaveProperty("cohort"); // sampled plans keep their wire form
    const shares = distributedSharesOf(wire);
    expect(shares).toEqual({ ...covered.noiseShares, cohort: "checked-in" });
    const ledger = new PrivacyLedger({ population: "mnist" });
    const round = (roundId: string): LedgerRound => ({
      roundId,
      sampleRate: 0.1,
      noiseMultiplier: 1.1,
      mode: "distributed",
      openedAt: "2026-12-07T05:00:00Z",
      distributed: shares,
    });
    for (const id of ["r1", "r2", "r3", "r4", "r5"]) ledger.record(round(id));
    const orders = new RdpAccountant().orders;
    const zeroOut = { ...covered.noiseShares, clients: covered.guaranteedShares + 1 };
    const curve = orders.map((a) => 5 * poissonSubsampledRdp(0.1, [a], (o) => distributedRdp(zeroOut, o))[0]!);
    expect(ledger.spent(1e-5)).toBeCloseTo(getPrivacySpent(orders, curve, 1e-5).epsilon, 10);
    // the same shares charged as a sampled cohort (add/remove, the variance term) cost more
    const sampled = new PrivacyLedger({ population: "mnist" });
    for (const id of ["r1", "r2", "r3", "r4", "r5"]) {
      sampled.record({ ...round(id), distributed: { ...shares, cohort: undefined } });
    }
    expect(sampled.spent(1e-5)).toBeGreaterThan(ledger.spent(1e-5));
    // against the edge, which flips the coins: no amplification
    expect(ledger.spentAgainstEdge(1e-5)).toBeGreaterThan(ledger.spent(1e-5));
    expect(() =>
      new RdpAccountant().step({
        noiseMultiplier: 1.1,
        sampleRate: 0.1,
        distributed: { ...shares, adjacency: "add-remove" },
      }),
    ).toThrow(InvalidPrivacyParameterError);
    expect(() =>
      new RdpAccountant().step({
        noiseMultiplier: 1.1,
        sampleRate: 0.1,
        distributed: { ...plan.noiseShares, adjacency: "zero-out" },
      }),
    ).toThrow(InvalidPrivacyParameterError);
  });
});
