/**
 * Shared steps of the project's non-MLP seed models (the MNIST CNN, the text transformer): an idempotence check on
 * a hash of everything that decides the bytes, training, `fedge quantize` (weight-only, per-channel symmetric) of the
 * fp32 file, accuracy of both files on the held-out split with onnxruntime-node, and an atomic write of
 * `fp32.onnx`, `int8.onnx`, the model's extra files (fixtures for tests: held-out samples, other `fedge quantize`
 * outputs) and `meta.json` (written last: it marks the build complete).
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { inspectServable } from "@fedge/ml";
import { quantizeOnnx } from "fedge/quantize";

const sha256 = (bytes: Uint8Array | string) => createHash("sha256").update(bytes).digest("hex");

/** Hash of source files (relative to `root`, directories expanded to their non-test `.ts` files) and a recipe. */
export function sourcesHash(root: string, sources: string[], recipe: unknown): string {
  const h = createHash("sha256");
  const files = sources.flatMap((s) =>
    s.endsWith("/")
      ? readdirSync(join(root, s))
          .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
          .sort()
          .map((f) => s + f)
      : [s],
  );
  for (const f of files)
    h.update(f)
      .update("\0")
      .update(readFileSync(join(root, f)))
      .update("\0");
  h.update(JSON.stringify(recipe));
  const ortVersion = (createRequire(import.meta.url)("onnxruntime-node/package.json") as { version: string }).version;
  h.update(ortVersion).update(process.version.split(".")[0]!);
  return h.digest("hex");
}

function upToDate(dir: string, hash: string, files: string[]): boolean {
  try {
    const meta = JSON.parse(readFileSync(join(dir, "meta.json"), "utf8")) as {
      inputs_sha256?: string;
      files?: Record<string, { sha256: string }>;
    };
    if (meta.inputs_sha256 !== hash) return false;
    return files.every(
      (f) => existsSync(join(dir, f)) && meta.files?.[f]?.sha256 === sha256(readFileSync(join(dir, f))),
    );
  } catch {
    return false;
  }
}

function writeAtomic(path: string, bytes: Uint8Array | string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, path);
}

export interface SeedModelSpec {
  name: string;
  dir: string;
  hash: string;
  /** Free-form description stored in meta.json (architecture, task). */
  describe: Record<string, unknown>;
  train: () => Promise<{ fp32: Uint8Array; training: Record<string, unknown> }>;
  /** Accuracy of a file on the held-out split (0..1). */
  evaluate: (bytes: Uint8Array) => Promise<number>;
  /** What the accuracy is measured on. */
  split: string;
  testCount: number;
  /**
   * Further files written beside the model, by name (`.json` files as text): what tests read instead of importing
   * the aggregator's data loaders and `fedge quantize` themselves (the package graph in docs/DESIGN.md).
   */
  extras?: Record<string, (fp32: Uint8Array) => Promise<Uint8Array | string>>;
}

/** Builds the model unless its outputs are current; returns the accuracies, or `null` when it was up to date. */
export async function buildSeedModel(spec: SeedModelSpec, force: boolean): Promise<Record<string, number> | null> {
  const extraNames = Object.keys(spec.extras ?? {});
  if (!force && upToDate(spec.dir, spec.hash, ["fp32.onnx", "int8.onnx", ...extraNames])) return null;
  mkdirSync(spec.dir, { recursive: true });
  const { fp32, training } = await spec.train();
  const { bytes: int8, report } = await quantizeOnnx(fp32, { weights: "symmetric", samples: 32 });
  const extras: Record<string, Uint8Array | string> = {};
  for (const [name, make] of Object.entries(spec.extras ?? {})) extras[name] = await make(fp32);
  const acc = { fp32: await spec.evaluate(fp32), int8: await spec.evaluate(int8) };
  const info = inspectServable(fp32);
  const spec2 = (t: { name: string; dtype: string; shape: (number | string | null)[] }) => ({
    name: t.name,
    dtype: t.dtype,
    shape: t.shape,
  });
  const meta = {
    name: spec.name,
    ...spec.describe,
    inputs: info.inputs.map(spec2),
    outputs: info.outputs.map(spec2),
    onnx: { opset: info.opset, ir_version: info.irVersion },
    files: {
      "fp32.onnx": { sha256: sha256(fp32), size_bytes: fp32.length, quantization: "none" },
      "int8.onnx": { sha256: sha256(int8), size_bytes: int8.length, quantization: report.scheme },
      ...Object.fromEntries(
        Object.entries(extras).map(([name, b]) => [name, { sha256: sha256(b), size_bytes: Buffer.byteLength(b) }]),
      ),
    },
    accuracy: {
      split: spec.split,
      n: spec.testCount,
      evaluator: "onnxruntime-node (1 thread, default session options)",
      fp32: acc.fp32,
      int8: acc.int8,
      int8_minus_fp32: acc.int8 - acc.fp32,
    },
    quantization: { tool: "fedge quantize --weights symmetric (aggregator/src/quantize-onnx.ts)", ...report },
    training,
    inputs_sha256: spec.hash,
    built_by: "scripts/build-models.ts",
  };
  writeAtomic(join(spec.dir, "fp32.onnx"), fp32);
  writeAtomic(join(spec.dir, "int8.onnx"), int8);
  for (const [name, b] of Object.entries(extras)) writeAtomic(join(spec.dir, name), b);
  writeAtomic(join(spec.dir, "meta.json"), JSON.stringify(meta, null, 2) + "\n");
  return acc;
}

/** Share of rows whose arg-max over `k` logits is the label. */
export function argmaxAccuracy(logits: ArrayLike<number>, y: Uint8Array, k: number): number {
  let correct = 0;
  for (let i = 0; i < y.length; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (logits[i * k + j]! > logits[i * k + best]!) best = j;
    if (best === y[i]) correct++;
  }
  return correct / y.length;
}
