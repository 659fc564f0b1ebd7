import { describe, expect, it } from "vitest";
import type { PopulationPrivacyStatus } from "@fedge/protocol";
import { epsilonSeries } from "./epsilon-series.ts";

function status(
  rounds: number,
  q: number,
  z: number,
  budget: PopulationPrivacyStatus["budget"],
): PopulationPrivacyStatus {
  return {
    model: "pop",
    accountant: "rdp",
    budget,
    epsilon_spent: null,
    epsilon_remaining: null,
    epsilon_against_edge: null,
    delta: budget?.delta ?? null,
    rounds: Array.from({ length: rounds }, (_, i) => ({
      round_id: `pop_${i + 1}`,
      sampling_rate: q,
      noise_multiplier: z,
      count_noise_std: null,
      distributed: null,
      privacy_mode: "central" as const,
      clip_rule: "fixed" as const,
      charged_at: "2026-12-01T00:00:00.000Z",
    })),
  };
}

describe("ε after each charged round", () => {
  it("ends at opacus's published ε for 2250 rounds at q = 0.04, z = 1.5 (δ = 1e-5), growing every round", () => {
    const series = epsilonSeries(status(2250, 0.04, 1.5, { epsilon: 10, delta: 1e-5 }));
    expect(series).toHaveLength(2250);
    expect(series[0]!.roundId).toBe("pop_1");
    // opacus accountants_test.py (RDP, improved conversion): ε = 7.32911117143.
    expect(series.at(-1)!.epsilon).toBeCloseTo(7.32911117143, 9);
    for (let i = 1; i < series.length; i++) expect(series[i]!.epsilon).toBeGreaterThanOrEqual(series[i - 1]!.epsilon);
    expect(series[1124]!.epsilon).toBeLessThan(series.at(-1)!.epsilon);
  });

  it("is empty without a budget (no δ to report ε at) and refuses a ledger round in mode none", () => {
    expect(epsilonSeries(status(3, 0.5, 1, null))).toEqual([]);
    const corrupt = status(1, 0.5, 1, { epsilon: 1, delta: 1e-5 });
    corrupt.rounds[0]!.privacy_mode = "none";
    expect(() => epsilonSeries(corrupt)).toThrow(RangeError);
  });
});
