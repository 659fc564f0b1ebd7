/**
 * @module
 * The parameter layout contract of trainable MLPs, shared by the ONNX exporter, the device trainer and the aggregator.
 *
 * A model is a stack of dense layers `y = act(x·W + b)`. `W` is row-major `[inFeatures][outFeatures]` (the layout of
 * ONNX `MatMul`'s B input), so output channel `j` is the column `W[·][j]`. An update vector is the concatenation, layer
 * by layer in order, of `W` then `b`, over the layers in the trainable scope: every layer (`all`) or the last one (`head`).
 */
import type { TrainableScope } from "@fedge/protocol";

export type Activation = "relu" | "none";

export interface DenseLayer {
  inFeatures: number;
  outFeatures: number;
  /** Row-major `[inFeatures][outFeatures]`. */
  weight: Float32Array;
  bias: Float32Array;
  activation: Activation;
}

export interface MlpParams {
  layers: DenseLayer[];
}

/** Indices of the layers a scope trains. */
export function trainableLayerIndices(params: MlpParams, scope: TrainableScope): number[] {
  if (params.layers.length === 0) throw new RangeError("model has no layers");
  return scope === "head" ? [params.layers.length - 1] : params.layers.map((_, i) => i);
}

/** Number of floats in an update for this scope. */
export function trainableLength(params: MlpParams, scope: TrainableScope): number {
  let n = 0;
  for (const i of trainableLayerIndices(params, scope)) {
    const l = params.layers[i]!;
    n += l.weight.length + l.bias.length;
  }
  return n;
}

/** Concatenate the trainable parameters into one vector, in layout order. */
export function flattenTrainable(params: MlpParams, scope: TrainableScope): Float32Array {
  const out = new Float32Array(trainableLength(params, scope));
  let offset = 0;
  for (const i of trainableLayerIndices(params, scope)) {
    const l = params.layers[i]!;
    out.set(l.weight, offset);
    offset += l.weight.length;
    out.set(l.bias, offset);
    offset += l.bias.length;
  }
  return out;
}

/** A copy of `params` with `vector` (in layout order) written over the trainable parameters. */
export function withTrainable(params: MlpParams, scope: TrainableScope, vector: Float32Array): MlpParams {
  const expected = trainableLength(params, scope);
  if (vector.length !== expected) {
    throw new RangeError(`update length ${vector.length} does not match the ${scope} layout (${expected})`);
  }
  const trainable = new Set(trainableLayerIndices(params, scope));
  let offset = 0;
  return {
    layers: params.layers.map((l, i) => {
      if (!trainable.has(i)) return { ...l, weight: l.weight.slice(), bias: l.bias.slice() };
      const weight = vector.slice(offset, offset + l.weight.length);
      offset += l.weight.length;
      const bias = vector.slice(offset, offset + l.bias.length);
      offset += l.bias.length;
      return { ...l, weight, bias };
    }),
  };
}

/** Check that layer shapes chain and buffers have the declared sizes. */
export function assertValidMlp(params: MlpParams): void {
  if (params.layers.length === 0) throw new RangeError("model has no layers");
  params.layers.forEach((l, i) => {
    if (l.weight.length !== l.inFeatures * l.outFeatures) {
      throw new RangeError(
        `layer ${i}: weight has ${l.weight.length} values, expected ${l.inFeatures}×${l.outFeatures}`,
      );
    }
    if (l.bias.length !== l.outFeatures) {
      throw new RangeError(`layer ${i}: bias has ${l.bias.length} values, expected ${l.outFeatures}`);
    }
    const prev = params.layers[i - 1];
    if (prev && prev.outFeatures !== l.inFeatures) {
      throw new RangeError(`layer ${i}: input ${l.inFeatures} does not match previous output ${prev.outFeatures}`);
    }
  });
}
