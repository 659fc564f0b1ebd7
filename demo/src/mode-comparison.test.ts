import { describe, expect, it } from "vitest";
import { modeComparisonMarkdown, modeRows, type ModeComparison, type ModeRun } from "./mode-comparison.ts";

function run(privacy: ModeRun["privacy"], seed: number, over: Partial<ModeRun> = {}): ModeRun {
  return {
    privacy,
    seed,
    epsilon: privacy === "central" ? 0.98 : 0.99,
    noiseMultiplier: privacy === "central" ? 1.1 : 1.3,
    final: 0.9,
    uploadBytesPerUpdate: privacy === "central" ? 5400 : 32768,
    deviceSecondsPerUpdate: 0.01,
    roundSeconds: 2,
    ...over,
  };
}

const comparison = (runs: ModeRun[]): ModeComparison => ({
  epsilonTarget: 1,
  delta: 1e-5,
  clipNorm: 0.1,
  clipWhy: "chosen on the validation pool",
  updateLength: 5130,
  paddedLength: 8192,
  distributed: { bits: 20, minClients: 160, maxClients: 400 },
  runs,
});

describe("central vs distributed table", () => {
  const c = comparison([
    run("distributed", 2, { final: 0.93, deviceSecondsPerUpdate: 0.03, epsilon: 0.97 }),
    run("central", 1, { final: 0.94, deviceSecondsPerUpdate: 0.01, roundSeconds: 1 }),
    run("central", 2, { final: 0.96, deviceSecondsPerUpdate: 0.03, roundSeconds: 3 }),
    run("distributed", 1, { final: 0.91, deviceSecondsPerUpdate: 0.05 }),
  ]);

  it("takes each mode's mean over its seeds, and the worst ε of its runs", () => {
    const [central, distributed] = modeRows(c);
    expect(central.seeds).toEqual([1, 2]);
    expect(central.accuracy).toBeCloseTo(0.95, 12);
    expect(central.deviceSeconds).toBeCloseTo(0.02, 12);
    expect(central.roundSeconds).toBeCloseTo(2, 12);
    expect(central.bytesPerUpdate).toBe(5400);
    expect(distributed.accuracy).toBeCloseTo(0.92, 12);
    expect(distributed.epsilon).toBe(0.99);
    expect(distributed.deviceSeconds).toBeCloseTo(0.04, 12);
  });

  it("puts both modes side by side with the C, the ε of each accountant and the ratios", () => {
    const md = modeComparisonMarkdown(c).join("\n");
    expect(md).toContain("**C = 0.1** in both modes: chosen on the validation pool.");
    expect(md).toContain("seeds 1, 2)");
    expect(md).toMatch(
      /\| central \| 1\.100 \| 0\.980 \(RDP, sampled Gaussian\) \| 95\.00% \| 5400 \| 20\.0 ms \| 2\.00 s \|/,
    );
    expect(md).toMatch(
      /\| distributed \| 1\.300 \| 0\.990 \(RDP, distributed discrete Gaussian, add\/remove \(KLS21, Zhu & Wang\)\) \| 92\.00% \| 32768 \| 40\.0 ms \| 2\.00 s \|/,
    );
    expect(md).toContain("accuracy -3.00 points, bytes 6.07×, device CPU 2.00×, round time 1.00×");
    expect(md).toContain("the 5130 values padded to 8192");
  });

  it("states the ε against the edge beside the ledger's, the worst seed's, and no bound when a seed has none", () => {
    expect(modeComparisonMarkdown(c).join("\n")).not.toContain("against the edge");
    const withEdge = comparison([
      run("central", 1),
      run("distributed", 1, { epsilonAgainstEdge: 3.1 }),
      run("distributed", 2, { epsilonAgainstEdge: 3.25 }),
    ]);
    const md = modeComparisonMarkdown(withEdge).join("\n");
    expect(md).toContain("**ε = 0.990 against whoever sees only the released models**");
    expect(md).toContain("**ε = 3.250 against the edge itself**");
    const unbounded = comparison([run("central", 1), run("distributed", 1, { epsilonAgainstEdge: null })]);
    expect(modeComparisonMarkdown(unbounded).join("\n")).toContain("**no bound (a round let the edge see");
  });

  it("refuses a comparison missing a mode or an ε", () => {
    expect(() => modeRows(comparison([run("central", 1)]))).toThrow(/no distributed run/);
    expect(() => modeRows(comparison([run("central", 1), run("distributed", 1, { epsilon: null })]))).toThrow(/no ε/);
  });
});
