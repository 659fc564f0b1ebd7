/**
 * @module
 * Which cohort and which ε the central-vs-distributed comparison (`npm run demo -- --privacy distributed`, (e)) runs
 * at, by stated rules, as pure functions of the setting (docs/PRIVACY.md, "Which neighbour").
 *
 * - A **checked-in cohort** (the default: every device that checks in adds its noise share, a coin-excluded one with a
 *   zero update) is charged for zero-out neighbours amplified by the coin. Nothing but z sets its ε, so the in-process
 *   comparison runs distributed mode at **central's own q**, the recipe's (tuned on the validation pool for central
 *   mode, demo/TUNING.md), with the default n_min = ⌈0.8·N⌉ of the N check-ins: no search, and nothing in the
 *   comparison is tuned on the test digits.
 * - A **sampled cohort** (only the coin's devices add shares) is charged for add/remove neighbours: a device's share
 *   leaving the sum changes its variance, a floor of ε that no z removes and that shrinks only with more guaranteed
 *   shares n_min (or a shorter padded update d'). It cannot keep the recipe's q = 0.2 at ε = 1, so:
 *   - in process ({@link inProcessCohort}): the headline ε for both modes, on the smallest q (and then the smallest
 *     n_min) at which the distributed solver meets it;
 *   - served ({@link servedEpsilon}): the served devices keep the recipe's q, and both modes run at the headline ε
 *     when the distributed plan reaches it, else at the smallest ε on a 0.5 grid at or above 1.1× the floor that it
 *     reaches.
 */
import { InvalidPrivacyParameterError, distributedEpsilonFloor, paddedLength } from "@fedge/privacy";
import {
  distributedSharesFor,
  noiseSharesOf,
  populationConfig,
  type DistributedCohortKind,
  type FederatedRecipe,
} from "./setting.ts";

/** Step of the in-process rule's q grid, from the recipe's q up to 1. */
export const COHORT_RATE_STEP = 0.05;
/**
 * The fractions of q·N a round's sum may need (n_min = ⌈f·q·N⌉), tried in this order: 0.8 is the demo's usual
 * allowance (a fifth of the selected devices may drop out); 0.9 still lets a tenth drop.
 */
export const MIN_REPORT_FRACTIONS = [0.8, 0.85, 0.9] as const;
/** The served rule's margin over the floor and its grid of ε. */
export const SERVED_FLOOR_MARGIN = 1.1;
export const SERVED_EPSILON_STEP = 0.5;

/** The setting a rule plans for: the fleet, the target, the recipe with its fixed C, and the update's length. */
export interface CohortQuery {
  clients: number;
  epsilon: number;
  delta: number;
  /** The comparison's recipe (fixed clip norm); its q is where the in-process rule starts. */
  recipe: FederatedRecipe;
  /** Values in one update (the trainable parameters). */
  updateLength: number;
  /** Who adds noise shares. @default "checked-in" */
  cohort?: DistributedCohortKind;
}

/** A cohort that reaches its ε in distributed mode: the recipe to run and what was chosen. */
export interface DistributedCohort {
  /** The query's recipe at the chosen q and n_min fraction. */
  recipe: FederatedRecipe;
  samplingRate: number;
  /** q·N: the sampled devices a round expects (both modes divide by it). */
  expectedClients: number;
  /** Who adds noise shares, and n: how many a round expects (N check-ins, or q·N). */
  cohort: DistributedCohortKind;
  noiseShares: number;
  /** n_min: the fewest inputs a sum is released with (check-ins for a checked-in cohort). */
  minClients: number;
  /** Distributed mode's z at the target; central's z at the same q. */
  noiseMultiplier: number;
  centralNoiseMultiplier: number;
  /** The add/remove charge's floor at this cohort (ε below which no z goes); 0 for a checked-in cohort. */
  floor: number;
  /** The floor at the recipe's own q and n_min (the sampled rule moves away from it). */
  recipeFloor: number;
  /** The rule, in words, for the report. */
  rule: string;
}

