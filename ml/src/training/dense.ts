/**
 * @module
 * Forward and backward passes of one dense layer `y = act(x·W + b)` over a batch, as tight loops.
 *
 * Weights are the layout contract's `Float32Array` `W[in][out]` (row-major); activations and gradients are
 * `Float64Array` work buffers (rows × features), so sums accumulate in double precision. Loops run
 * batch → in → out with the innermost loop over `out`, contiguous in `W`; zero inputs (blank pixels, inactive ReLUs)
 * are skipped, which makes MNIST's first layer several times cheaper.
 */
import type { DenseLayer } from "../model-layout/mlp.ts";

/** `out[r][j] = act(b[j] + Σ_i input[r][i]·W[i][j])` for `rows` rows. */
export function denseForward(layer: DenseLayer, input: Float64Array, rows: number, out: Float64Array): void {
  const I = layer.inFeatures;
  const O = layer.outFeatures;
  const W = layer.weight;
  const b = layer.bias;
  for (let r = 0; r < rows; r++) {
    const o = r * O;
    for (let j = 0; j < O; j++) out[o + j] = b[j]!;
    const x = r * I;
    for (let i = 0; i < I; i++) {
      const a = input[x + i]!;
      if (a === 0) continue;
      const w = i * O;
      for (let j = 0; j < O; j++) out[o + j]! += a * W[w + j]!;
    }
    if (layer.activation === "relu") {
      for (let j = 0; j < O; j++) if (!(out[o + j]! > 0)) out[o + j] = 0;
    }
  }
}

/**
 * Turn `delta` = ∂L/∂(layer output) into ∂L/∂(pre-activation) in place, using the stored post-activation `output`
 * (ReLU'(z) = [z > 0] = [relu(z) > 0]).
 */
export function activationBackward(layer: DenseLayer, output: Float64Array, rows: number, delta: Float64Array): void {
  if (layer.activation !== "relu") return;
  const n = rows * layer.outFeatures;
  for (let k = 0; k < n; k++) if (!(output[k]! > 0)) delta[k] = 0;
}

/**
 * Accumulate the parameter gradients of one layer: `gradW[i][j] += Σ_r input[r][i]·delta[r][j]`,
 * `gradB[j] += Σ_r delta[r][j]`, where `delta` is ∂L/∂(pre-activation).
 */
export function denseParamGrad(
  layer: DenseLayer,
  input: Float64Array,
  delta: Float64Array,
  rows: number,
  gradW: Float64Array,
  gradB: Float64Array,
): void {
  const I = layer.inFeatures;
  const O = layer.outFeatures;
  for (let r = 0; r < rows; r++) {
    const d = r * O;
    for (let j = 0; j < O; j++) gradB[j]! += delta[d + j]!;
    const x = r * I;
    for (let i = 0; i < I; i++) {
      const a = input[x + i]!;
      if (a === 0) continue;
      const w = i * O;
      for (let j = 0; j < O; j++) gradW[w + j]! += a * delta[d + j]!;
    }
  }
}

/** Back-propagate to the layer input: `gradIn[r][i] = Σ_j W[i][j]·delta[r][j]`. */
export function denseInputGrad(layer: DenseLayer, delta: Float64Array, rows: number, gradIn: Float64Array): void {
  const I = layer.inFeatures;
  const O = layer.outFeatures;
  const W = layer.weight;
  for (let r = 0; r < rows; r++) {
    const d = r * O;
    const x = r * I;
    for (let i = 0; i < I; i++) {
      const w = i * O;
      let s = 0;
      for (let j = 0; j < O; j++) s += W[w + j]! * delta[d + j]!;
      gradIn[x + i] = s;
    }
  }
}
