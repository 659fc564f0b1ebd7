/**
 * @module
 * The MLP as a stack of dense layers (layout: @fedge/protocol `MlpParams`): batched forward, backward through the stack
 * with head-only freezing, and preallocated work buffers reused across batches.
 *
 * Back-propagation (Rumelhart, Hinton & Williams 1986): with `δ_L = ∂L/∂z_L` from the softmax cross-entropy,
 * `∂L/∂W_l = a_{l−1}ᵀ·δ_l`, `∂L/∂b_l = Σ_r δ_l`, `δ_{l−1} = (δ_l·W_lᵀ) ⊙ act'(z_{l−1})`. With scope `head` only the
 * last layer is differentiated; the recursion stops there, so frozen layers cost one forward pass.
 */
import type { DenseLayer, MlpParams } from "../model-layout/mlp.ts";
import type { TrainableScope } from "@fedge/protocol";
import { activationBackward, denseForward, denseInputGrad, denseParamGrad } from "./dense.ts";
import { softmaxCrossEntropy } from "./softmax-cross-entropy.ts";
import { checkDataset, checkFeatures, checkParams, checkScope, type Labels } from "./validate.ts";

/** Rows processed per chunk by the whole-dataset functions (forward, gradients, evaluation). */
export const CHUNK_ROWS = 256;

/** Preallocated buffers for batches of up to `capacity` rows. */
export interface Workspace {
  capacity: number;
  /** Batch input, `capacity × layers[0].inFeatures`. */
  input: Float64Array;
  /** Batch labels. */
  labels: Int32Array;
  /** Post-activation output of each layer, `capacity × outFeatures` (the last one holds the logits). */
  acts: Float64Array[];
  /** ∂L/∂(pre-activation) of each layer. */
  deltas: Float64Array[];
  /** Gradient accumulators of each layer (empty for layers never differentiated). */
  gradW: Float64Array[];
  gradB: Float64Array[];
}

/** Index of the first layer a scope trains. */
export function firstTrainableLayer(params: MlpParams, scope: TrainableScope): number {
  return scope === "head" ? params.layers.length - 1 : 0;
}

/** Allocate work buffers for `params`, with gradient buffers for layers `firstTrainable..`. */
export function createWorkspace(params: MlpParams, capacity: number, firstTrainable = params.layers.length): Workspace {
  const L = params.layers;
  return {
    capacity,
    input: new Float64Array(capacity * L[0]!.inFeatures),
    labels: new Int32Array(capacity),
    acts: L.map((l) => new Float64Array(capacity * l.outFeatures)),
    deltas: L.map(
      (l, i) => new Float64Array(i >= Math.min(firstTrainable, L.length - 1) ? capacity * l.outFeatures : 0),
    ),
    gradW: L.map((l, i) => new Float64Array(i >= firstTrainable ? l.weight.length : 0)),
    gradB: L.map((l, i) => new Float64Array(i >= firstTrainable ? l.bias.length : 0)),
  };
}

/** Copy rows `order[start..start+rows)` of `src` (row width `width`) into `dst`, converting to double. */
export function gatherRows(
  src: Float32Array | Float64Array,
  width: number,
  order: Uint32Array | null,
  start: number,
  rows: number,
  dst: Float64Array,
): void {
  for (let r = 0; r < rows; r++) {
    const s = (order ? order[start + r]! : start + r) * width;
    const d = r * width;
    for (let k = 0; k < width; k++) dst[d + k] = src[s + k]!;
  }
}

/** Forward `rows` rows of `ws.input` through layers `0..upTo` (exclusive); results in `ws.acts`. */
export function forwardBatch(params: MlpParams, ws: Workspace, rows: number, upTo = params.layers.length): void {
  let input = ws.input;
  for (let l = 0; l < upTo; l++) {
    const out = ws.acts[l]!;
    denseForward(params.layers[l]!, input, rows, out);
    input = out;
  }
}

