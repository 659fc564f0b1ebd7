/**
 * @module
 * On-device training speed (client-sdk/src/training): one SGD epoch of MNIST 784→64→10 over 8,500 real digits with
 * batch 32, against a naive textbook implementation of the same math run in the same process; head-only fine-tuning
 * against full training; L2 clipping against a plain copy.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { clipToNorm, initMlp, trainLocal, xoshiroRandomBytes } from "@fedge/ml";
import type { MlpParams } from "@fedge/ml";
import { measure, type BenchMeasure } from "../types.ts";

const PIXELS = 784;

function loadMnist(perDigit: number): { x: Float32Array; y: Uint8Array } {
  const dir = join(dirname(createRequire(import.meta.url).resolve("mnist/package.json")), "src", "digits");
  const x = new Float32Array(perDigit * 10 * PIXELS);
  const y = new Uint8Array(perDigit * 10);
  for (let d = 0; d < 10; d++) {
    const { data } = JSON.parse(readFileSync(join(dir, `${d}.json`), "utf8")) as { data: number[] };
    for (let i = 0; i < perDigit; i++) {
      const r = i * 10 + d;
      x.set(data.slice(i * PIXELS, (i + 1) * PIXELS), r * PIXELS);
      y[r] = d;
    }
  }
  return { x, y };
}

/**
 * The baseline: the same minibatch SGD written the textbook way, per sample, output-major loops (`W` read with
 * stride `out`), float32 buffers, no zero skipping, fresh arrays per sample.
 */
function naiveEpoch(params: MlpParams, x: Float32Array, y: Uint8Array, batch: number, lr: number): void {
  const L = params.layers;
  const n = y.length;
  for (let start = 0; start < n; start += batch) {
    const rows = Math.min(batch, n - start);
    const gW = L.map((l) => new Float32Array(l.weight.length));
    const gB = L.map((l) => new Float32Array(l.bias.length));
    for (let r = 0; r < rows; r++) {
      const acts: Float32Array[] = [x.subarray((start + r) * PIXELS, (start + r + 1) * PIXELS)];
      for (const l of L) {
        const a = acts[acts.length - 1]!;
        const z = new Float32Array(l.outFeatures);
        for (let j = 0; j < l.outFeatures; j++) {
          let s = l.bias[j]!;
          for (let i = 0; i < l.inFeatures; i++) s += a[i]! * l.weight[i * l.outFeatures + j]!;
          z[j] = l.activation === "relu" ? Math.max(0, s) : s;
        }
        acts.push(z);
      }
      const logits = acts[acts.length - 1]!;
      const m = Math.max(...logits);
      const e = logits.map((v) => Math.exp(v - m));
      const sum = e.reduce((s, v) => s + v, 0);
      let delta = e.map((v) => v / sum / rows);
      delta[y[start + r]!]! -= 1 / rows;
      for (let li = L.length - 1; li >= 0; li--) {
        const l = L[li]!;
        const a = acts[li]!;
        for (let i = 0; i < l.inFeatures; i++)
          for (let j = 0; j < l.outFeatures; j++) gW[li]![i * l.outFeatures + j]! += a[i]! * delta[j]!;
        for (let j = 0; j < l.outFeatures; j++) gB[li]![j]! += delta[j]!;
        if (li > 0) {
          const prev = new Float32Array(l.inFeatures);
          for (let i = 0; i < l.inFeatures; i++) {
            let s = 0;
            for (let j = 0; j < l.outFeatures; j++) s += l.weight[i * l.outFeatures + j]! * delta[j]!;
            prev[i] = a[i]! > 0 || L[li - 1]!.activation === "none" ? s : 0;
          }
          delta = prev;
        }
      }
    }
    L.forEach((l, li) => {
      for (let k = 0; k < l.weight.length; k++) l.weight[k]! -= lr * gW[li]![k]!;
      for (let k = 0; k < l.bias.length; k++) l.bias[k]! -= lr * gB[li]![k]!;
    });
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function time(fn: () => void, reps: number): number {
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const s = performance.now();
    fn();
    t.push(performance.now() - s);
  }
  return median(t);
}

export default async function run(): Promise<BenchMeasure[]> {
  const { x, y } = loadMnist(850); // 8,500 digits
  const params = initMlp([784, 64, 10], { random: xoshiroRandomBytes(1) });
  const opts = { epochs: 1, batchSize: 32, learningRate: 0.05, random: xoshiroRandomBytes(2) };
  trainLocal(params, x, y, { ...opts, scope: "all" }); // warm-up (JIT)
  const allMs = time(() => trainLocal(params, x, y, { ...opts, scope: "all" }), 5);
  const headMs = time(() => trainLocal(params, x, y, { ...opts, scope: "head" }), 5);
  const naiveMs = time(() => naiveEpoch(structuredClone(params), x, y, 32, 0.05), 2);

  const update = new Float32Array(784 * 64 + 64 + 64 * 10 + 10).map((_, i) => Math.sin(i));
  const clipMs = time(() => {
    for (let k = 0; k < 100; k++) clipToNorm(update, 1);
  }, 5);
  const copyMs = time(() => {
    for (let k = 0; k < 100; k++) update.slice();
  }, 5);

  return [
    measure({
      name: "train-epoch-mnist-mlp",
      description: "one SGD epoch, MNIST 784→64→10, 8,500 real digits, batch 32, scope all (trainLocal)",
      value: allMs,
      unit: "ms",
      baseline_name: "naive per-sample SGD of the same math (output-major loops, no zero skipping)",
      baseline: naiveMs,
      better: "lower",
      notes: `issue target: an epoch in a few seconds on one core; median of 5 (naive: 2); ${((8500 / allMs) * 1000).toFixed(0)} samples/s`,
    }),
    measure({
      name: "train-epoch-mnist-head",
      description: "one SGD epoch, same data, scope head (frozen 784→64 features computed once, 64→10 trained)",
      value: headMs,
      unit: "ms",
      baseline_name: "scope all epoch (train-epoch-mnist-mlp)",
      baseline: allMs,
      better: "lower",
      notes: "median of 5",
    }),
    measure({
      name: "clip-update-mnist-mlp",
      description: "clipToNorm of a 50,890-float update (784→64→10), per call",
      value: clipMs / 100,
      unit: "ms",
      baseline_name: "Float32Array.slice of the same vector",
      baseline: copyMs / 100,
      better: "lower",
      notes: "median of 5 × 100 calls; clipping = norm pass + scale pass + verification norm pass",
    }),
  ];
}
