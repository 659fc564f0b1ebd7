/**
 * The text transformer seed model (`models/text-transformer/`): a one-layer, one-head transformer encoder that
 * classifies the synthetic sentiment task of `fedge/data` (`loadSyntheticText`).
 *
 *     input_ids       int64 [batch, seq]   token ids (0 = padding)
 *     attention_mask  int64 [batch, seq]   1 = word, 0 = padding
 *     x      = Gather(embed [V, d], input_ids)
 *     q, k, v = x·Wq, x·Wk, x·Wv                                  (MatMul, [d, d] each)
 *     a      = Softmax(q·kᵀ / √d + (mask − 1)·10⁴, axis −1)      (padding gets no attention)
 *     h      = LayerNormalization(x + a·v)
 *     pooled = Σ_t mask_t·h_t / Σ_t mask_t                        (mean over the words)
 *     logits = pooled·W + b  → float32 [batch, 2];  probs = Softmax(logits) → float32 [batch, 2]
 *
 * (Vaswani et al. 2017, arXiv:1706.03762 §3.2.1 scaled dot-product attention, §3.1 residual + layer norm.)
 * Training, chosen to keep the bootstrap build to seconds: the embedding and attention weights are fixed random
 * (Gaussian, seeded xoshiro128**), and the classifier on the pooled encoder output is trained by minibatch SGD on the
 * task's training split — a random-feature encoder with a trained linear head. The pooled features are computed by
 * onnxruntime-node running the model's own encoder, so training sees exactly what the served graph computes. The
 * int8 file is `fedge quantize`'s weight-only symmetric quantization of the fp32 one (embedding included).
 */
import * as ort from "onnxruntime-node";
import { initMlp, trainLocal, xoshiroRandomBytes } from "@fedge/ml";
import {
  attr,
  encodeOnnx,
  float32Tensor,
  floatValueInfo,
  int64Tensor,
  node,
  OnnxDataType,
  tensorValueInfo,
  type GraphProto,
  type NodeProto,
  type TensorProto,
} from "@fedge/ml";
import { TEXT_CLASSES, TEXT_VOCAB, type TextDataset } from "fedge/data";

export const TEXT_RECIPE = {
  vocab: TEXT_VOCAB,
  dim: 96,
  /** Scale of the learned word score in the first embedding dimension (the others are N(0, 1)). */
  score_gain: 2,
  weight_seed: 20261208,
  shuffle_seed: 13,
  batch_size: 32,
  learning_rates: [0.2, 0.1, 0.1, 0.05, 0.05, 0.02],
} as const;

export const TEXT_INPUTS = ["input_ids", "attention_mask"] as const;

interface EncoderWeights {
  embed: Float32Array;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
}

/** Fixed random encoder weights: embedding N(0, 1), projections N(0, 1/d). */
export function encoderWeights(): EncoderWeights {
  const { vocab, dim, weight_seed } = TEXT_RECIPE;
  const random = xoshiroRandomBytes(weight_seed);
  // initMlp's output layer is Glorot normal N(0, 2/(in+out)); rescale to the wanted deviations.
  const draw = (rows: number, cols: number, std: number) => {
    const w = initMlp([rows, cols], { random }).layers[0]!.weight;
    const s = std / Math.sqrt(2 / (rows + cols));
    return w.map((x) => x * s);
  };
  return {
    embed: draw(vocab, dim, 1),
    q: draw(dim, dim, 1 / Math.sqrt(dim)),
    k: draw(dim, dim, 1 / Math.sqrt(dim)),
    v: draw(dim, dim, 1 / Math.sqrt(dim)),
  };
}

