/**
 * @module
 * Weight initialisation of a fresh MLP. Layers followed by a ReLU use He initialisation, `W ~ N(0, 2/fan_in)`
 * (He et al., "Delving Deep into Rectifiers", arXiv:1502.01852 §2.2); the output layer (no activation) uses Glorot
 * (Xavier) normal, `W ~ N(0, 2/(fan_in + fan_out))` (Glorot & Bengio, AISTATS 2010, §4.2.1). Biases start at zero.
 */
import type { DenseLayer, MlpParams } from "../model-layout/mlp.ts";
import { cryptoRandomBytes, type RandomBytes } from "@fedge/privacy";
import { UniformSource } from "./random.ts";

/** Options of `initMlp`. */
export interface InitOptions {
  /**
   * Source of random bytes. Pass `xoshiroRandomBytes(seed)` for a reproducible model.
   * @default cryptoRandomBytes from @fedge/protocol (crypto.getRandomValues)
   */
  random?: RandomBytes;
  /**
   * Activation of the hidden layers; the last layer always has none (it outputs logits).
   * @default "relu"
   */
  hiddenActivation?: "relu" | "none";
}

/**
 * A fresh MLP with layer widths `sizes` (`[784, 64, 10]`: one hidden layer of 64; `[784, 10]`: softmax regression).
 * @throws {RangeError} when `sizes` has fewer than two entries or a non-positive / non-integer width.
 */
export function initMlp(sizes: readonly number[], options: InitOptions = {}): MlpParams {
  if (!Array.isArray(sizes) || sizes.length < 2) {
    throw new RangeError("sizes must list at least an input and an output width, e.g. [784, 10]");
  }
  sizes.forEach((s, i) => {
    if (!Number.isInteger(s) || s < 1) throw new RangeError(`sizes[${i}] must be a positive integer, got ${s}`);
  });
  const hidden = options.hiddenActivation ?? "relu";
  if (hidden !== "relu" && hidden !== "none") {
    throw new TypeError(`hiddenActivation must be "relu" or "none", got ${JSON.stringify(hidden)}`);
  }
  const source = new UniformSource(options.random ?? cryptoRandomBytes);
  const layers: DenseLayer[] = [];
  for (let l = 0; l + 1 < sizes.length; l++) {
    const inF = sizes[l]!;
    const outF = sizes[l + 1]!;
    const last = l + 2 === sizes.length;
    const activation = last ? "none" : hidden;
    const std = activation === "relu" ? Math.sqrt(2 / inF) : Math.sqrt(2 / (inF + outF));
    const weight = new Float32Array(inF * outF);
    for (let k = 0; k < weight.length; k++) weight[k] = std * source.normal();
    layers.push({ inFeatures: inF, outFeatures: outF, weight, bias: new Float32Array(outF), activation });
  }
  return { layers };
}
