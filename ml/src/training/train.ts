/**
 * @module
 * Local training on a device: minibatch SGD on the mean softmax cross-entropy (optionally plus an L2 penalty), over
 * every layer (`all`) or only the last one (`head`: the feature layers are frozen, so their outputs are computed once
 * and the head is trained on them — few-parameter fine-tuning).
 *
 * One step on batch `B`: `θ ← θ − η · (∇θ (1/|B|) Σ_{r∈B} CE(f_θ(x_r), y_r) + λ·θ_W)`, the FedAvg client update
 * (McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized Data", arXiv:1602.05629 §2,
 * Algorithm 1, ClientUpdate).
 */
import type { MlpParams } from "../model-layout/mlp.ts";
import type { TrainableScope } from "@fedge/protocol";
import {
  backwardBatch,
  cloneMlp,
  createWorkspace,
  firstTrainableLayer,
  forEachChunk,
  forwardBatch,
  gatherRows,
} from "./mlp.ts";
import { cryptoRandomBytes, type RandomBytes } from "@fedge/privacy";
import { randomPermutation, UniformSource } from "./random.ts";
import { checkDataset, checkFiniteParams, checkParams, checkScope, firstNonFinite, type Labels } from "./validate.ts";

/** Options of `trainLocal`. */
export interface TrainOptions {
  /** Passes over the data (positive integer). */
  epochs: number;
  /** Samples per SGD step (positive integer); the last batch of an epoch may be smaller. */
  batchSize: number;
  /** SGD step size η (positive, finite). */
  learningRate: number;
  /** `all`: train every layer; `head`: freeze all but the last layer, whose parameters alone change. */
  scope: TrainableScope;
  /**
   * Random bytes for shuffling the samples each epoch (Fisher–Yates). Pass `xoshiroRandomBytes(seed)` for a
   * reproducible run. Ignored when `shuffle` is given.
   * @default cryptoRandomBytes from @fedge/protocol (crypto.getRandomValues)
   */
  random?: RandomBytes;
  /**
   * Returns the sample order of an epoch: a permutation of `0..n-1` (checked). Use `(n) => identity` for no shuffling.
   * @default a uniformly random permutation drawn from `random`
   */
  shuffle?: (n: number) => Uint32Array;
  /**
   * L2 penalty λ on the trainable weights (not biases): adds `λ/2 · ‖W‖²` to the objective (weight decay).
   * @default 0
   */
  l2?: number;
}

/** Result of `trainLocal`. */
export interface TrainResult {
  /** The trained model: a new copy; the input `params` is untouched. Frozen layers are equal copies. */
  params: MlpParams;
  /**
   * Mean cross-entropy over the samples of the last epoch, each measured in the forward pass of its own step (before
   * that step's update), without the L2 term.
   */
  loss: number;
  /** Number of SGD steps taken: `epochs · ceil(n / batchSize)`. */
  steps: number;
}

/**
 * Train `params` on `x` (row-major `n × inFeatures`) with labels `y` by minibatch SGD.
 * @throws {TypeError} on wrong argument types (non-Float32Array x, unknown scope, shuffle not returning a Uint32Array).
 * @throws {RangeError} on bad sizes or values: x/y length mismatch, empty data, labels outside `[0, classes)`,
 *   non-finite features or parameters, epochs/batchSize not positive integers, learningRate ≤ 0, l2 < 0, a shuffle
 *   that is not a permutation, or a training run that diverges to non-finite values.
 */
