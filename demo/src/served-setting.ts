/**
 * @module
 * The setting of the served central-vs-distributed comparison (`npm run demo -- --privacy distributed`, (e) served),
 * and how it was chosen.
 *
 * The demo's recipe (`RECIPE`: q = 0.2, 10 rounds) was tuned for the 1,000-device fleet. The served comparison runs on
 * {@link SERVED_SETTING}`.clients` = 200 of those devices, ~40 updates a round at q = 0.2: z spread over five times
 * fewer updates, so each round's averaged update carries five times the noise std (z·C / (q·N)), and ε = 1 spent over
 * 10 such rounds left central mode itself below the public-only model (a).
 *
 * The rule, for CENTRAL mode only, on the tuning split's validation pool (`tuningData`, never a test digit): the first
 * 200 proxy devices of the 1,000-device partition (the served comparison takes the demo partition's first devices the
 * same way), seed 1's public model (the served comparison's round 0), the recipe with its fixed C, at ε = 1. Each
 * candidate of {@link servedCandidates} (q ∈ {0.2, 0.5, 1} × rounds, at most the recipe's q·R = 2 updates a device)
 * scores the last round's int8 validation accuracy over CSPRNG draws. At each q in turn, the recipe's first, only the
 * candidates clearly above (a) count (mean margin ≥ {@link SERVED_MARGIN_SDS} sds of the draws: one served run is one
 * draw); among them the fewest rounds, unless more beat it by {@link SERVED_MIN_GAIN}; the first q that has one decides
 * ({@link chooseServedSetting}). Distributed mode runs the chosen setting unchanged: nothing was tuned for it.
 *
 * Measured (two runs of `node demo/tune.ts --stage served --draws 6`, pooled: 12 draws a candidate; demo/TUNING.md):
 * (a) 93.50%; no candidate clears (a) by 5 sds at this device count (the best, q = 1 × 2 rounds, 3.4 sd; each run alone
 * named a different one), so the best mean of all decides: 3 rounds at q = 0.5, +0.59 ± 0.23 points, ~100 updates a
 * round. The recipe's 10 rounds at q = 0.2: −3.51.
 */
import type { Backend } from "@fedge/gpu-node";
import type { MlpParams } from "@fedge/ml";
import type { Dataset } from "fedge/data";
import type { RandomBytes } from "@fedge/privacy";
import { runSimulation } from "fedge";
import { int8Accuracy } from "./in-process.ts";
import { SMALL_RUN_MARGIN_SDS } from "./small-run.ts";
import {
  RECIPE,
  populationConfig,
  pretrainPublic,
  recipeAt,
  tuningData,
  withFixedClip,
  type FederatedRecipe,
} from "./setting.ts";

/** The served comparison's setting: its devices, the ε it was tuned at, and its overrides of the tuned recipe. */
export interface ServedSetting {
  /** Devices of the served comparison (the demo's `modesClients` default). */
  clients: number;
  /** The headline ε the rounds were chosen at (δ = 1e-5). */
  epsilon: number;
  /** Overrides of the tuned recipe at `epsilon` (with its fixed C): rounds and q. */
  recipe: Pick<FederatedRecipe, "rounds" | "samplingRate">;
}

/** Rounds tried at each q, cheapest first (the recipe's 10 is the last). */
export const SERVED_ROUNDS_CANDIDATES = [1, 2, 3, 4, 5, 6, 8, 10] as const;

/** q tried, the recipe's first: a larger q only where no candidate at the smaller one clears (a) (see the rule). */
export const SERVED_RATE_CANDIDATES = [0.2, 0.5, 1] as const;

/**
 * The served comparison's cost bound: no candidate asks a device for more updates than the recipe (q·R ≤ 0.2 × 10 =
 * 2), so no candidate is slower through the edge in central mode than the setting it replaces.
 */
export const SERVED_MAX_UPDATES_PER_DEVICE = RECIPE.samplingRate * RECIPE.rounds;

/** The candidates in the rule's order: q ascending, then rounds ascending, within the cost bound. */
export function servedCandidates(base: ServedSetting = SERVED_SETTING): ServedSetting[] {
  const out: ServedSetting[] = [];
  for (const samplingRate of SERVED_RATE_CANDIDATES)
    for (const rounds of SERVED_ROUNDS_CANDIDATES)
      if (samplingRate * rounds <= SERVED_MAX_UPDATES_PER_DEVICE + 1e-9)
        out.push({ ...base, recipe: { rounds, samplingRate } });
  return out;
}

