import { describe, expect, it } from "vitest";
import { createCpuBackend } from "@fedge/gpu-node";
import { OpenRoundRequest, type PopulationPrivacyStatus } from "@fedge/protocol";
import { PrivacyBudgetExceededError, createAccountant } from "@fedge/privacy";
import { parsePopulationConfig, type PopulationConfigInput } from "../config.ts";
import { RoundEngine } from "../round.ts";
import {
  ChargeMismatchError,
  assertChargeMatches,
  assertEdgeBudgetAdmits,
  chargeOf,
  pinSavedMechanism,
  type RoundCharge,
} from "./charge.ts";
import { openRoundRequest } from "./round-task.ts";

const initialModel = {
  layers: [
    {
      inFeatures: 2,
      outFeatures: 2,
      weight: new Float32Array(4),
      bias: new Float32Array(2),
      activation: "none" as const,
    },
  ],
};

const dp: PopulationConfigInput = {
  model: "m",
  privacy: { mode: "central", noiseMultiplier: 1.2, budget: { epsilon: 10, delta: 1e-5 } },
  samplingRate: 0.5,
  expectedClients: 40,
  clipping: { clipNorm: 1, adaptive: { countNoiseStd: 3 } },
};

async function engineFor(input: PopulationConfigInput): Promise<RoundEngine> {
  return RoundEngine.create({ config: parsePopulationConfig(input), backend: createCpuBackend(), initialModel });
}

function edgeLedger(rounds: RoundCharge[], budget: { epsilon: number; delta: number } | null): PopulationPrivacyStatus {
  return {
    model: "m",
    accountant: "rdp",
    budget,
    epsilon_spent: null,
    epsilon_remaining: null,
    epsilon_against_edge: null,
    delta: budget?.delta ?? null,
    rounds: rounds.map((r, i) => ({
      ...r,
      round_id: `m_${i + 1}`,
      charged_at: "2026-11-01T00:00:00.000Z",
      distributed: null,
    })),
  };
}

describe("the charge the aggregator sends and checks", () => {
  it("is (q, z, σ_b, mode, clip rule) of what it aggregates with, sent as the open-round mechanism", async () => {
    const engine = await engineFor(dp);
    try {
      const charge = chargeOf(engine)!;
      expect(charge).toEqual({
        privacy_mode: "central",
        sampling_rate: 0.5,
        noise_multiplier: 1.2,
        clip_rule: "adaptive",
        count_noise_std: 3,
      });
      const instr = engine.strategy.configureFit({ round: 1, clip: engine.checkpoint.clip });
      const body = openRoundRequest(engine, instr, { modelVersion: 1, maxReports: 10, minReports: 3 });
      expect(body).toMatchObject({
        privacy_mode: "central",
        min_reports: 1,
        mechanism: { noise_multiplier: 1.2, clip_rule: "adaptive", count_noise_std: 3 },
      });
      expect(body).not.toHaveProperty("max_reports");
      expect(OpenRoundRequest.safeParse(body).success).toBe(true);
    } finally {
      engine.dispose();
    }
    const none = await engineFor({ model: "m", privacy: { mode: "none" }, samplingRate: 1, expectedClients: 2 });
    try {
      expect(chargeOf(none)).toBeNull();
      const instr = none.strategy.configureFit({ round: 1, clip: none.checkpoint.clip });
      const body = openRoundRequest(none, instr, { modelVersion: 1, maxReports: 10 });
      expect(body).toMatchObject({ privacy_mode: "none", max_reports: 10 });
      expect(body).not.toHaveProperty("mechanism");
      expect(OpenRoundRequest.safeParse(body).success).toBe(true);
    } finally {
      none.dispose();
    }
  });

  const charge: RoundCharge = {
    privacy_mode: "central",
    sampling_rate: 1,
    noise_multiplier: 1,
    clip_rule: "fixed",
    count_noise_std: null,
  };
  const eps = (steps: number) => {
    const acc = createAccountant("rdp");
    acc.step({ noiseMultiplier: 1, sampleRate: 1 }, steps);
    return acc.getEpsilon(1e-5);
  };

  it("a round the edge's budget cannot take is refused from the edge's ledger, whatever the local one says", () => {
    const budget = { epsilon: (eps(1) + eps(2)) / 2, delta: 1e-5 };
    expect(() => assertEdgeBudgetAdmits(edgeLedger([], budget), charge, "m_1", "2026-11-01T00:00:00Z")).not.toThrow();
    expect(() => assertEdgeBudgetAdmits(edgeLedger([charge], budget), charge, "m_2", "2026-11-01T00:00:00Z")).toThrow(
      PrivacyBudgetExceededError,
    );
    expect(() => assertEdgeBudgetAdmits(edgeLedger([], null), charge, "m_1", "2026-11-01T00:00:00Z")).toThrow(
      /no privacy budget/,
    );
    expect(() => assertEdgeBudgetAdmits(edgeLedger([], budget), null, "m_1", "2026-11-01T00:00:00Z")).toThrow(
      /unbounded ε/,
    );
    expect(() => assertEdgeBudgetAdmits(edgeLedger([], null), null, "m_1", "2026-11-01T00:00:00Z")).not.toThrow();
  });

  it("aggregation waits for the edge's record to match exactly", () => {
    const ledger = edgeLedger([charge], { epsilon: 10, delta: 1e-5 });
    expect(() => assertChargeMatches(ledger, charge, "m_1")).not.toThrow();
    for (const other of [
      { ...charge, noise_multiplier: 2 },
      { ...charge, sampling_rate: 0.5 },
      { ...charge, clip_rule: "adaptive" as const, count_noise_std: 3 },
      null,
    ]) {
      const err = (() => {
        try {
          assertChargeMatches(ledger, other, "m_1");
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(ChargeMismatchError);
      expect(err).toMatchObject({ name: "ChargeMismatchError", reason: "charge_mismatch" });
    }
    expect(() => assertChargeMatches(ledger, charge, "m_2")).toThrow(ChargeMismatchError);
  });

  it("on resume the saved mechanism wins over flags; the rest of the config is taken as given", () => {
    const saved = parsePopulationConfig(dp);
    const given = parsePopulationConfig({
      ...dp,
      privacy: { ...dp.privacy, noiseMultiplier: 3 },
      samplingRate: 0.9,
      client: { learningRate: 0.7 },
    });
    const lines: string[] = [];
    const pinned = pinSavedMechanism(given, saved as unknown as Record<string, unknown>, (l) => lines.push(l));
    expect(pinned.privacy.noiseMultiplier).toBe(1.2);
    expect(pinned.samplingRate).toBe(0.5);
    expect(pinned.client.learningRate).toBe(0.7);
    expect(lines.join("\n")).toMatch(/keeping the saved privacy .*"noiseMultiplier":1\.2/);
    expect(lines.join("\n")).toMatch(/keeping the saved samplingRate 0\.5/);
  });
});
