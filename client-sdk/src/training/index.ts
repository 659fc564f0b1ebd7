/**
 * @module
 * On-device training for fedge clients, in plain TypeScript on Float32Array: softmax regression and small MLPs
 * (layout contract: @fedge/schemas `MlpParams`), cross-entropy, minibatch SGD with head-only fine-tuning, the update
 * vector and its L2 clipping. Pure functions: no I/O, randomness injected.
 */
export { trainLocal, type TrainOptions, type TrainResult } from "./train.ts";
export { forward, gradients, cloneMlp } from "./mlp.ts";
export { predictClasses, accuracy, crossEntropyLoss } from "./evaluate.ts";
export { computeUpdate } from "./update.ts";
export { l2Norm, clipToNorm, type ClipResult } from "./clip.ts";
export { initMlp, type InitOptions } from "./init.ts";
export { xoshiroRandomBytes } from "./random.ts";
export type { Labels } from "./validate.ts";