/** A candidate must beat the current choice by this much validation accuracy (0.05 points) to replace it. */
export const SERVED_MIN_GAIN = 0.0005;

/**
 * "Clearly above (a)": a candidate's mean margin over the public-only model must be at least this many standard
 * deviations of its draws (the small run's bar, `SMALL_RUN_MARGIN_SDS`).
 */
export const SERVED_MARGIN_SDS = SMALL_RUN_MARGIN_SDS;

/**
 * The served comparison's setting (see the module header): chosen by central mode's validation accuracy at ε = 1 on 200
 * devices; distributed mode runs it unchanged.
 */
export const SERVED_SETTING: ServedSetting = {
  clients: 200,
  epsilon: 1,
  recipe: { rounds: 3, samplingRate: 0.5 },
};

/** `recipe` (the demo's, at the headline ε) with the served comparison's rounds and q, and its clip norm fixed. */
export function servedRecipe(recipe: FederatedRecipe, setting: ServedSetting = SERVED_SETTING): FederatedRecipe {
  return withFixedClip({ ...recipe, ...setting.recipe });
}

/** What {@link servedSettingScore} measured for one candidate. */
export interface ServedSettingScore {
  /** (a)'s int8 accuracy on the validation pool. */
  publicOnly: number;
  /** Per draw: the last round's int8 validation accuracy of central mode. */
  finals: number[];
  mean: number;
  /** Sample standard deviation of the finals. */
  sd: number;
  /** Central mode's z at the setting's ε. */
  noiseMultiplier: number;
}

/** The tuning split's devices (a `fleet`-device partition), its validation pool and seed 1's public model (a). */
export interface ServedTuningSplit {
  devices: Dataset[];
  validation: Dataset;
  initial: MlpParams;
  /** (a)'s int8 accuracy on the validation pool. */
  publicOnly: number;
}

/** Builds the split {@link servedSettingScore} runs on (pretraining (a) included). */
export function servedTuningSplit(fleet: number): ServedTuningSplit {
  const data = tuningData({ clients: fleet, seed: 1 });
  const initial = pretrainPublic(data.public, { seed: 1 });
  return {
    devices: data.devices,
    validation: data.validation,
    initial,
    publicOnly: int8Accuracy(initial, data.validation),
  };
}

/**
 * Runs `setting` in CENTRAL mode in process on the tuning split `draws` times (the demo's round engine, strategy and
 * device code) from seed 1's public model, and measures each last round's int8 accuracy on the validation pool.
 * `randomOf(k)` is draw k's source of sampling coins and server noise (default: the CSPRNG; a test passes seeded
 * streams to replay the same draws). `fleet` is the partition the devices are the first of.
 */
export async function servedSettingScore(o: {
  backend: Backend;
  setting: ServedSetting;
  draws: number;
  fleet?: number;
  /** The split and public model, when several candidates share them (pretraining is most of a candidate's time). */
  split?: ServedTuningSplit;
  randomOf?: (draw: number) => RandomBytes;
}): Promise<ServedSettingScore> {
  if (!Number.isInteger(o.draws) || o.draws < 2) throw new RangeError(`draws must be an integer >= 2, got ${o.draws}`);
  const { setting } = o;
  const fleet = o.fleet ?? 1000;
  if (!Number.isInteger(setting.clients) || setting.clients < 1 || setting.clients > fleet)
    throw new RangeError(`setting.clients must be an integer in [1, ${fleet}], got ${setting.clients}`);
  const { devices: all, validation, initial, publicOnly } = o.split ?? servedTuningSplit(fleet);
  if (all.length !== fleet) throw new RangeError(`the split has ${all.length} devices, not the fleet's ${fleet}`);
  const devices = all.slice(0, setting.clients);
  const recipe = servedRecipe(recipeAt(setting.epsilon), setting);
  const { config, noiseMultiplier } = populationConfig({
    name: "served-setting",
    clients: setting.clients,
    epsilon: setting.epsilon,
    delta: 1e-5,
    recipe,
    privacy: "central",
  });
  const finals: number[] = [];
  for (let k = 0; k < o.draws; k++) {
    let last = initial;
    await runSimulation({
      config,
      backend: o.backend,
      clients: setting.clients,
      rounds: recipe.rounds,
      mode: "mnist",
      // the batch order on the devices varies with the draw too
      seed: k + 1,
      evaluate: "last-round",
      data: { shards: devices, heldOut: validation },
      initialModel: initial,
      ...(o.randomOf ? { random: o.randomOf(k) } : {}),
      onRound: (_r, model) => {
        last = model;
      },
      log: () => undefined,
    });
    finals.push(int8Accuracy(last, validation));
  }
  const mean = finals.reduce((s, m) => s + m, 0) / finals.length;
  const sd = Math.sqrt(finals.reduce((s, m) => s + (m - mean) ** 2, 0) / (finals.length - 1));
  return { publicOnly, finals, mean, sd, noiseMultiplier: noiseMultiplier! };
}

