/**
 * `npm run demo -- --privacy distributed`, small: the comparison's in-process work (`modeComparisonJobs` in the demo's
 * worker code, `modeComparisonOf`, the report's table) on 40 devices, 2 rounds, one seed, from a briefly pretrained
 * public model. Both modes run the device code on the same task at the same target ε with the same fixed C; each
 * states its own accountant's ε, and distributed devices upload their secure-aggregation encoding.
 */
import { describe, expect, it } from "vitest";
import { paddedLength } from "@fedge/privacy";
import { cohortSummary, modeComparisonJobs, modeComparisonOf } from "../src/demo.ts";
import { doInProcessWork } from "../src/in-process-worker.ts";
import { inProcessCohort } from "../src/distributed-cohort.ts";
import { modeComparisonMarkdown, modeRows } from "../src/mode-comparison.ts";
import { demoUpdateLength, populationConfig, recipeAt } from "../src/setting.ts";

const CLIENTS = 40;
// Two rounds from a briefly pretrained model: ε = 60 keeps the noise small enough that the accuracy checks below test
// the encoding, not the noise. (A sampled cohort could not go much lower here: 16 of 20 shares in d' = 8,192
// coordinates, the add/remove charge's variance term alone costs ε ≈ 44; docs/PRIVACY.md, "Which neighbour".)
const EPSILON = 60;
const DELTA = 1e-5;

describe("--privacy distributed, small (40 devices, 2 rounds)", () => {
  it("a sampled cohort: refuses a target the shares cannot reach, saying which of n_min or d' must change", () => {
    const recipe = recipeAt(4, { rounds: 2, samplingRate: 0.5 });
    const at = { name: "p", clients: CLIENTS, epsilon: 4, delta: DELTA, updateLength: 512 * 10 + 10 };
    expect(() =>
      populationConfig({
        ...at,
        recipe: { ...recipe, clip: { ...recipe.clip, adaptive: false } },
        privacy: "distributed",
        cohort: "sampled",
      }),
    ).toThrow(/whatever z; raise minClients \(n_min\) from 16 to at least \d+ .*or shrink the update to d' <= \d+/);
  });

  it("runs central and distributed at the same ε, q and fixed C on the rule's cohort and reports them side by side", async () => {
    // a checked-in cohort: the rule keeps the recipe's q = 0.5 (20 devices a round train; all 40 check in and add a
    // share, a sum released from 32 inputs)
    const start = recipeAt(EPSILON, { rounds: 2, samplingRate: 0.5 });
    const cohort = inProcessCohort({
      clients: CLIENTS,
      epsilon: EPSILON,
      delta: DELTA,
      recipe: { ...start, clip: { ...start.clip, adaptive: false } },
      updateLength: demoUpdateLength(start.trainable),
    });
    const recipe = cohort.recipe;
    expect(cohort).toMatchObject({
      cohort: "checked-in",
      samplingRate: 0.5,
      noiseShares: 40,
      minClients: 32,
      floor: 0,
    });
    const jobs = modeComparisonJobs(recipe, EPSILON, 1);
    expect(jobs.every((j) => j.recipe.samplingRate === cohort.samplingRate)).toBe(true);
    expect(jobs.map((j) => [j.privacy, j.recipe.clip.adaptive])).toEqual([
      ["central", false],
      ["distributed", false],
    ]);
    const results = await doInProcessWork(
      { clients: CLIENTS, publicSamples: 500, labelsPerClient: 2, delta: DELTA, seeds: 1, pretrainEpochs: 1, jobs },
      () => undefined,
    );
    const c = {
      ...modeComparisonOf({ runs: results.runs, recipe, clients: CLIENTS, epsilon: EPSILON, delta: DELTA }),
      cohort: cohortSummary(cohort),
    };
    const [central, distributed] = modeRows(c);
    expect(c.clipNorm).toBe(recipe.clip.initial);
    expect(c.distributed).toEqual({
      bits: 20,
      minClients: cohort.minClients,
      maxClients: 2 * cohort.noiseShares,
      cohort: "checked-in",
    });
    for (const r of [central, distributed]) {
      expect(r.epsilon).toBeGreaterThan(0);
      expect(r.epsilon).toBeLessThanOrEqual(EPSILON);
      expect(r.deviceSeconds).toBeGreaterThan(0);
      expect(r.roundSeconds).toBeGreaterThan(0);
      expect(r.accuracy).toBeGreaterThan(0.5); // from the public model; 2 noisy rounds do not wreck it
    }
    // the distributed discrete Gaussian, counted over n_min − 1 of q·N shares, needs more noise than central's for the same ε
    expect(distributed.noiseMultiplier).toBeGreaterThan(central.noiseMultiplier);
    // every device input each round (the runs' ε is the checked-in cohort's zero-out charge, amplified)
    const distributedRuns = results.runs.filter((r) => r.privacy === "distributed");
    expect(distributedRuns.every((r) => r.noiseOnlyPerRound > 0)).toBe(true);
    // against the edge (no amplification) never less; at ε = 60 the coin amplifies little, so they may meet
    expect(distributedRuns.every((r) => r.epsilonAgainstEdge! >= r.epsilon!)).toBe(true);
    // central uploads int8 (about a byte a value); a distributed device its encoding, 4 bytes a padded value
    expect(c.updateLength).toBe(512 * 10 + 10);
    expect(distributed.bytesPerUpdate).toBe(4 * paddedLength(c.updateLength));
    expect(central.bytesPerUpdate).toBeGreaterThan(c.updateLength);
    expect(central.bytesPerUpdate).toBeLessThan(2 * c.updateLength);
    // both ε of the distributed run: the ledger's and the one against the edge, which sees who takes part
    const md = modeComparisonMarkdown(c).join("\n");
    expect(md).toContain(`**ε = ${distributed.epsilon.toFixed(3)} against whoever sees only the released models**`);
    expect(md).toMatch(/\*\*ε = \d+\.\d{3} against the edge itself\*\*/);
    expect(md).toContain(`**q = ${cohort.samplingRate}** (${cohort.expectedClients} devices a round expected`);
    expect(md).toContain(`| central | ${central.noiseMultiplier.toFixed(3)} | ${central.epsilon.toFixed(3)} (RDP`);
    expect(md).toContain(
      `| distributed | ${distributed.noiseMultiplier.toFixed(3)} | ${distributed.epsilon.toFixed(3)}`,
    );
  }, 60_000);
});
