/**
 * @module
 * In-process federated runs on the demo's data: `fedge simulate` (aggregator `runSimulation`), the same round engine,
 * DP-FedAvg strategy, Backend, server optimizer and device code (@fedge/ml `trainDeviceUpdate`, what the SDK's
 * `participate()` runs) as the run through the edge, without HTTP. The privacy–utility curve, the non-private ceiling,
 * the extra seeds of the headline ε and every tuning run go through {@link runInProcess}.
 */
import type { Backend } from "@fedge/gpu-node";
import { dequantizePerChannelInt8, flattenTrainable, quantizePerChannelInt8, type MlpParams } from "@fedge/ml";
import { evaluateModel, type EvalSet } from "fedge/evaluate";
import type { Dataset } from "fedge/data";
import { runSimulation } from "fedge";
import { populationConfig, type FederatedRecipe } from "./setting.ts";

/** Options of {@link runInProcess}. */
export interface InProcessOptions {
  backend: Backend;
  /** One shard per device. */
  devices: Dataset[];
  /** Where each round is measured (the test digits for the report, the validation pool when tuning). */
  heldOut: EvalSet;
  /** The model of round 0 (the public-only model). */
  initial: MlpParams;
  recipe: FederatedRecipe;
  /** Target ε (`null`: non-private, privacy mode none). */
  epsilon: number | null;
  /** DP mechanism of a private run (`populationConfig`); distributed needs a fixed clip. @default "central" */
  privacy?: "central" | "distributed";
  /** @default 1e-5 */
  delta?: number;
  /** Seed of the batch order on the devices (never of privacy noise or sampling: those come from the CSPRNG). */
  seed: number;
  /** Measure every round (for a plot by round), not only the last. @default false */
  everyRound?: boolean;
}

/** What one in-process run reached. */
export interface InProcessRun {
  epsilonTarget: number | null;
  /** ε spent, from the run's ledger (`null` when non-private). */
  epsilon: number | null;
  /** ε against the edge (`RoundEngine.privacySpentAgainstEdge`; null: no bound; absent when non-private). */
  epsilonAgainstEdge?: number | null;
  noiseMultiplier: number | null;
  seed: number;
  /** Held-out accuracy of the float32 model after every round (index 0 = round 1; NaN when not measured). */
  accuracy: number[];
  /** The clip norm C of every round (`null` when non-private). */
  clipNorm: (number | null)[];
  /** Held-out accuracy of the last round's model with int8 weights (what `/predict` would serve). */
  final: number;
  /** The DP mechanism that ran (`none` when non-private). */
  privacy: "central" | "distributed" | "none";
  /** Values in one update (the trainable parameters). */
  updateLength: number;
  /** What one device uploads, averaged over every update of the run (int8 payload, or the SecAgg encoding). */
  uploadBytesPerUpdate: number;
  /** Seconds of one device's step (train + clip + int8 compress, or train + encode), averaged over the rounds. */
  deviceSecondsPerUpdate: number;
  /**
   * Distributed, checked-in cohort: inputs of coin-excluded devices (a zero update and their noise share) a round, and
   * the seconds one takes to encode, averaged over the rounds (0 otherwise).
   */
  noiseOnlyPerRound: number;
  noiseOnlySecondsPerInput: number;
  /** Seconds of a round in process (sampling, every device step, aggregation, noise, evaluation), averaged. */
  roundSeconds: number;
  /** The last round's model (float32). */
  model: MlpParams;
  seconds: number;
}

/**
 * `model` with every weight matrix quantized to int8 and back, exactly as the exported ONNX file holds it (per-channel
 * symmetric, `@fedge/ml` quantize; biases stay float32): evaluating it in float32 gives the served model's predictions.
 */
export function int8Weights(model: MlpParams): MlpParams {
  return {
    layers: model.layers.map((l) => ({
      ...l,
      weight: dequantizePerChannelInt8(
        quantizePerChannelInt8(l.weight, l.inFeatures, l.outFeatures),
        l.inFeatures,
        l.outFeatures,
      ),
      bias: l.bias.slice(),
    })),
  };
}

/** Accuracy of `model`'s int8 version on `data` (see {@link int8Weights}). */
export function int8Accuracy(model: MlpParams, data: EvalSet): number {
  return evaluateModel(int8Weights(model), data).accuracy;
}

/** Runs `recipe.rounds` rounds in process and measures every round on `heldOut`. */
export async function runInProcess(o: InProcessOptions): Promise<InProcessRun> {
  const t0 = performance.now();
  const privacy = o.epsilon === null ? "none" : (o.privacy ?? "central");
  const { config, noiseMultiplier } = populationConfig({
    name: o.epsilon === null ? "in-process-none" : "in-process-dp",
    clients: o.devices.length,
    epsilon: o.epsilon,
    delta: o.delta ?? 1e-5,
    recipe: o.recipe,
    ...(privacy === "distributed"
      ? { privacy, updateLength: flattenTrainable(o.initial, o.recipe.trainable).length }
      : {}),
  });
  const accuracy: number[] = [];
  const clipNorm: (number | null)[] = [];
  let deviceSeconds = 0;
  let roundSeconds = 0;
  let noiseOnly = 0;
  let noiseOnlySeconds = 0;
  let model = o.initial;
  const summary = await runSimulation({
    config,
    backend: o.backend,
    clients: o.devices.length,
    rounds: o.recipe.rounds,
    mode: "mnist",
    seed: o.seed,
    evaluate: o.everyRound ? "every-round" : "last-round",
    data: { shards: o.devices, heldOut: o.heldOut },
    initialModel: o.initial,
    onRound: (r, m) => {
      accuracy.push(r.accuracy ?? NaN);
      clipNorm.push(r.clipNorm);
      deviceSeconds += r.deviceSecondsPerUpdate;
      roundSeconds += r.seconds;
      noiseOnly += r.noiseOnly;
      noiseOnlySeconds += r.deviceSecondsPerNoiseOnly;
      model = m;
    },
    log: () => undefined,
  });
  return {
    epsilonTarget: o.epsilon,
    epsilon: summary.epsilon,
    ...(summary.epsilonAgainstEdge !== undefined ? { epsilonAgainstEdge: summary.epsilonAgainstEdge } : {}),
    noiseMultiplier,
    seed: o.seed,
    accuracy,
    clipNorm,
    final: int8Accuracy(model, o.heldOut),
    privacy,
    updateLength: summary.params,
    uploadBytesPerUpdate: summary.uploadBytesPerUpdate,
    deviceSecondsPerUpdate: summary.roundsRun > 0 ? deviceSeconds / summary.roundsRun : 0,
    roundSeconds: summary.roundsRun > 0 ? roundSeconds / summary.roundsRun : 0,
    noiseOnlyPerRound: summary.roundsRun > 0 ? noiseOnly / summary.roundsRun : 0,
    noiseOnlySecondsPerInput: summary.roundsRun > 0 ? noiseOnlySeconds / summary.roundsRun : 0,
    model,
    seconds: (performance.now() - t0) / 1000,
  };
}