const fixed2 = (x: number) => Number(x.toFixed(2));

/**
 * The ε floor of the add/remove charge for `recipe` on `clients` devices (n_min − 1 honest shares besides the
 * device's own); 0 for a checked-in cohort, whose zero-out charge has no variance term.
 */
export function distributedFloor(q: Omit<CohortQuery, "epsilon">): number {
  if ((q.cohort ?? "checked-in") === "checked-in") return 0;
  const { minClients } = distributedSharesFor(q.recipe, q.clients, "sampled");
  return distributedEpsilonFloor(
    paddedLength(q.updateLength),
    minClients - 1,
    q.recipe.samplingRate,
    q.recipe.rounds,
    q.delta,
  );
}

/** Both modes' z at `recipe` and `epsilon` (the populations' own solvers); null when distributed cannot reach it. */
function noiseAt(q: CohortQuery): { distributed: number; central: number } | null {
  const at = { name: "cohort", clients: q.clients, epsilon: q.epsilon, delta: q.delta, recipe: q.recipe };
  let distributed: number;
  try {
    distributed = populationConfig({
      ...at,
      privacy: "distributed",
      updateLength: q.updateLength,
      cohort: q.cohort ?? "checked-in",
    }).noiseMultiplier!;
  } catch (e) {
    if (e instanceof InvalidPrivacyParameterError && e.reason === "unreachable_target") return null;
    throw e;
  }
  return { distributed, central: populationConfig({ ...at, privacy: "central" }).noiseMultiplier! };
}

/**
 * The in-process rule. A checked-in cohort: the recipe's own q and n_min fraction (central's q; see the module header),
 * refused only if the solver cannot reach the target there. A sampled cohort: q from the recipe's own upward in steps of {@link COHORT_RATE_STEP} (only q with an integer
 * q·N), and at each q the n_min fractions of {@link MIN_REPORT_FRACTIONS} in order; the first pair at which the
 * distributed solver meets the target ε is the cohort, for both modes. Throws a RangeError when none up to q = 1 does.
 */
export function inProcessCohort(q: CohortQuery): DistributedCohort {
  const cohort = q.cohort ?? "checked-in";
  const recipeFloor = distributedFloor(q);
  if (cohort === "checked-in") {
    const z = noiseAt(q);
    if (z === null) throw new RangeError(`distributed mode does not reach ε = ${q.epsilon} at the recipe's q`);
    const shares = distributedSharesFor(q.recipe, q.clients, cohort);
    const n = noiseSharesOf(q.recipe, q.clients, cohort);
    return {
      recipe: q.recipe,
      samplingRate: q.recipe.samplingRate,
      expectedClients: q.recipe.samplingRate * q.clients,
      cohort,
      noiseShares: n,
      minClients: shares.minClients,
      noiseMultiplier: z.distributed,
      centralNoiseMultiplier: z.central,
      floor: 0,
      recipeFloor,
      rule:
        `central's own q = ${q.recipe.samplingRate} (the recipe's, tuned for central mode on the validation pool; ` +
        `nothing here is tuned on the test digits), since with every device's share in both neighbouring sums the ` +
        `charge (zero-out, amplified by the coin) has no add/remove floor to search around; n_min = ` +
        `⌈${q.recipe.minReportFraction ?? 0.8}·${n}⌉ = ${shares.minClients}, the config's default`,
    };
  }
  const tried: string[] = [];
  for (let k = 0; ; k++) {
    const rate = fixed2(q.recipe.samplingRate + k * COHORT_RATE_STEP);
    if (rate > 1) break;
    const expected = rate * q.clients;
    if (!Number.isInteger(expected)) continue;
    for (const fraction of MIN_REPORT_FRACTIONS) {
      const recipe: FederatedRecipe = { ...q.recipe, samplingRate: rate, minReportFraction: fraction };
      const z = noiseAt({ ...q, recipe });
      const minClients = distributedSharesFor(recipe, q.clients, cohort).minClients;
      if (z === null) {
        tried.push(`q ${rate} n_min ${minClients}`);
        continue;
      }
      return {
        recipe,
        samplingRate: rate,
        expectedClients: expected,
        cohort,
        noiseShares: expected,
        minClients,
        noiseMultiplier: z.distributed,
        centralNoiseMultiplier: z.central,
        floor: distributedFloor({ ...q, recipe }),
        recipeFloor,
        rule:
          `the smallest q on a ${COHORT_RATE_STEP} grid from the recipe's q = ${q.recipe.samplingRate} (then the smallest ` +
          `n_min of ⌈${MIN_REPORT_FRACTIONS.join("/")}·q·N⌉) at which distributed mode's solver meets ε = ${q.epsilon} ` +
          `under the add/remove charge; at the recipe's q = ${q.recipe.samplingRate} (n_min ` +
          `${distributedSharesFor(q.recipe, q.clients, cohort).minClients}) that charge's ` +
          `floor alone is ε = ${recipeFloor.toFixed(2)}`,
      };
    }
  }
  throw new RangeError(
    `no cohort of ${q.clients} devices reaches ε = ${q.epsilon} in distributed mode over ${q.recipe.rounds} rounds ` +
      `(tried ${tried.length} settings: ${tried[0] ?? "none"} … ${tried.at(-1) ?? "none"}; floor at the recipe's q ` +
      `${recipeFloor.toFixed(3)}): use more devices or fewer rounds`,
  );
}

