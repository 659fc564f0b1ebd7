/**
 * @module
 * Evaluation over a whole dataset: predicted classes, accuracy and mean cross-entropy, computed chunk by chunk.
 */
import type { MlpParams } from "../model-layout/mlp.ts";
import { forEachChunk } from "./mlp.ts";
import { softmaxCrossEntropy } from "./softmax-cross-entropy.ts";
import { checkDataset, checkFeatures, checkParams, type Labels } from "./validate.ts";

/** Class with the largest logit for each of `n` samples (ties go to the lowest index). */
export function predictClasses(params: MlpParams, x: Float32Array, n: number): Int32Array {
  checkParams(params);
  checkFeatures(params, x, n);
  const out = new Int32Array(n);
  const L = params.layers.length;
  const K = params.layers[L - 1]!.outFeatures;
  forEachChunk(params, x, n, (ws, start, rows) => {
    const z = ws.acts[L - 1]!;
    for (let r = 0; r < rows; r++) {
      let best = 0;
      for (let j = 1; j < K; j++) if (z[r * K + j]! > z[r * K + best]!) best = j;
      out[start + r] = best;
    }
  });
  return out;
}

/** Fraction of samples whose predicted class equals the label, in `[0, 1]`. */
export function accuracy(params: MlpParams, x: Float32Array, y: Labels): number {
  checkParams(params);
  const n = checkDataset(params, x, y);
  const pred = predictClasses(params, x, n);
  let correct = 0;
  for (let i = 0; i < n; i++) if (pred[i] === y[i]) correct++;
  return correct / n;
}

/** Mean softmax cross-entropy (natural log) over the dataset. */
export function crossEntropyLoss(params: MlpParams, x: Float32Array, y: Labels): number {
  checkParams(params);
  const n = checkDataset(params, x, y);
  const L = params.layers.length;
  const K = params.layers[L - 1]!.outFeatures;
  let total = 0;
  forEachChunk(params, x, n, (ws, start, rows) => {
    total += softmaxCrossEntropy(ws.acts[L - 1]!, y.subarray(start, start + rows), rows, K, null);
  });
  return total / n;
}