function encoder(w: EncoderWeights): { node: NodeProto[]; initializer: TensorProto[] } {
  const { vocab, dim } = TEXT_RECIPE;
  return {
    node: [
      node("Gather", ["embed.weight", "input_ids"], ["x"], { attribute: [attr.int("axis", 0)] }),
      node("MatMul", ["x", "attn.q.weight"], ["q"]),
      node("MatMul", ["x", "attn.k.weight"], ["k"]),
      node("MatMul", ["x", "attn.v.weight"], ["v"]),
      node("Transpose", ["k"], ["k_t"], { attribute: [attr.ints("perm", [0, 2, 1])] }),
      node("MatMul", ["q", "k_t"], ["scores"]),
      node("Mul", ["scores", "attn.scale"], ["scores_scaled"]),
      node("Cast", ["attention_mask"], ["mask_f"], { attribute: [attr.int("to", OnnxDataType.FLOAT)] }),
      node("Sub", ["mask_f", "one"], ["mask_off"]),
      node("Mul", ["mask_off", "attn.mask_penalty"], ["mask_bias"]),
      node("Unsqueeze", ["mask_bias", "axis_1"], ["mask_bias_3d"]),
      node("Add", ["scores_scaled", "mask_bias_3d"], ["scores_masked"]),
      node("Softmax", ["scores_masked"], ["attention"], { attribute: [attr.int("axis", -1)] }),
      node("MatMul", ["attention", "v"], ["context"]),
      node("Add", ["x", "context"], ["residual"]),
      node("LayerNormalization", ["residual", "ln.gamma", "ln.beta"], ["h"], {
        attribute: [attr.int("axis", -1), attr.float("epsilon", 1e-5)],
      }),
      node("Unsqueeze", ["mask_f", "axis_2"], ["mask_3d"]),
      node("Mul", ["h", "mask_3d"], ["h_masked"]),
      node("ReduceSum", ["h_masked", "axis_1"], ["h_sum"], { attribute: [attr.int("keepdims", 0)] }),
      node("ReduceSum", ["mask_f", "axis_1"], ["count"], { attribute: [attr.int("keepdims", 1)] }),
      node("Div", ["h_sum", "count"], ["pooled"]),
    ],
    initializer: [
      float32Tensor("embed.weight", [vocab, dim], w.embed),
      float32Tensor("attn.q.weight", [dim, dim], w.q),
      float32Tensor("attn.k.weight", [dim, dim], w.k),
      float32Tensor("attn.v.weight", [dim, dim], w.v),
      float32Tensor("attn.scale", [], new Float32Array([1 / Math.sqrt(dim)])),
      float32Tensor("one", [], new Float32Array([1])),
      float32Tensor("attn.mask_penalty", [], new Float32Array([10_000])),
      int64Tensor("axis_1", [1], [1]),
      int64Tensor("axis_2", [1], [2]),
      float32Tensor("ln.gamma", [dim], new Float32Array(dim).fill(1)),
      float32Tensor("ln.beta", [dim], new Float32Array(dim)),
    ],
  };
}

const inputs = () => TEXT_INPUTS.map((n) => tensorValueInfo(n, OnnxDataType.INT64, ["batch", "seq"]));

function encode(name: string, graph: Omit<GraphProto, "name" | "input">): Uint8Array {
  return encodeOnnx({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    producerName: "fedge",
    producerVersion: "0.1.0",
    graph: { name, input: inputs(), ...graph },
    metadataProps: [{ key: "fedge.model", value: "text-transformer" }],
  });
}

/** The encoder alone (output `pooled` [batch, d]): what the head is trained on. */
export function textFeatureOnnx(w: EncoderWeights): Uint8Array {
  return encode("text-transformer-features", {
    ...encoder(w),
    output: [floatValueInfo("pooled", ["batch", TEXT_RECIPE.dim])],
  });
}

/** The full fp32 model; `head.weight` is row-major `[d][classes]`. */
export function textTransformerOnnx(w: EncoderWeights, head: { weight: Float32Array; bias: Float32Array }): Uint8Array {
  const enc = encoder(w);
  return encode("text-transformer", {
    node: [
      ...enc.node,
      node("MatMul", ["pooled", "head.weight"], ["head_out"]),
      node("Add", ["head_out", "head.bias"], ["logits"]),
      node("Softmax", ["logits"], ["probs"], { attribute: [attr.int("axis", -1)] }),
    ],
    initializer: [
      ...enc.initializer,
      float32Tensor("head.weight", [TEXT_RECIPE.dim, TEXT_CLASSES], head.weight),
      float32Tensor("head.bias", [TEXT_CLASSES], head.bias),
    ],
    output: [floatValueInfo("logits", ["batch", TEXT_CLASSES]), floatValueInfo("probs", ["batch", TEXT_CLASSES])],
  });
}

