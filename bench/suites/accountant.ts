/**
 * @module
 * Benchmark: privacy accounting of 10,000 heterogeneous steps.
 * - `rdp-10k-heterogeneous`: 10,000 steps, every one with its own (q, z) (q ∈ [0.005, 0.015], z ∈ [0.9, 1.3]),
 *   ε at δ = 1e-5. Baseline: the same 10,000 steps homogeneous (one run-length entry) with the RDP accountant.
 * - `pld-10k-heterogeneous`: 10,000 steps as 100 distinct (q, z) settings × 100 steps each (PLD composes each run by
 *   repeated squaring; fully distinct steps would need 10,000 FFT convolutions). Baseline: RDP on the same schedule.
 */
import { PldAccountant, RdpAccountant, type Accountant } from "@fedge/privacy";
import { measure, type BenchMeasure } from "../types.ts";

function time(fn: () => void, repeats: number): number {
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

function schedule(acc: Accountant, distinct: number, perSetting: number): void {
  for (let i = 0; i < distinct; i++) {
    const q = 0.005 + (0.01 * i) / distinct;
    const z = 0.9 + (0.4 * ((i * 7919) % distinct)) / distinct;
    acc.step({ noiseMultiplier: z, sampleRate: q }, perSetting);
  }
}

export default async function run(): Promise<BenchMeasure[]> {
  const delta = 1e-5;
  const rdpHetero = time(() => {
    const acc = new RdpAccountant();
    schedule(acc, 10_000, 1);
    acc.getEpsilon(delta);
  }, 1);
  const rdpHomo = time(() => {
    const acc = new RdpAccountant();
    acc.step({ noiseMultiplier: 1.1, sampleRate: 0.01 }, 10_000);
    acc.getEpsilon(delta);
  }, 3);
  const rdpRuns = time(() => {
    const acc = new RdpAccountant();
    schedule(acc, 100, 100);
    acc.getEpsilon(delta);
  }, 3);
  const pldRuns = time(() => {
    const acc = new PldAccountant();
    schedule(acc, 100, 100);
    acc.getEpsilon(delta);
  }, 1);
  return [
    measure({
      name: "rdp-10k-heterogeneous",
      description: "RDP accountant: ε(δ=1e-5) after 10,000 steps, each with a distinct (q, z)",
      value: rdpHetero,
      unit: "ms",
      baseline_name: "RDP, the same 10,000 steps homogeneous (one history entry)",
      baseline: rdpHomo,
      better: "lower",
      notes: "order grid: DEFAULT_ORDERS (159 orders); cost is linear in distinct history entries",
    }),
    measure({
      name: "pld-10k-heterogeneous",
      description:
        "PLD accountant (h=1e-4, both directions): ε(δ=1e-5) after 10,000 steps = 100 distinct (q, z) × 100 steps",
      value: pldRuns,
      unit: "ms",
      baseline_name: "RDP accountant on the same 100 × 100 schedule",
      baseline: rdpRuns,
      better: "lower",
    }),
  ];
}
