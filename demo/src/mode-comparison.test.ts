import { describe, expect, it } from "vitest";
import {
  modeComparisonMarkdown,
  modeRows,
  type ModeComparison,
  type ModeRun,
  type ServedModeRun,
} from "./mode-comparison.ts";

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

describe("the served table", () => {
  const served = (
    privacy: ModeRun["privacy"],
    outcomes: string[],
    over: Partial<ServedModeRun> = {},
  ): ServedModeRun => ({
    ...run(privacy, 1),
    population: `mnist-${privacy}-fixed-c`,
    devices: 200,
    rounds: outcomes.map((outcome, i) => ({
      roundId: `r_${i + 1}`,
      selected: 40,
      aggregated: outcome === "abandoned" ? 0 : 40,
      outcome,
      seconds: 2,
    })),
    ...over,
  });
  const c: ModeComparison = {
    ...comparison([run("central", 1), run("distributed", 1)]),
    served: {
      devices: 200,
      distributed: { minClients: 32, maxClients: 80 },
      runs: [
        served("central", ["published", "published"], { final: 0.9, uploadBytesPerUpdate: 5000, roundSeconds: 4 }),
        served("distributed", ["published", "abandoned"], {
          final: 0.89,
          uploadBytesPerUpdate: 150_000,
          deviceSecondsPerUpdate: 0.3,
          roundSeconds: 12,
        }),
      ],
    },
  };

  it("comes first, with the edge ledger's ε, SecAgg+ bytes, rounds aggregated, then the labelled in-process table", () => {
    const md = modeComparisonMarkdown(c).join("\n");
    expect(md.indexOf("### Served through the local edge (200 devices, seed 1)")).toBeLessThan(
      md.indexOf("### In process (every device, more seeds)"),
    );
    expect(md).toContain(
      "| central | 1.100 | 0.980 | 90.00% | 5000 (signed int8 upload) | 10.0 ms | 4.00 s | 2 of 2 |",
    );
    expect(md).toContain(
      "| distributed | 1.300 | 0.990 | 89.00% | 150000 (SecAgg+ messages sent and received) | 300.0 ms | 12.00 s | 1 of 2 |",
    );
    expect(md).toContain("accuracy -1.00 points, bytes 30.00×, device CPU 30.00×, round time 3.00×");
    expect(md).toContain("Inputs per distributed round: 40, 0 (1 round(s) released no sum and stay charged).");
    expect(md).toContain("a sum is released with at least 32 inputs");
  });
});

describe("a checked-in cohort in the report", () => {
  it("names the zero-out charge, the N check-ins, and what the coin-excluded devices cost", () => {
    const c: ModeComparison = {
      ...comparison([
        run("central", 1),
        run("distributed", 1, { noiseOnlySecondsPerInput: 0.004, epsilonAgainstEdge: 2.9 }),
      ]),
      distributed: { bits: 20, minClients: 800, maxClients: 2000, cohort: "checked-in" },
      cohort: {
        samplingRate: 0.2,
        expectedClients: 200,
        cohort: "checked-in",
        noiseShares: 1000,
        minClients: 800,
        floor: 0,
        recipeFloor: 0,
        rule: "central's own q = 0.2",
      },
    };
    const md = modeComparisonMarkdown(c).join("\n");
    expect(md).toContain(
      "**q = 0.2** (200 devices a round expected in both modes; in distributed mode all 1000 devices check in and add " +
        "a noise share, a sum released from n_min = 800 inputs), chosen as central's own q = 0.2",
    );
    expect(md).toContain("every other checked-in device encodes a zero update (its noise share alone)");
    expect(md).toContain("(RDP, distributed discrete Gaussian, checked-in cohort: zero-out amplified by the coin");
    expect(md).not.toContain("add/remove");
    expect(md).toContain("its noise share in both since every checked-in device adds one");
    expect(md).toContain("(encoding alone: 4.0 ms each, in process)");
    // a sampled run states add/remove and no such cost
    const sampled = modeComparisonMarkdown(comparison([run("central", 1), run("distributed", 1)])).join("\n");
    expect(sampled).toContain("add/remove (KLS21, Zhu & Wang)");
    expect(sampled).not.toContain("coin-excluded");
  });
});

describe("the rules' choices in the report", () => {
  it("states the in-process cohort and, when the served ε is not the headline's, why", () => {
    const c: ModeComparison = {
      ...comparison([run("central", 1), run("distributed", 1)]),
      cohort: {
        samplingRate: 0.95,
        expectedClients: 950,
        minClients: 855,
        floor: 0.962,
        recipeFloor: 2.157,
        rule: "the smallest q on the grid",
      },
      served: {
        devices: 200,
        epsilon: 26,
        floor: 23.49,
        headline: false,
        rule: "not ε = 1: the floor",
        distributed: { minClients: 32, maxClients: 80 },
        runs: (["central", "distributed"] as const).map((privacy) => ({
          ...run(privacy, 1),
          population: privacy,
          devices: 200,
          rounds: [{ roundId: "r_1", selected: 40, aggregated: 40, outcome: "published", seconds: 2 }],
        })),
      },
    };
    const md = modeComparisonMarkdown(c).join("\n");
    expect(md).toContain("both solved for ε = 26.");
    expect(md).toContain("**Why ε = 26 here, not 1:** not ε = 1: the floor.");
    expect(md).toContain(
      "on the same cohort, **q = 0.95** (950 devices a round expected, a sum released from n_min = 855; add/remove " +
        "floor there ε = 0.962), chosen as the smallest q on the grid, with one fixed clip norm",
    );
    // at the headline ε, no "why" line
    const atHeadline = modeComparisonMarkdown({ ...c, served: { ...c.served!, epsilon: 1, headline: true } });
    expect(atHeadline.join("\n")).not.toContain("**Why ε");
  });

  it("states the served rounds and q, and what chose them, when the served setting is given", () => {
    const c: ModeComparison = {
      ...comparison([run("central", 1), run("distributed", 1)]),
      served: {
        devices: 200,
        epsilon: 1,
        headline: true,
        setting: { rounds: 4, samplingRate: 0.2, why: "chosen for central mode alone" },
        distributed: { minClients: 160, maxClients: 200 },
        runs: (["central", "distributed"] as const).map((privacy) => ({
          ...run(privacy, 1),
          population: privacy,
          devices: 200,
          rounds: [{ roundId: "r_1", selected: 40, aggregated: 40, outcome: "published", seconds: 2 }],
        })),
      },
    };
    expect(modeComparisonMarkdown(c).join("\n")).toContain(
      "**Rounds:** 4 at q = 0.2, in both modes: chosen for central mode alone.",
    );
    const { setting: _omitted, ...withoutSetting } = c.served!;
    expect(modeComparisonMarkdown({ ...c, served: withoutSetting }).join("\n")).not.toContain("**Rounds:**");
  });
});
