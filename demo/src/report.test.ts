import { describe, expect, it } from "vitest";
import {
  accuracyVsEpsilonSvg,
  accuracyVsRoundSvg,
  curveByEpsilon,
  headlineRuns,
  reportMarkdown,
  type DemoReport,
} from "./report.ts";
import { RECIPE } from "./setting.ts";

function fixture(): DemoReport {
  const round = (r: number, acc: number) => ({
    round: r,
    roundId: `mnist-dp_${r}`,
    clipNorm: 0.3,
    noiseStd: 0.5,
    servedAccuracy: acc,
    fp32Accuracy: acc,
    servedVersion: r + 1,
    epsilon: 0.5 * r,
    seconds: 30,
    fleetSeconds: 25,
  });
  const run = (eps: number | null, seed: number, final: number) => ({
    epsilonTarget: eps,
    epsilon: eps,
    noiseMultiplier: eps === null ? null : 3,
    seed,
    final,
    accuracy: [final - 0.002, final],
    seconds: 5,
  });
  return {
    startedAt: "2026-01-01T00:00:00.000Z",
    clients: 1000,
    delta: 1e-5,
    headlineEpsilon: 1,
    seeds: 3,
    backend: "cpu",
    publicSamples: 500,
    privateSamples: 7995,
    testSamples: 1505,
    labelsPerClient: 2,
    intermittent: 10,
    misbehavingPerKind: 5,
    recipe: { ...RECIPE, rounds: 2 },
    ceilingRecipe: { ...RECIPE, rounds: 2 },
    serverLrByEpsilon: [
      { epsilon: 1, lr: 2 },
      { epsilon: 4, lr: 8 },
    ],
    pretrain: { hidden: 128, epochs: 12, copies: 10 },
    publicOnly: [
      { seed: 1, accuracy: 0.915 },
      { seed: 2, accuracy: 0.912 },
      { seed: 3, accuracy: 0.918 },
    ],
    served: {
      population: "mnist-dp",
      noiseMultiplier: 3,
      initialServedAccuracy: 0.915,
      initialVersion: 1,
      rounds: [round(1, 0.92), round(2, 0.925)],
      privacy: {
        accountant: "rdp",
        epsilon: 0.999,
        delta: 1e-5,
        rounds: [
          { roundId: "mnist-dp_1", sampleRate: 0.2, noiseMultiplier: 3 },
          { roundId: "mnist-dp_2", sampleRate: 0.2, noiseMultiplier: 3 },
        ],
      },
      epsilonCheck: { recomputed: 0.999, ledger: 0.999, aggregator: 0.998 },
      coordination: { shards: 4, why: "set explicitly" },
      uploads: { dtype: "int8", updateLength: 50_890, bytesPerUpdate: 51_046 },
      ortCheck: { version: 3, samples: 1505, argmaxAgreement: 1, maxAbsLogitDiff: 1e-6, sha256: "ab".repeat(32) },
      devices: [
        {
          label: "checked in every round",
          device: 0,
          roundsCharged: 2,
          journal: [
            {
              roundId: "mnist-dp_1",
              selected: true,
              receipt: { sha256: "cd".repeat(32), receivedAt: "2026-01-01T00:00:01Z" },
            },
            { roundId: "mnist-dp_2", selected: false, receipt: null },
          ],
          epsilon: 0.999,
          delta: 1e-5,
          checkinReceipts: [
            { roundId: "mnist-dp_1", samplingRate: 0.2, noiseMultiplier: 3 },
            { roundId: "mnist-dp_2", samplingRate: 0.2, noiseMultiplier: 3 },
          ],
          ownEpsilon: { epsilon: 1.0123, delta: 1e-5, rounds: 2, accountant: "rdp" },
        },
      ],
      misbehavingRefused: true,
      acceptedAreHonest: true,
      seconds: 60,
    },
    curve: [
      run(1, 2, 0.921),
      run(1, 3, 0.91), // below (a)'s mean: must be flagged
      run(4, 1, 0.93),
      run(4, 2, 0.931),
      run(4, 3, 0.935),
    ],
    ceiling: [run(null, 1, 0.94), run(null, 2, 0.941), run(null, 3, 0.942)],
    stateDir: "demo-out/state/x",
    seconds: { total: 500, "served rounds": 300 },
  };
}