/** A scored candidate, as the rule sees it. */
export interface ScoredServedSetting {
  setting: ServedSetting;
  mean: number;
  sd: number;
  publicOnly: number;
}

/** Whether `c` is clearly above (a): its mean margin is at least {@link SERVED_MARGIN_SDS} sds of its draws. */
export function clearsPublicOnly(c: Omit<ScoredServedSetting, "setting">): boolean {
  return c.mean - c.publicOnly > 0 && c.mean - c.publicOnly >= SERVED_MARGIN_SDS * c.sd;
}

/**
 * The rule's choice among scored candidates (given in {@link servedCandidates}' order). At each q in turn (the
 * recipe's first): among the candidates clearly above (a) ({@link clearsPublicOnly}), in order of rounds, the first,
 * replaced by a later one only when that beats the current choice's mean by at least {@link SERVED_MIN_GAIN}; the
 * first q with such a candidate decides. When no candidate at any q clears (a), the same choice over all of them.
 */
export function chooseServedSetting(scored: readonly ScoredServedSetting[]): ScoredServedSetting {
  if (scored.length === 0) throw new RangeError("no candidates to choose from");
  const best = (xs: readonly ScoredServedSetting[]) => {
    let chosen = xs[0]!;
    for (const s of xs.slice(1)) if (s.mean >= chosen.mean + SERVED_MIN_GAIN) chosen = s;
    return chosen;
  };
  const rates = [...new Set(scored.map((s) => s.setting.recipe.samplingRate))];
  for (const q of rates) {
    const clear = scored.filter((s) => s.setting.recipe.samplingRate === q && clearsPublicOnly(s));
    if (clear.length > 0) return best(clear);
  }
  return best(scored);
}

/** The served comparison's recipe for a demo run, and why it has those rounds and that q (for the report). */
export interface ServedRecipeChoice {
  /** The recipe both served modes run (its clip norm fixed). */
  recipe: FederatedRecipe;
  why: string;
}

/**
 * The served comparison's recipe: {@link SERVED_SETTING}'s rounds and q where it was tuned (its device count and ε,
 * no caller override of rounds or q); otherwise the demo's recipe as it is, and the report says so.
 */
export function servedRecipeFor(o: {
  /** The demo's recipe at the headline ε (caller overrides applied). */
  recipe: FederatedRecipe;
  /** The caller's overrides of the tuned recipe. */
  overrides?: Partial<FederatedRecipe> | undefined;
  clients: number;
  epsilon: number;
}): ServedRecipeChoice {
  const s = SERVED_SETTING;
  if (o.overrides?.rounds !== undefined || o.overrides?.samplingRate !== undefined)
    return {
      recipe: withFixedClip(o.recipe),
      why: "the caller's recipe override, not tuned for the served comparison",
    };
  if (o.clients === s.clients && o.epsilon === s.epsilon)
    return {
      recipe: servedRecipe(o.recipe, s),
      why:
        `chosen for central mode alone, on the validation pool, at ${s.clients} devices and ε = ${s.epsilon} ` +
        `(demo/TUNING.md, \`node demo/tune.ts --stage served\`); distributed mode runs it unchanged`,
    };
  return {
    recipe: withFixedClip(o.recipe),
    why:
      `the demo's recipe, tuned for the 1,000-device fleet: the served setting (${s.recipe.rounds} rounds) was tuned ` +
      `only for ${s.clients} devices at ε = ${s.epsilon}`,
  };
}
