/**
 * @module
 * The model update a device sends: `Δ = w_after − w_before` over the trainable scope, flattened in the layout order of
 * @fedge/protocol (`flattenTrainable`): layer by layer, `W` then `b`. `withTrainable(before, scope, before + Δ)` restores
 * `after` up to float32 rounding.
 */
import type { TrainableScope } from "@fedge/protocol";
import { trainableLayerIndices, type MlpParams } from "../model-layout/mlp.ts";
import { checkParams, checkScope } from "./validate.ts";

/** `after − before` over the layers of `scope`, flattened (computed in float64, rounded once to float32). */
export function computeUpdate(before: MlpParams, after: MlpParams, scope: TrainableScope): Float32Array {
  checkParams(before, "before");
  checkParams(after, "after");
  checkScope(scope);
  if (before.layers.length !== after.layers.length) {
    throw new RangeError(`before has ${before.layers.length} layers but after has ${after.layers.length}`);
  }
  before.layers.forEach((b, i) => {
    const a = after.layers[i]!;
    if (a.inFeatures !== b.inFeatures || a.outFeatures !== b.outFeatures || a.activation !== b.activation) {
      throw new RangeError(
        `layer ${i} differs: before ${b.inFeatures}×${b.outFeatures} ${b.activation}, after ${a.inFeatures}×${a.outFeatures} ${a.activation}`,
      );
    }
  });
  const idx = trainableLayerIndices(before, scope);
  let total = 0;
  for (const i of idx) total += before.layers[i]!.weight.length + before.layers[i]!.bias.length;
  const out = new Float32Array(total);
  let o = 0;
  for (const i of idx) {
    for (const [x, y] of [
      [before.layers[i]!.weight, after.layers[i]!.weight],
      [before.layers[i]!.bias, after.layers[i]!.bias],
    ] as const) {
      for (let k = 0; k < x.length; k++) out[o + k] = y[k]! - x[k]!;
      o += x.length;
    }
  }
  return out;
}
