import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackend, type Backend } from "@fedge/gpu-node";
import { chacha20Stream } from "@fedge/privacy";
import {
  SERVED_MARGIN_SDS,
  SERVED_MIN_GAIN,
  SERVED_SETTING,
  chooseServedSetting,
  clearsPublicOnly,
  servedCandidates,
  servedRecipeFor,
  servedSettingScore,
  servedTuningSplit,
  type ScoredServedSetting,
} from "./served-setting.ts";
import { RECIPE, recipeAt } from "./setting.ts";

describe("the served setting's rule (chooseServedSetting)", () => {
  const publicOnly = 0.93;
  const at = (samplingRate: number, rounds: number, mean: number, sd = 0.001): ScoredServedSetting => ({
    setting: { ...SERVED_SETTING, recipe: { rounds, samplingRate } },
    mean,
    sd,
    publicOnly,
  });
  const chosen = (xs: ScoredServedSetting[]) => chooseServedSetting(xs).setting.recipe;

  it("keeps fewer rounds unless more beat them by the minimum gain", () => {
    expect(chosen([at(0.2, 1, 0.94), at(0.2, 2, 0.94 + SERVED_MIN_GAIN / 2)]).rounds).toBe(1);
    expect(chosen([at(0.2, 1, 0.94), at(0.2, 2, 0.94 + SERVED_MIN_GAIN)]).rounds).toBe(2);
    expect(chosen([at(0.2, 1, 0.94), at(0.2, 2, 0.95), at(0.2, 3, 0.935), at(0.2, 4, 0.9504)]).rounds).toBe(2);
  });

  it(`counts only candidates clearly above (a) (${SERVED_MARGIN_SDS} sds), and raises q only when none at the recipe's q is`, () => {
    // the best mean at q 0.2 is not clear of (a) (1 sd): it is passed over for a clear one
    expect(chosen([at(0.2, 1, 0.935, 0.001), at(0.2, 3, 0.94, 0.01), at(0.5, 1, 0.96)])).toEqual({
      rounds: 1,
      samplingRate: 0.2,
    });
    // nothing clear at q 0.2: the first q with a clear candidate decides, even against a better larger q
    expect(chosen([at(0.2, 1, 0.94, 0.01), at(0.5, 2, 0.95), at(1, 1, 0.97)])).toEqual({
      rounds: 2,
      samplingRate: 0.5,
    });
    // nothing clear anywhere: the best mean of all
    expect(chosen([at(0.2, 1, 0.92), at(0.5, 1, 0.931, 0.01)])).toEqual({ rounds: 1, samplingRate: 0.5 });
    expect(clearsPublicOnly({ mean: 0.94, sd: 0.0019, publicOnly })).toBe(true);
    expect(clearsPublicOnly({ mean: 0.94, sd: 0.0021, publicOnly })).toBe(false);
  });

  it("refuses an empty candidate list", () => {
    expect(() => chooseServedSetting([])).toThrow(RangeError);
  });

  it("tries no candidate that asks a device for more updates than the recipe", () => {
    const cs = servedCandidates();
    for (const c of cs)
      expect(c.recipe.samplingRate * c.recipe.rounds).toBeLessThanOrEqual(RECIPE.samplingRate * RECIPE.rounds + 1e-9);
    expect(cs[0]!.recipe).toEqual({ rounds: 1, samplingRate: RECIPE.samplingRate });
    expect(cs.some((c) => c.recipe.rounds === RECIPE.rounds && c.recipe.samplingRate === RECIPE.samplingRate)).toBe(
      true,
    );
  });
});

describe("the served comparison's recipe (servedRecipeFor)", () => {
  const recipe = recipeAt(1);

  it("takes SERVED_SETTING's rounds and q where it was tuned, with the clip fixed and the rest of the recipe kept", () => {
    const c = servedRecipeFor({ recipe, clients: SERVED_SETTING.clients, epsilon: SERVED_SETTING.epsilon });
    expect(c.recipe).toEqual({ ...recipe, ...SERVED_SETTING.recipe, clip: { ...recipe.clip, adaptive: false } });
    expect(c.why).toContain("central mode alone");
  });

  it("keeps the demo's recipe at another device count or ε, and a caller's rounds or q", () => {
    for (const c of [
      servedRecipeFor({ recipe, clients: 100, epsilon: 1 }),
      servedRecipeFor({ recipe, clients: SERVED_SETTING.clients, epsilon: 4 }),
      servedRecipeFor({ recipe, overrides: { rounds: 2 }, clients: SERVED_SETTING.clients, epsilon: 1 }),
    ]) {
      expect(c.recipe.rounds).toBe(recipe.rounds);
      expect(c.recipe.samplingRate).toBe(recipe.samplingRate);
      expect(c.recipe.clip.adaptive).toBe(false);
    }
  });
});

/** Draw k's coins and noise: a ChaCha20 stream keyed by k, so that every run of this test replays the same draws. */
const drawOf = (k: number) => chacha20Stream(new Uint8Array(32).fill(k + 101));

let backend: Backend;
beforeAll(async () => {
  backend = await createBackend({ prefer: "cpu", log: () => undefined });
});
afterAll(async () => {
  await backend?.dispose();
});

describe("SERVED_SETTING on the validation pool (central mode, replayed draws)", () => {
  // The reason for the setting: with ~40 updates a round, the recipe's 10 rounds at ε = 1 spend the budget on rounds
  // too noisy to help; the chosen rounds beat both the public-only model (a) and the recipe's 10 rounds.
  it("beats the public-only model and the fleet recipe's 10 rounds on every replayed draw", async () => {
    const draws = 3;
    const split = servedTuningSplit(1000);
    const chosen = await servedSettingScore({ backend, setting: SERVED_SETTING, draws, split, randomOf: drawOf });
    const ten = await servedSettingScore({
      backend,
      setting: { ...SERVED_SETTING, recipe: { rounds: RECIPE.rounds, samplingRate: RECIPE.samplingRate } },
      draws,
      split,
      randomOf: drawOf,
    });
    const shown = `chosen ${chosen.finals.join(", ")}, 10 rounds ${ten.finals.join(", ")}, (a) ${chosen.publicOnly}`;
    for (const x of chosen.finals) expect(x, shown).toBeGreaterThan(chosen.publicOnly);
    expect(Math.min(...chosen.finals), shown).toBeGreaterThan(Math.max(...ten.finals));
  }, 400_000);
});