export function trainLocal(params: MlpParams, x: Float32Array, y: Labels, options: TrainOptions): TrainResult {
  checkParams(params);
  checkFiniteParams(params);
  const n = checkDataset(params, x, y);
  checkOptions(options);
  const { epochs, batchSize, learningRate: lr, scope } = options;
  const l2 = options.l2 ?? 0;
  const shuffle = options.shuffle ?? defaultShuffle(options.random ?? cryptoRandomBytes);

  const result = cloneMlp(params);
  const first = firstTrainableLayer(result, scope);
  // With frozen feature layers, compute their output once and train the head alone on it.
  let model: MlpParams = result;
  let inputs: Float32Array | Float64Array = x;
  if (first > 0) {
    const width = result.layers[first]!.inFeatures;
    const features = new Float64Array(n * width);
    forEachChunk(
      result,
      x,
      n,
      (ws, start, rows) => features.set(ws.acts[first - 1]!.subarray(0, rows * width), start * width),
      undefined,
      first,
    );
    inputs = features;
    model = { layers: [result.layers[first]!] };
  }

  const width = model.layers[0]!.inFeatures;
  const B = Math.min(batchSize, n);
  const ws = createWorkspace(model, B, 0);
  const L = model.layers.length;
  let loss = NaN;
  let steps = 0;
  for (let epoch = 0; epoch < epochs; epoch++) {
    const order = shuffle(n);
    checkPermutation(order, n);
    let total = 0;
    for (let start = 0; start < n; start += B) {
      const rows = Math.min(B, n - start);
      gatherRows(inputs, width, order, start, rows, ws.input);
      for (let r = 0; r < rows; r++) ws.labels[r] = y[order[start + r]!]!;
      for (let l = 0; l < L; l++) {
        ws.gradW[l]!.fill(0);
        ws.gradB[l]!.fill(0);
      }
      forwardBatch(model, ws, rows);
      total += backwardBatch(model, ws, rows, 0, 1 / rows);
      for (let l = 0; l < L; l++) sgdStep(model.layers[l]!.weight, ws.gradW[l]!, lr, l2);
      for (let l = 0; l < L; l++) sgdStep(model.layers[l]!.bias, ws.gradB[l]!, lr, 0);
      steps++;
    }
    loss = total / n;
    if (
      !Number.isFinite(loss) ||
      model.layers.some((l) => firstNonFinite(l.weight) >= 0 || firstNonFinite(l.bias) >= 0)
    ) {
      throw new RangeError(`training diverged in epoch ${epoch + 1} (loss ${loss}); lower the learning rate (${lr})`);
    }
  }
  return { params: result, loss, steps };
}

/** `θ ← θ − η · (g + λ·θ)`, in place (θ is float32, the arithmetic double). */
function sgdStep(theta: Float32Array, grad: Float64Array, lr: number, l2: number): void {
  if (l2 === 0) {
    for (let k = 0; k < theta.length; k++) theta[k] = theta[k]! - lr * grad[k]!;
  } else {
    for (let k = 0; k < theta.length; k++) theta[k] = theta[k]! - lr * (grad[k]! + l2 * theta[k]!);
  }
}

function defaultShuffle(random: RandomBytes): (n: number) => Uint32Array {
  const source = new UniformSource(random);
  return (n) => randomPermutation(n, source);
}

function checkOptions(options: TrainOptions): void {
  if (options === null || typeof options !== "object") throw new TypeError("options must be a TrainOptions object");
  const { epochs, batchSize, learningRate, l2, random, shuffle } = options;
  if (!Number.isInteger(epochs) || epochs < 1) throw new RangeError(`epochs must be a positive integer, got ${epochs}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  }
  if (typeof learningRate !== "number" || !Number.isFinite(learningRate) || learningRate <= 0) {
    throw new RangeError(`learningRate must be a positive finite number, got ${learningRate}`);
  }
  if (l2 !== undefined && (typeof l2 !== "number" || !Number.isFinite(l2) || l2 < 0)) {
    throw new RangeError(`l2 must be a non-negative finite number, got ${l2}`);
  }
  checkScope(options.scope);
  if (random !== undefined && typeof random !== "function")
    throw new TypeError("random must be a RandomBytes function");
  if (shuffle !== undefined && typeof shuffle !== "function")
    throw new TypeError("shuffle must be a function (n) => Uint32Array");
}

function checkPermutation(order: unknown, n: number): asserts order is Uint32Array {
  if (!(order instanceof Uint32Array)) throw new TypeError("shuffle(n) must return a Uint32Array");
  if (order.length !== n) throw new RangeError(`shuffle(n) returned ${order.length} indices, expected ${n}`);
  const seen = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const k = order[i]!;
    if (k >= n || seen[k])
      throw new RangeError(`shuffle(n) did not return a permutation of 0..${n - 1} (index ${i}: ${k})`);
    seen[k] = 1;
  }
}
