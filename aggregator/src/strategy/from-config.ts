/**
 * @module
 * Builds a population's strategy and first clip state from its {@link PopulationConfig}: FedAvg (or a robust rule
 * for non-DP populations), wrapped by DP-FedAvg in `central` mode, by the local-DP wrapper in `local` mode and by the
 * distributed discrete Gaussian in `distributed` mode.
 */
import type { PopulationConfig } from "../config.ts";
import { createDpCentral, initialClipState } from "./dp-central.ts";
import { createDpDistributed, expectedCheckins } from "./dp-distributed.ts";
import { createDpLocal } from "./dp-local.ts";
import { createFedAvg } from "./fedavg.ts";
import { createRobust } from "./robust.ts";
import type { ClipState, Strategy } from "./strategy.ts";

/** The adaptive-clipping options of a config (undefined when C is fixed). */
function adaptiveOf(config: PopulationConfig) {
  const a = config.clipping.adaptive;
  if (!a || config.privacy.mode !== "central") return undefined;
  return {
    targetQuantile: a.targetQuantile,
    learningRate: a.learningRate,
    ...(a.countNoiseStd !== undefined ? { countNoiseStd: a.countNoiseStd } : {}),
  };
}

/** The strategy a config asks for. Throws `RobustWithDpError` for robust + DP (also refused by the config schema). */
export function strategyFromConfig(config: PopulationConfig): Strategy {
  const mode = config.privacy.mode;
  const inner = config.robust
    ? createRobust({
        kind: config.robust.kind,
        trimFraction: config.robust.trimFraction,
        maxClients: config.robust.maxClients,
      })
    : createFedAvg({ weighting: mode === "none" ? "examples" : "uniform" });
  if (mode === "central") {
    const adaptive = adaptiveOf(config);
    return createDpCentral(inner, {
      noiseMultiplier: config.privacy.noiseMultiplier,
      samplingRate: config.samplingRate,
      expectedClients: config.expectedClients,
      mechanism: config.privacy.mechanism,
      ...(adaptive ? { adaptive } : {}),
    });
  }
  if (mode === "local") return createDpLocal(inner, { noiseMultiplier: config.privacy.noiseMultiplier });
  if (mode === "distributed") {
    const d = config.privacy.distributed;
    const shares = distributedSharesExpected(config);
    return createDpDistributed(inner, {
      noiseMultiplier: config.privacy.noiseMultiplier,
      samplingRate: config.samplingRate,
      expectedClients: config.expectedClients,
      bits: d.bits,
      minClients: d.minClients ?? Math.ceil(0.8 * shares),
      maxClients: d.maxClients ?? 2 * shares,
      overflowProbability: d.overflowProbability,
      corruptFraction: d.corruptFraction,
      cohort: d.cohort,
    });
  }
  return inner;
}

/**
 * The noise shares a distributed config's round expects, n_expected: its expected check-ins, expectedClients /
 * samplingRate (`expectedCheckins`), for a `checked-in` cohort; expectedClients for a `sampled` one. The defaults
 * count against it: n_min = ⌈0.8·n_expected⌉ (a fifth of them may drop out), n_max = 2·n_expected.
 */
export function distributedSharesExpected(config: PopulationConfig): number {
  return config.privacy.distributed.cohort === "checked-in"
    ? expectedCheckins(config.expectedClients, config.samplingRate)
    : config.expectedClients;
}

/** The clip state of round 1 for a config. */
export function initialClipStateOf(config: PopulationConfig): ClipState {
  return initialClipState(config.clipping.clipNorm, config.expectedClients, adaptiveOf(config));
}