/**
 * After `forwardBatch`, add `scale · ∂(Σ_r loss_r)/∂θ` for layers `firstTrainable..` into `ws.gradW/gradB` and return
 * the summed loss of the batch (labels in `ws.labels`).
 */
export function backwardBatch(
  params: MlpParams,
  ws: Workspace,
  rows: number,
  firstTrainable: number,
  scale: number,
): number {
  const L = params.layers.length;
  const classes = params.layers[L - 1]!.outFeatures;
  const loss = softmaxCrossEntropy(ws.acts[L - 1]!, ws.labels, rows, classes, ws.deltas[L - 1]!, scale);
  for (let l = L - 1; l >= firstTrainable; l--) {
    const layer = params.layers[l]!;
    const delta = ws.deltas[l]!;
    activationBackward(layer, ws.acts[l]!, rows, delta);
    const input = l === 0 ? ws.input : ws.acts[l - 1]!;
    denseParamGrad(layer, input, delta, rows, ws.gradW[l]!, ws.gradB[l]!);
    if (l > firstTrainable) denseInputGrad(layer, delta, rows, ws.deltas[l - 1]!);
  }
  return loss;
}

/** A deep copy (new weight and bias buffers). */
export function cloneMlp(params: MlpParams): MlpParams {
  return { layers: params.layers.map((l): DenseLayer => ({ ...l, weight: l.weight.slice(), bias: l.bias.slice() })) };
}

/**
 * Logits of `n` samples: row-major `n × outFeatures` of the last layer.
 * @param x row-major `n × inFeatures`, finite values.
 */
export function forward(params: MlpParams, x: Float32Array, n: number): Float32Array {
  checkParams(params);
  checkFeatures(params, x, n);
  const L = params.layers.length;
  const out = new Float32Array(n * params.layers[L - 1]!.outFeatures);
  forEachChunk(params, x, n, (ws, start, rows) => {
    const logits = ws.acts[L - 1]!;
    const w = params.layers[L - 1]!.outFeatures;
    for (let k = 0; k < rows * w; k++) out[start * w + k] = logits[k]!;
  });
  return out;
}

/** Run the forward pass chunk by chunk over the whole dataset, calling `visit` after each chunk. */
export function forEachChunk(
  params: MlpParams,
  x: Float32Array,
  n: number,
  visit: (ws: Workspace, start: number, rows: number) => void,
  ws: Workspace = createWorkspace(params, Math.min(CHUNK_ROWS, Math.max(1, n))),
  upTo = params.layers.length,
): void {
  const inF = params.layers[0]!.inFeatures;
  for (let start = 0; start < n; start += ws.capacity) {
    const rows = Math.min(ws.capacity, n - start);
    gatherRows(x, inF, null, start, rows, ws.input);
    forwardBatch(params, ws, rows, upTo);
    visit(ws, start, rows);
  }
}

/**
 * Gradient of the mean cross-entropy over all samples, shaped like `params` (`weight`/`bias` hold ∂L/∂W, ∂L/∂b).
 * Layers outside `scope` get zero gradients. Meant for tests (finite differences) and diagnostics.
 */
export function gradients(params: MlpParams, x: Float32Array, y: Labels, scope: TrainableScope): MlpParams {
  checkParams(params);
  checkScope(scope);
  const n = checkDataset(params, x, y);
  const first = firstTrainableLayer(params, scope);
  const ws = createWorkspace(params, Math.min(CHUNK_ROWS, n), first);
  forEachChunk(
    params,
    x,
    n,
    (w, start, rows) => {
      for (let r = 0; r < rows; r++) w.labels[r] = y[start + r]!;
      backwardBatch(params, w, rows, first, 1 / n);
    },
    ws,
  );
  return {
    layers: params.layers.map((l, i) => ({
      ...l,
      weight: i >= first ? Float32Array.from(ws.gradW[i]!) : new Float32Array(l.weight.length),
      bias: i >= first ? Float32Array.from(ws.gradB[i]!) : new Float32Array(l.bias.length),
    })),
  };
}
