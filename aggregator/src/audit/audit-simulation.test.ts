import { describe, expect, it } from "vitest";
import { createBackend } from "@fedge/gpu-node";
import { RdpAccountant } from "@fedge/privacy";
import { parsePopulationConfig } from "../config.ts";
import { runAuditSimulation } from "./audit-simulation.ts";

const backend = await createBackend({ prefer: "cpu" });

// 50 synthetic devices + 1,000 canaries (and 1,000 never inserted), 20,000 parameters, q = 0.2, 10 rounds, through
// `fedge simulate`'s round engine, the device pipeline (`privatizeUpdate`) and central mode's exact discrete Gaussian.
// Measured on the dev box: ε̂ ≈ 3.3–3.8 (95 % bootstrap upper end ≤ 5.1) against the RDP accountant's 5.75 at z = 1;
// ε̂ ≈ 34–39 with the noise off. About 10 s per run.
const CLIENTS = 50;
const CANARIES = 1000;
const Q = 0.2;
const run = (noiseMultiplier: number) =>
  runAuditSimulation({
    config: parsePopulationConfig({
      model: "audited",
      privacy: { mode: "central", noiseMultiplier, budget: { epsilon: 1e9, delta: 1e-5 } },
      samplingRate: Q,
      expectedClients: Q * (CLIENTS + CANARIES),
      clipping: { clipNorm: 1 },
      batchSize: 64,
    }),
    backend,
    clients: CLIENTS,
    rounds: 10,
    mode: "synthetic",
    params: 20_000,
    canaries: CANARIES,
    resamples: 300,
    log: () => {},
  });

describe("one-shot audit of an in-process run (Andrew et al. 2024)", () => {
  it("at the accountant's ε, ε̂ stays at or below it", async () => {
    const r = await run(1);
    expect(r.simulation.roundsRun).toBe(10);
    const claimed = r.epsilon!;
    expect(claimed).toBeGreaterThan(5);
    expect(r.estimate.delta).toBe(1e-5);
    expect(r.estimate.epsilon).toBeLessThanOrEqual(claimed);
    expect(r.estimate.interval.lower).toBeLessThanOrEqual(r.estimate.epsilon);
    expect(r.estimate.interval.upper).toBeGreaterThanOrEqual(r.estimate.epsilon);
    // the canaries did leave a trace: the inserted ones lean towards the delta, the held-out ones do not
    const se = r.estimate.unobserved.std / Math.sqrt(CANARIES);
    expect(r.estimate.observed.mean - r.estimate.unobserved.mean).toBeGreaterThan(10 * se);
    expect(Math.abs(r.estimate.unobserved.mean)).toBeLessThan(5 * se);
  }, 60_000);

  it("with the noise off, ε̂ is far above that claim: the audit can fail", async () => {
    // z = 0.001 (a DP config refuses z = 0): what an aggregator that claimed z = 1 but skipped its noise would release
    const claim = new RdpAccountant();
    claim.step({ noiseMultiplier: 1, sampleRate: Q }, 10);
    const claimed = claim.getEpsilon(1e-5);
    const r = await run(0.001);
    expect(r.estimate.interval.lower).toBeGreaterThan(3 * claimed);
  }, 60_000);
});