describe("report", () => {
  const rep = fixture();
  const md = reportMarkdown(rep);

  it("(b) is the served seed 1 and the in-process seeds; the curve's headline point includes the served run", () => {
    expect(headlineRuns(rep)).toEqual([
      { seed: 1, value: 0.925, source: "served" },
      { seed: 2, value: 0.921, source: "in process" },
      { seed: 3, value: 0.91, source: "in process" },
    ]);
    expect(curveByEpsilon(rep).map((c) => [c.epsilon, c.runs.map((r) => r.seed)])).toEqual([
      [1, [1, 2, 3]],
      [4, [1, 2, 3]],
    ]);
  });

  it("states each number's source, the goals with their margins, and flags results below (a)", () => {
    expect(md).toContain("| (a) | public-only model");
    expect(md).toContain("91.50% (served v1)");
    expect(md).toContain("92.50% (served)");
    expect(md).toContain("92.10% (in process)");
    expect(md).toMatch(/⚠ Single runs below \(a\)'s mean: .*seed 3 \(91\.00%\)/);
    expect(md).toMatch(/\| private at ε = 4 \| ≥ 93\.80% \| 93\.20% \| \*\*not reached\*\* \| −0\.60 \|/);
    expect(md).toMatch(/\| public-only \(a\) \| ≥ 91\.50% \| 91\.50% \| reached \| \+0\.00 \|/);
    expect(md).toContain("δ = 1e-5");
    expect(md).toContain("the edge's ledger, `GET /v1/populations/mnist-dp/privacy`");
    expect(md).toContain("the aggregator's own ledger of the same rounds: 0.998000");
  });

  it("sets each device's own ε from its signed receipts beside its rounds' ε", () => {
    expect(md).toMatch(
      /\| #0 \(checked in every round\) \| 2 of 2 \| 2 \| .* \| 1\.012 \(δ = 1e-5\) \| 0\.999 \(δ = 1e-5\) \|/,
    );
  });

  it("states the coordinator shards the rounds ran on and the bytes per signed update against float32", () => {
    expect(md).toContain(
      "the population's rounds ran on S = 4 coordinator shards (`PUT /v1/admin/populations/mnist-dp/sharding`; set explicitly)",
    );
    expect(md).toContain("int8, 51046 bytes per signed update of 50890 values");
    expect(md).toContain("0.251× the 203560 bytes of the same values in float32");
  });

  it("publishes no exact per-round count of the private population", () => {
    expect(md).not.toMatch(/checked in \||selected \||accepted \|/);
    expect(JSON.stringify(rep)).not.toMatch(/"(checkedIn|selected|accepted|honestAccepted)":\s*\d/);
  });

  it("plots (a) and (d) as labelled baselines on a zoomed y axis", () => {
    for (const svg of [accuracyVsRoundSvg(rep), accuracyVsEpsilonSvg(rep)]) {
      expect(svg).toContain("(a) public-only, mean 91.50%");
      expect(svg).toContain("(d) non-private ceiling, mean 94.10%");
      expect(svg).not.toMatch(/NaN|undefined|Infinity/);
      expect(svg).not.toContain(">0%<");
    }
  });
});

describe("the report's privacy audit section", () => {
  const audit = (epsilonHat: number) => ({
    shadow: "mnist-dp-audit-demo",
    auditOf: "mnist-dp",
    rounds: 10,
    canaries: 200,
    epsilon: 1,
    delta: 1e-5,
    epsilonHat,
    interval: { lower: epsilonHat * 0.5, upper: epsilonHat * 1.5, confidence: 0.95, resamples: 1000 },
    observed: { mean: 0.01, std: 0.02 },
    unobserved: { mean: 0, std: 0.02 },
    seconds: 40,
  });

  it("shows ε (accountant) next to ε̂ (audit) with its interval, only when the demo ran the audit", () => {
    expect(reportMarkdown(fixture())).not.toContain("Empirical privacy audit");
    const md = reportMarkdown({ ...fixture(), privacyAudit: audit(0.42) });
    expect(md).toContain("### Empirical privacy audit");
    expect(md).toContain("| 1.000 | 0.420 | [0.210, 0.630] | 1e-5 |");
    expect(md).toContain("95 % bootstrap interval");
    expect(md).toContain("ε̂ and its whole interval are at or below the accountant's ε");
  });

  it("reads ε̂ against ε with its interval: below, inconclusive, above", () => {
    const verdict = (hat: number) => reportMarkdown({ ...fixture(), privacyAudit: audit(hat) });
    expect(verdict(0.8)).toContain("its interval reaches above it");
    expect(verdict(1.5)).toContain("inconclusive with this many canaries");
    expect(verdict(3)).toContain("leaks more than it claims");
    expect(verdict(1.5)).not.toContain("leaks more than it claims");
  });
});

describe("the report's central-vs-distributed section", () => {
  it("appears only with --privacy distributed, before the served run's rounds", () => {
    expect(reportMarkdown(fixture())).not.toContain("Central vs distributed");
    const run = (privacy: "central" | "distributed") => ({
      privacy,
      seed: 1,
      epsilon: 0.99,
      noiseMultiplier: privacy === "central" ? 3.1 : 5.1,
      final: 0.93,
      uploadBytesPerUpdate: privacy === "central" ? 5246 : 32768,
      deviceSecondsPerUpdate: 0.004,
      roundSeconds: 1,
    });
    const md = reportMarkdown({
      ...fixture(),
      modes: {
        epsilonTarget: 1,
        delta: 1e-5,
        clipNorm: 0.1,
        clipWhy: "chosen on the validation pool",
        updateLength: 5130,
        paddedLength: 8192,
        distributed: { bits: 20, minClients: 160, maxClients: 400 },
        runs: [run("central"), run("distributed")],
      },
    });
    const at = md.indexOf("## Central vs distributed DP at ε = 1");
    expect(at).toBeGreaterThan(0);
    expect(at).toBeLessThan(md.indexOf("## The served run, per round"));
    expect(md).toContain(
      "| distributed | 5.100 | 0.990 (RDP, distributed discrete Gaussian, add/remove (KLS21, Zhu & Wang)) | 93.00% | 32768 |",
    );
  });
});
