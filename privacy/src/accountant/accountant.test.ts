import { describe, expect, it } from "vitest";
import { InvalidPrivacyParameterError, type Accountant, type AccountantMechanism } from "./accountant.ts";
import { gaussianEpsilon } from "../gaussian-mechanism/analytic-gaussian.ts";
import { computeRdp, DEFAULT_ORDERS, getPrivacySpent } from "./analysis/rdp.ts";
import { getNoiseMultiplier } from "./noise-multiplier.ts";
import { PldAccountant } from "./pld.ts";
import { RdpAccountant } from "./rdp.ts";
import { ACCOUNTANT_MECHANISMS, createAccountant } from "./registry.ts";

const fast = { rdp: {}, pld: { discretization: 1e-3 } } as const;
const make = (m: AccountantMechanism): Accountant => createAccountant(m, fast[m] as never);

// The shared suite every Accountant implementation must pass (STYLE.md rule 3).
describe.each(ACCOUNTANT_MECHANISMS)("Accountant contract: %s", (mechanism) => {
  it("starts empty at ε = 0 and merges identical consecutive steps (run-length history)", () => {
    const acc = make(mechanism);
    expect(acc.mechanism).toBe(mechanism);
    expect(acc.getEpsilon(1e-5)).toBe(0);
    acc.step({ noiseMultiplier: 1, sampleRate: 0.1 });
    acc.step({ noiseMultiplier: 1, sampleRate: 0.1 }, 4);
    acc.step({ noiseMultiplier: 2, sampleRate: 0.1 });
    acc.step({ noiseMultiplier: 1, sampleRate: 0.1 });
    expect(acc.history).toEqual([
      { noiseMultiplier: 1, sampleRate: 0.1, steps: 5 },
      { noiseMultiplier: 2, sampleRate: 0.1, steps: 1 },
      { noiseMultiplier: 1, sampleRate: 0.1, steps: 1 },
    ]);
    expect(acc.totalSteps).toBe(7);
  });

  it("step(p, n) equals n calls of step(p)", () => {
    const a = make(mechanism);
    const b = make(mechanism);
    a.step({ noiseMultiplier: 1.2, sampleRate: 0.05 }, 20);
    for (let i = 0; i < 20; i++) b.step({ noiseMultiplier: 1.2, sampleRate: 0.05 });
    expect(a.getEpsilon(1e-5)).toBe(b.getEpsilon(1e-5));
  });

  it("is monotone in z, q and T", () => {
    const eps = (z: number, q: number, t: number) => {
      const acc = make(mechanism);
      acc.step({ noiseMultiplier: z, sampleRate: q }, t);
      return acc.getEpsilon(1e-5);
    };
    expect(eps(0.8, 0.05, 50)).toBeGreaterThan(eps(1.2, 0.05, 50));
    expect(eps(1.2, 0.05, 50)).toBeGreaterThan(eps(2, 0.05, 50));
    expect(eps(1, 0.02, 50)).toBeLessThan(eps(1, 0.05, 50));
    expect(eps(1, 0.05, 50)).toBeLessThan(eps(1, 0.2, 50));
    expect(eps(1, 0.05, 10)).toBeLessThan(eps(1, 0.05, 50));
    expect(eps(1, 0.05, 50)).toBeLessThan(eps(1, 0.05, 200));
  });

  it("exports and re-imports its state; rejects invalid or foreign states without changing anything", () => {
    const acc = make(mechanism);
    acc.step({ noiseMultiplier: 1.1, sampleRate: 0.01 }, 100);
    acc.step({ noiseMultiplier: 0.9, sampleRate: 0.02 }, 3);
    const state = JSON.parse(JSON.stringify(acc.exportState()));
    const copy = make(mechanism);
    copy.loadState(state);
    expect(copy.history).toEqual(acc.history);
    expect(copy.getEpsilon(1e-5)).toBe(acc.getEpsilon(1e-5));
    const before = copy.history;
    const other = mechanism === "rdp" ? "pld" : "rdp";
    for (const bad of [
      null,
      { mechanism, history: [{ noiseMultiplier: -1, sampleRate: 0.1, steps: 1 }] },
      { mechanism, history: [{ noiseMultiplier: 1, sampleRate: 1.5, steps: 1 }] },
      { mechanism, history: [{ noiseMultiplier: 1, sampleRate: 0.1, steps: 1.5 }] },
      { mechanism: other, history: [] },
      { mechanism: "gdp", history: [] },
    ]) {
      expect(() => copy.loadState(bad)).toThrow(InvalidPrivacyParameterError);
      expect(() => copy.loadState(bad)).toThrow(expect.objectContaining({ reason: "invalid_state" }));
    }
    expect(copy.history).toEqual(before);
  });

  it("rejects bad steps and deltas with a RangeError (reason invalid_parameter) and records nothing", () => {
    const acc = make(mechanism);
    for (const [p, n] of [
      [{ noiseMultiplier: 1, sampleRate: 0 }, 1],
      [{ noiseMultiplier: 1, sampleRate: 1.01 }, 1],
      [{ noiseMultiplier: 0, sampleRate: 0.1 }, 1],
      [{ noiseMultiplier: Number.NaN, sampleRate: 0.1 }, 1],
      [{ noiseMultiplier: Number.POSITIVE_INFINITY, sampleRate: 0.1 }, 1],
      [{ noiseMultiplier: 1, sampleRate: 0.1 }, 0],
      [{ noiseMultiplier: 1, sampleRate: 0.1 }, 2.5],
      [{ noiseMultiplier: 1, sampleRate: 0.1 }, -3],
    ] as const) {
      const err = (() => {
        try {
          acc.step(p, n);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(InvalidPrivacyParameterError);
      expect(err).toBeInstanceOf(RangeError);
      expect((err as InvalidPrivacyParameterError).reason).toBe("invalid_parameter");
      expect(err).not.toHaveProperty("status");
    }
    expect(acc.history).toEqual([]);
    for (const d of [0, 1, -1, Number.NaN]) expect(() => acc.getEpsilon(d)).toThrow(InvalidPrivacyParameterError);
  });

  it("epsilonAfter(p, n) is the ε after step(p, n), records nothing, and a matching step reuses it", () => {
    const a = make(mechanism);
    const b = make(mechanism);
    for (const acc of [a, b]) {
      acc.step({ noiseMultiplier: 1.1, sampleRate: 0.02 }, 30);
      acc.step({ noiseMultiplier: 0.9, sampleRate: 0.05 }, 5);
      acc.getEpsilon(1e-5); // builds the caches
    }
    const projected = a.epsilonAfter({ noiseMultiplier: 1.3, sampleRate: 0.1 }, 7, 1e-5);
    expect(a.totalSteps).toBe(35);
    a.step({ noiseMultiplier: 1.3, sampleRate: 0.1 }, 7);
    expect(a.getEpsilon(1e-5)).toBe(projected);
    b.step({ noiseMultiplier: 1.3, sampleRate: 0.1 }, 7);
    expect(Math.abs(b.getEpsilon(1e-5) - projected)).toBeLessThan(1e-9 * projected);
    expect(make(mechanism).epsilonAfter({ noiseMultiplier: 1, sampleRate: 1 }, 1, 1e-5)).toBeCloseTo(
      (() => {
        const c = make(mechanism);
        c.step({ noiseMultiplier: 1, sampleRate: 1 });
        return c.getEpsilon(1e-5);
      })(),
      9,
    );
  });

  it("q = 1, one step: ε ≥ the exact analytic Gaussian ε and close to it", () => {
    const acc = make(mechanism);
    acc.step({ noiseMultiplier: 1.3, sampleRate: 1 });
    const exact = gaussianEpsilon(1e-5, 1.3);
    const eps = acc.getEpsilon(1e-5);
    expect(eps).toBeGreaterThanOrEqual(exact);
    expect(eps).toBeLessThan(exact * (mechanism === "pld" ? 1.001 : 1.3));
  });
});

describe("RdpAccountant", () => {
  it("opacus test_rdp_accountant: 2250 single steps at σ=1.5, q=0.04 → ε = 7.32911117143 at order 3.9", () => {
    const acc = new RdpAccountant();
    for (let i = 0; i < 2250; i++) acc.step({ noiseMultiplier: 1.5, sampleRate: 0.04 });
    expect(acc.history).toHaveLength(1);
    expect(acc.getEpsilon(1e-5)).toBeCloseTo(7.32911117143, 9);
    expect(acc.getPrivacySpent(1e-5).order).toBe(3.9);
  });

  it("classic conversion gives TF Privacy's ε ≈ 3.01 for the MNIST tutorial (Abadi et al. 2016 setting)", () => {
    const acc = new RdpAccountant({ conversion: "classic" });
    acc.step({ noiseMultiplier: 1.1, sampleRate: 256 / 60000 }, 14062);
    expect(acc.getEpsilon(1e-5)).toBeCloseTo(3.01, 2);
    expect(acc.getPrivacySpent(1e-5, "improved").epsilon).toBeCloseTo(2.6, 2);
  });

  it("heterogeneous composition equals the sum of the RDP curves", () => {
    const acc = new RdpAccountant();
    acc.step({ noiseMultiplier: 1, sampleRate: 0.01 }, 100);
    acc.step({ noiseMultiplier: 2, sampleRate: 0.1 }, 50);
    acc.step({ noiseMultiplier: 0.8, sampleRate: 1 }, 2);
    const sum = computeRdp(0.01, 1, 100).map((r, k) => r + computeRdp(0.1, 2, 50)[k]! + computeRdp(1, 0.8, 2)[k]!);
    const curve = acc.rdpCurve();
    curve.forEach((r, k) => expect(r).toBeCloseTo(sum[k]!, 10));
    expect(acc.getEpsilon(1e-5)).toBe(getPrivacySpent(DEFAULT_ORDERS, sum, 1e-5).epsilon);
  });

  it("rejects bad options", () => {
    expect(() => new RdpAccountant({ orders: [] })).toThrow(InvalidPrivacyParameterError);
    expect(() => new RdpAccountant({ orders: [1, 2] })).toThrow(InvalidPrivacyParameterError);
    expect(() => new RdpAccountant({ conversion: "fancy" as never })).toThrow(InvalidPrivacyParameterError);
  });
});

describe("PldAccountant", () => {
  it("is at most RDP for heterogeneous histories and caches until the next step", () => {
    const pld = new PldAccountant({ discretization: 5e-4 });
    const rdp = new RdpAccountant();
    for (const acc of [pld, rdp]) {
      acc.step({ noiseMultiplier: 1.1, sampleRate: 0.01 }, 300);
      acc.step({ noiseMultiplier: 0.9, sampleRate: 0.02 }, 100);
    }
    const e1 = pld.getEpsilon(1e-5);
    expect(e1).toBeLessThan(rdp.getEpsilon(1e-5));
    expect(pld.getEpsilon(1e-5)).toBe(e1);
    pld.step({ noiseMultiplier: 0.9, sampleRate: 0.02 });
    expect(pld.getEpsilon(1e-5)).toBeGreaterThan(e1);
  });

  it("dp_accounting's published δ: 1 + 2 steps of q = 0.2, z = 0.5 give δ(1) = 0.15594; of z = √3 give 0.126936", () => {
    for (const [q, z, want] of [
      [0.2, 0.5, 0.15594],
      [1, Math.sqrt(3), 0.126936],
    ] as const) {
      const acc = new PldAccountant();
      acc.step({ noiseMultiplier: z, sampleRate: q });
      acc.getEpsilon(0.5);
      acc.step({ noiseMultiplier: z, sampleRate: q }, 2);
      expect(Math.abs(acc.getDelta(1) - want)).toBeLessThan(1e-3);
      expect(acc.getDelta(1)).toBeGreaterThanOrEqual(want - 1e-5);
      expect(Math.abs(acc.getEpsilon(want) - 1)).toBeLessThan(1e-3);
    }
  });

  it("10,000 steps compose in one transform: ≤ RDP, and agree with 10 runs of 1,000 joined incrementally", () => {
    const one = new PldAccountant();
    one.step({ noiseMultiplier: 1.1, sampleRate: 0.01 }, 10_000);
    const runs = new PldAccountant();
    for (let i = 0; i < 10; i++) {
      runs.step({ noiseMultiplier: 1.1, sampleRate: 0.01 }, 1000);
      runs.getEpsilon(1e-5); // force the incremental path: each run joined onto the cached history
    }
    const rdp = new RdpAccountant();
    rdp.step({ noiseMultiplier: 1.1, sampleRate: 0.01 }, 10_000);
    const e = one.getEpsilon(1e-5);
    expect(e).toBeLessThan(rdp.getEpsilon(1e-5));
    expect(Math.abs(e - runs.getEpsilon(1e-5))).toBeLessThan(1e-3 * e);
    expect(e).toBeGreaterThan(5.19); // today's repeated-squaring value 5.1929…, baseline in bench/baseline
  });

  it("rejects bad options", () => {
    expect(() => new PldAccountant({ discretization: 0 })).toThrow(InvalidPrivacyParameterError);
    expect(() => new PldAccountant({ tailMass: 0.1 })).toThrow(InvalidPrivacyParameterError);
  });
});

describe("registry", () => {
  it("creates accountants by name and rejects unknown names", () => {
    expect(createAccountant("rdp")).toBeInstanceOf(RdpAccountant);
    expect(createAccountant("pld")).toBeInstanceOf(PldAccountant);
    expect(() => createAccountant("gdp" as never)).toThrow(/unknown accountant "gdp"/);
  });
});

describe("getNoiseMultiplier", () => {
  it("opacus test_get_noise_multiplier: ε=8, δ=1e-5, q=0.04, 90 epochs (2250 steps) → σ ≈ 1.416", () => {
    const r = getNoiseMultiplier({ targetEpsilon: 8, targetDelta: 1e-5, sampleRate: 0.04, steps: 2250 });
    expect(Math.abs(r.noiseMultiplier - 1.416)).toBeLessThan(0.01);
    expect(r.epsilon).toBeLessThanOrEqual(8);
    // returns the side that meets the target, within 0.01 of the threshold
    const acc = new RdpAccountant();
    acc.step({ noiseMultiplier: r.noiseMultiplier - 0.01, sampleRate: 0.04 }, 2250);
    expect(acc.getEpsilon(1e-5)).toBeGreaterThan(8);
  });

  it("works with the PLD accountant (smaller σ than RDP for the same target)", () => {
    const q = { targetEpsilon: 3, targetDelta: 1e-5, sampleRate: 0.05, steps: 200 };
    const rdp = getNoiseMultiplier(q);
    const pld = getNoiseMultiplier({ ...q, accountant: "pld", accountantOptions: { discretization: 1e-3 } });
    expect(pld.epsilon).toBeLessThanOrEqual(3);
    expect(pld.noiseMultiplier).toBeLessThanOrEqual(rdp.noiseMultiplier);
  });

  it("rejects bad targets and impossible budgets", () => {
    const base = { targetEpsilon: 1, targetDelta: 1e-5, sampleRate: 0.01, steps: 10 };
    expect(() => getNoiseMultiplier({ ...base, targetEpsilon: 0 })).toThrow(InvalidPrivacyParameterError);
    expect(() => getNoiseMultiplier({ ...base, targetDelta: 2 })).toThrow(InvalidPrivacyParameterError);
    expect(() => getNoiseMultiplier({ ...base, steps: 0 })).toThrow(InvalidPrivacyParameterError);
    expect(() => getNoiseMultiplier({ ...base, sampleRate: 0 })).toThrow(InvalidPrivacyParameterError);
    expect(() => getNoiseMultiplier({ ...base, targetEpsilon: 1e-9, sampleRate: 1, steps: 1_000_000 })).toThrow(
      /too low/,
    );
    expect(() => getNoiseMultiplier({ ...base, targetEpsilon: 1e-9, sampleRate: 1, steps: 1_000_000 })).toThrow(
      expect.objectContaining({ reason: "unreachable_target" }),
    );
  });
});