/** Run a text model on a dataset; returns its first output, row-major. */
export async function runText(bytes: Uint8Array, data: TextDataset): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const out = await session.run({
    input_ids: new ort.Tensor("int64", data.ids, [data.n, data.len]),
    attention_mask: new ort.Tensor("int64", data.mask, [data.n, data.len]),
  });
  const result = out[session.outputNames[0]!]!.data as Float32Array;
  await session.release();
  return result;
}

/**
 * Stage 1: a bag-of-words softmax regression (mean one-hot of the words → classes); each word's score is the
 * difference of its two class weights, scaled to unit RMS. It becomes the first embedding dimension.
 */
export function trainWordScores(train: TextDataset): Float32Array {
  const { vocab } = TEXT_RECIPE;
  const bow = new Float32Array(train.n * vocab);
  for (let r = 0; r < train.n; r++) {
    let words = 0;
    for (let k = 0; k < train.len; k++) words += Number(train.mask[r * train.len + k]);
    for (let k = 0; k < train.len; k++) {
      if (train.mask[r * train.len + k] === 1n) bow[r * vocab + Number(train.ids[r * train.len + k])]! += 1 / words;
    }
  }
  let params = initMlp([vocab, TEXT_CLASSES], { random: xoshiroRandomBytes(TEXT_RECIPE.weight_seed + 2) });
  const rng = xoshiroRandomBytes(TEXT_RECIPE.shuffle_seed + 1);
  for (const lr of TEXT_RECIPE.learning_rates) {
    params = trainLocal(params, bow, train.y, {
      epochs: 1,
      batchSize: 32,
      learningRate: 4 * lr,
      scope: "all",
      random: rng,
    }).params;
  }
  const w = params.layers[0]!.weight;
  const scores = new Float32Array(vocab);
  for (let t = 0; t < vocab; t++) scores[t] = w[t * 2 + 1]! - w[t * 2]!;
  const rms = Math.sqrt(scores.reduce((a, v) => a + v * v, 0) / vocab) || 1;
  return scores.map((v) => v / rms);
}

/** Train the head on the task; returns the fp32 ONNX file and the training record. */
export async function trainTextTransformer(
  train: TextDataset,
): Promise<{ fp32: Uint8Array; training: Record<string, unknown> }> {
  const w = encoderWeights();
  const wordScores = trainWordScores(train);
  for (let t = 0; t < TEXT_RECIPE.vocab; t++) w.embed[t * TEXT_RECIPE.dim] = TEXT_RECIPE.score_gain * wordScores[t]!;
  const features = await runText(textFeatureOnnx(w), train);
  let params = initMlp([TEXT_RECIPE.dim, TEXT_CLASSES], { random: xoshiroRandomBytes(TEXT_RECIPE.weight_seed + 1) });
  const rng = xoshiroRandomBytes(TEXT_RECIPE.shuffle_seed);
  let loss = Number.NaN;
  for (const lr of TEXT_RECIPE.learning_rates) {
    const r = trainLocal(params, features, train.y, {
      epochs: 1,
      batchSize: TEXT_RECIPE.batch_size,
      learningRate: lr,
      scope: "all",
      random: rng,
    });
    params = r.params;
    loss = r.loss;
  }
  const layer = params.layers[0]!;
  return {
    fp32: textTransformerOnnx(w, { weight: layer.weight, bias: layer.bias }),
    training: {
      data: `synthetic sentiment task (fedge/data loadSyntheticText), train split (${train.n} sentences)`,
      encoder: "fixed random embedding and attention weights (xoshiro128** seed), one layer, one head",
      optimizer: "minibatch SGD on the linear head, mean softmax cross-entropy (@fedge/ml trainLocal)",
      batch_size: TEXT_RECIPE.batch_size,
      learning_rates_per_epoch: TEXT_RECIPE.learning_rates,
      final_epoch_loss: loss,
    },
  };
}