/** The ε the served comparison runs both modes at, and why. */
export interface ServedEpsilon {
  epsilon: number;
  /** The add/remove floor of the served distributed plan. */
  floor: number;
  /** Whether that is the headline ε (the plan reaches it). */
  headline: boolean;
  /** Distributed and central z at that ε. */
  noiseMultiplier: number;
  centralNoiseMultiplier: number;
  rule: string;
}

/**
 * The served rule: the headline ε when the served distributed plan (the recipe's q and n_min on the served devices)
 * reaches it; else the smallest multiple of {@link SERVED_EPSILON_STEP} at or above {@link SERVED_FLOOR_MARGIN}× its
 * floor that the solver meets (the next multiples tried in turn). Both modes run at that ε.
 */
export function servedEpsilon(q: CohortQuery): ServedEpsilon {
  const floor = distributedFloor(q);
  const head = noiseAt(q);
  if (head !== null) {
    return {
      epsilon: q.epsilon,
      floor,
      headline: true,
      noiseMultiplier: head.distributed,
      centralNoiseMultiplier: head.central,
      rule: `the headline ε: the served distributed plan reaches it (floor ε = ${floor.toFixed(2)})`,
    };
  }
  const start = Math.ceil((SERVED_FLOOR_MARGIN * floor) / SERVED_EPSILON_STEP) * SERVED_EPSILON_STEP;
  for (let epsilon = start; epsilon <= 64 * start; epsilon += SERVED_EPSILON_STEP) {
    const z = noiseAt({ ...q, epsilon });
    if (z === null) continue;
    const expected = q.recipe.samplingRate * q.clients;
    return {
      epsilon,
      floor,
      headline: false,
      noiseMultiplier: z.distributed,
      centralNoiseMultiplier: z.central,
      rule:
        `not ε = ${q.epsilon}: with ${expected} devices a round (q = ${q.recipe.samplingRate} of ${q.clients}, n_min ` +
        `${distributedSharesFor(q.recipe, q.clients, q.cohort ?? "checked-in").minClients}) the add/remove charge alone costs ` +
        `ε = ${floor.toFixed(2)} whatever z, so both modes run at the smallest multiple of ${SERVED_EPSILON_STEP} at or ` +
        `above ${SERVED_FLOOR_MARGIN}× that floor the distributed solver meets`,
    };
  }
  throw new RangeError(`the served distributed plan reaches no ε up to ${64 * start} (floor ${floor.toFixed(3)})`);
}
