import { describe, expect, it } from "vitest";
import { InvalidPrivacyParameterError } from "@fedge/privacy";
import {
  COHORT_RATE_STEP,
  MIN_REPORT_FRACTIONS,
  SERVED_EPSILON_STEP,
  SERVED_FLOOR_MARGIN,
  inProcessCohort,
  servedEpsilon,
} from "./distributed-cohort.ts";
import {
  RECIPE,
  demoUpdateLength,
  populationConfig,
  withFixedClip,
  type DistributedCohortKind,
  type FederatedRecipe,
} from "./setting.ts";
import { distributedSharesExpected, strategyFromConfig } from "fedge";

const DELTA = 1e-5;
const recipe = withFixedClip(RECIPE);
const updateLength = demoUpdateLength(RECIPE.trainable);

/** Whether the distributed solver meets `epsilon` for `r` on `clients` devices (the path the runs take). */
function reaches(
  r: FederatedRecipe,
  clients: number,
  epsilon: number,
  cohort: DistributedCohortKind = "sampled",
): boolean {
  try {
    populationConfig({
      name: "p",
      clients,
      epsilon,
      delta: DELTA,
      recipe: r,
      privacy: "distributed",
      updateLength,
      cohort,
    });
    return true;
  } catch (e) {
    if (e instanceof InvalidPrivacyParameterError && e.reason === "unreachable_target") return false;
    throw e;
  }
}

describe("inProcessCohort", () => {
  it("a checked-in cohort (the default): central's own q and n_min = ⌈0.8·N⌉ of the N check-ins, no floor", () => {
    const c = inProcessCohort({ clients: 1000, epsilon: 1, delta: DELTA, recipe, updateLength });
    expect(c).toMatchObject({
      cohort: "checked-in",
      samplingRate: RECIPE.samplingRate,
      expectedClients: 200,
      noiseShares: 1000,
      minClients: 800,
      floor: 0,
    });
    expect(c.recipe).toEqual(recipe);
    expect(reaches(recipe, 1000, 1, "checked-in")).toBe(true);
    expect(reaches(recipe, 1000, 1, "sampled")).toBe(false); // the same q as a sampled cohort: the add/remove floor
    // the config the run takes is the aggregator's plan: the noise split over N = q·N / q check-ins
    const { config, noiseMultiplier } = populationConfig({
      name: "p",
      clients: 1000,
      epsilon: 1,
      delta: DELTA,
      recipe: c.recipe,
      privacy: "distributed",
      updateLength,
    });
    expect(noiseMultiplier).toBe(c.noiseMultiplier);
    expect(config.privacy.distributed).toMatchObject({ cohort: "checked-in", minClients: 800, maxClients: 2000 });
    expect(distributedSharesExpected(config)).toBe(1000);
    const task = strategyFromConfig(config).configureFit({
      round: 1,
      clip: { clipNorm: config.clipping.clipNorm },
      length: updateLength,
      rotationSeed: new Uint8Array(32),
    }).distributed!;
    expect(task).toMatchObject({ cohort: "checked-in", noise_shares: 800 });
    // central at the same q is solved for the same ε, with less noise: n_min of N shares counted, Zhu & Wang's bound
    expect(c.noiseMultiplier).toBeGreaterThan(c.centralNoiseMultiplier * Math.sqrt(1000 / 800));
    expect(c.rule).toContain("central's own q = 0.2");
  });

  it("picks, at the demo's setting, the first (q, n_min) of the stated grid that reaches ε = 1 under add/remove", () => {
    // the recipe's own cohort (q = 0.2, n_min 160 of 200) cannot: that is why the rule exists
    expect(reaches(recipe, 1000, 1)).toBe(false);
    const c = inProcessCohort({ clients: 1000, epsilon: 1, delta: DELTA, recipe, updateLength, cohort: "sampled" });
    expect(reaches(c.recipe, 1000, 1)).toBe(true);
    expect(c.floor).toBeLessThanOrEqual(1);
    expect(c.recipeFloor).toBeGreaterThan(1);
    expect(c.expectedClients).toBe(c.samplingRate * 1000);
    expect(c.minClients).toBeGreaterThanOrEqual(Math.ceil(0.8 * c.expectedClients));
    // the central run at the same q is solved for the same ε
    expect(c.centralNoiseMultiplier).toBeGreaterThan(0);
    expect(c.noiseMultiplier).toBeGreaterThan(c.centralNoiseMultiplier);
    // minimal: every earlier point of the grid fails
    for (let q = RECIPE.samplingRate; q < c.samplingRate - 1e-9; q += COHORT_RATE_STEP) {
      for (const f of MIN_REPORT_FRACTIONS) {
        const rate = Number(q.toFixed(2));
        expect(reaches({ ...recipe, samplingRate: rate, minReportFraction: f }, 1000, 1), `q ${rate} f ${f}`).toBe(
          false,
        );
      }
    }
    for (const f of MIN_REPORT_FRACTIONS.filter((f) => f < (c.recipe.minReportFraction ?? 0.8)))
      expect(reaches({ ...recipe, samplingRate: c.samplingRate, minReportFraction: f }, 1000, 1)).toBe(false);
    expect(c.rule).toContain(`floor alone is ε = ${c.recipeFloor.toFixed(2)}`);
  });

  it("refuses, naming the setting, when no cohort up to q = 1 reaches the target", () => {
    expect(() =>
      inProcessCohort({ clients: 40, epsilon: 1, delta: DELTA, recipe, updateLength, cohort: "sampled" }),
    ).toThrow(/no cohort of 40 devices reaches ε = 1 in distributed mode over 10 rounds/);
  });
});

describe("servedEpsilon", () => {
  it("runs ~40 devices a round at the smallest 0.5-step ε at or above 1.1× the floor that the solver meets", () => {
    const s = servedEpsilon({ clients: 200, epsilon: 1, delta: DELTA, recipe, updateLength, cohort: "sampled" });
    expect(s.headline).toBe(false);
    expect(reaches(recipe, 200, 1)).toBe(false);
    expect(reaches(recipe, 200, s.epsilon)).toBe(true);
    expect(s.epsilon).toBeGreaterThanOrEqual(SERVED_FLOOR_MARGIN * s.floor);
    expect(Number.isInteger(s.epsilon / SERVED_EPSILON_STEP)).toBe(true);
    for (let e = s.epsilon - SERVED_EPSILON_STEP; e >= SERVED_FLOOR_MARGIN * s.floor; e -= SERVED_EPSILON_STEP)
      expect(reaches(recipe, 200, e)).toBe(false);
    expect(s.rule).toContain(`alone costs ε = ${s.floor.toFixed(2)} whatever z`);
  });

  it("keeps the headline ε where the served plan reaches it", () => {
    const at = { clients: 1000, epsilon: 1, delta: DELTA, updateLength, cohort: "sampled" as const };
    const c = inProcessCohort({ ...at, recipe });
    const s = servedEpsilon({ ...at, recipe: c.recipe });
    expect(s).toMatchObject({ epsilon: 1, headline: true });
    // a checked-in cohort reaches the headline ε on the 200 served devices at the recipe's own q: no floor
    expect(servedEpsilon({ ...at, clients: 200, recipe, cohort: "checked-in" })).toMatchObject({
      epsilon: 1,
      headline: true,
      floor: 0,
    });
  });
});
