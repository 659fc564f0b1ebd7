/**
 * @module
 * The one-shot privacy audit (Andrew et al. 2024, arXiv 2302.03098) of a population config, run in one process:
 * `fedge simulate`'s round pipeline with k canary clients added to the population (`canaries.ts`), then ε̂ from the
 * final model delta's cosines with the inserted and the never-inserted canaries, next to the accountant's ε for the
 * rounds that ran. The edge version is `edge-audit.ts` (`fedge audit`).
 */
import { estimateEpsilonOneShot, type OneShotAuditEstimate, type RandomBytes } from "@fedge/privacy";
import { flattenTrainable, type MlpParams } from "@fedge/ml";
import { runSimulation, syntheticModel, type SimSummary, type SimulateOptions } from "../simulate/simulate.ts";
import { CanarySet } from "./canaries.ts";

/** Options of {@link runAuditSimulation}: a simulation (no checkpoint store: an audit starts fresh) plus canaries. */
export interface AuditSimulationOptions extends Omit<SimulateOptions, "store" | "canaries" | "exportDir"> {
  /** Canaries inserted (k). */
  canaries: number;
  /** Canaries never inserted (k'). @default canaries */
  heldCanaries?: number;
  /** δ of ε̂. @default the budget's δ (1e-5 without one) */
  delta?: number;
  /** Bootstrap interval coverage. @default 0.95 */
  confidence?: number;
  /** Bootstrap resamples. @default 1000 */
  resamples?: number;
  /** Randomness of the canary directions and the bootstrap. @default cryptoRandomBytes */
  canaryRandom?: RandomBytes;
}

export interface AuditSimulationResult {
  /** The accountant's ε at `delta` for the rounds that ran (null in mode `none`). */
  epsilon: number | null;
  estimate: OneShotAuditEstimate;
  simulation: SimSummary;
}

export async function runAuditSimulation(o: AuditSimulationOptions): Promise<AuditSimulationResult> {
  const { canaries: k, heldCanaries, delta, confidence, resamples, canaryRandom, ...sim } = o;
  let initial: MlpParams;
  if (sim.mode === "synthetic") initial = syntheticModel(sim.params ?? 100_000);
  else if (sim.initialModel) initial = sim.initialModel;
  else throw new RangeError("an mnist audit needs its initialModel (the delta is measured from it)");
  const scope = sim.config.trainable;
  const start = flattenTrainable(initial, scope);
  const set = CanarySet.create({
    length: start.length,
    inserted: k,
    ...(heldCanaries !== undefined ? { held: heldCanaries } : {}),
    ...(canaryRandom ? { random: canaryRandom } : {}),
  });
  let final: Float32Array = start;
  const simulation = await runSimulation({
    ...sim,
    canaries: set,
    onRound: (report, model) => {
      final = flattenTrainable(model, scope);
      sim.onRound?.(report, model);
    },
  });
  const auditDelta = delta ?? sim.config.privacy.budget?.delta ?? 1e-5;
  const { observed, unobserved } = set.cosines(start, final);
  const estimate = estimateEpsilonOneShot({
    observed,
    unobserved,
    delta: auditDelta,
    ...(confidence !== undefined ? { confidence } : {}),
    ...(resamples !== undefined ? { resamples } : {}),
    ...(canaryRandom ? { random: canaryRandom } : {}),
  });
  return { epsilon: simulation.epsilon, estimate, simulation };
}
