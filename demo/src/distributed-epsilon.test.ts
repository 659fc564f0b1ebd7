import { describe, expect, it } from "vitest";
import { PrivacyLedger, planDistributedDiscreteGaussian } from "@fedge/privacy";
import { distributedEpsilonLines } from "./distributed-epsilon.ts";

describe("the distributed run's two ε", () => {
  it("states the ledger's ε and the ε against the edge of the same rounds, each with whom it protects against", () => {
    // the demo's distributed noise at z = 5.12: 1,000 devices, q = 0.2, n_min = 160, d' = 8,192, C = 0.1, 10 rounds
    const plan = planDistributedDiscreteGaussian({
      bits: 20,
      length: 5000,
      clipNorm: 0.1,
      noiseMultiplier: 5.12,
      expectedClients: 200,
      minClients: 160,
      maxClients: 400,
    });
    const ledger = new PrivacyLedger({ population: "mnist" });
    for (let i = 1; i <= 10; i++) {
      ledger.record({
        roundId: `r${i}`,
        sampleRate: 0.2,
        noiseMultiplier: 5.12,
        mode: "distributed",
        openedAt: "2026-12-07T05:00:00Z",
        distributed: plan.noiseShares,
      });
    }
    const epsilon = ledger.spent(1e-5);
    const epsilonAgainstEdge = ledger.spentAgainstEdge(1e-5);
    expect(epsilon).toBeCloseTo(2.519, 3);
    expect(epsilonAgainstEdge).toBeCloseTo(3.105, 3);
    const [line] = distributedEpsilonLines({ epsilon, epsilonAgainstEdge, delta: 1e-5, cohort: "sampled" });
    expect(line).toContain("(a device and its noise share in or out of each sum, amplified");
    // the default, a checked-in cohort: the device's share is in both sums
    expect(distributedEpsilonLines({ epsilon, epsilonAgainstEdge, delta: 1e-5 })[0]).toContain(
      "(a device's update in or out of each sum, its noise share in both since every checked-in device adds one, amplified",
    );
    expect(line).toContain("δ = 1e-5");
    expect(line).toContain("**ε = 2.519 against whoever sees only the released models**");
    expect(line).toContain("**ε = 3.105 against the edge itself**");
    expect(distributedEpsilonLines({ epsilon, epsilonAgainstEdge: null, delta: 1e-5, cohort: "sampled" })[0]).toContain(
      "**no bound (a round let the edge see a clipped update) against the edge itself**",
    );
  });
});
