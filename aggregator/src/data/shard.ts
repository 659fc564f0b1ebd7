/**
 * @module
 * Non-IID partition of a labelled dataset across simulated devices, for the federated demo.
 *
 * Rule: each client holds exactly `labelsPerClient` distinct labels. With a random permutation π of the labels present
 * (L of them), client c gets labels π[(c·k + t) mod L] for t = 0..k−1 (k = labelsPerClient), so every label goes to
 * ⌊c·k/L⌋ or ⌈c·k/L⌉ clients. Each label's samples are shuffled and split into equal contiguous parts (sizes differ by
 * at most one) among the clients that hold it; no sample goes to two clients, and labels held by no client (when
 * clients · k < L) are left out. This is the label-skew setting of McMahan et al. 2017 (arXiv:1602.05629 §3, the
 * "pathological non-IID" partition where each client sees 2 digits), made exact per client.
 */
import { cryptoRandomBytes, type RandomBytes } from "@fedge/privacy";
import type { Dataset } from "./mnist.ts";

export interface ShardNonIidOptions {
  /** Number of clients (positive integer). */
  clients: number;
  /** Distinct labels per client (1 ≤ k ≤ number of labels present). */
  labelsPerClient: number;
  /**
   * Random bytes for the label permutation and the per-label shuffle; pass a seeded source for a reproducible demo.
   * @default cryptoRandomBytes (crypto.getRandomValues)
   */
  random?: RandomBytes;
}

/** Uniform integer in [0, n) by rejection sampling on 32-bit words (no modulo bias). */
function below(n: number, random: RandomBytes, word: Uint32Array): number {
  const limit = Math.floor(4294967296 / n) * n;
  for (;;) {
    random(new Uint8Array(word.buffer));
    if (word[0]! < limit) return word[0]! % n;
  }
}

function shuffleInPlace(a: number[], random: RandomBytes, word: Uint32Array): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = below(i + 1, random, word);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
}

/**
 * Split `data` into `clients` datasets with `labelsPerClient` labels each (rule in the module header).
 * @throws {RangeError} on a bad option, or when some client would get no sample.
 */
export function shardNonIid(data: Dataset, options: ShardNonIidOptions): Dataset[] {
  const { clients, labelsPerClient: k } = options;
  const random = options.random ?? cryptoRandomBytes;
  if (!Number.isSafeInteger(clients) || clients < 1)
    throw new RangeError(`clients must be a positive integer, got ${clients}`);
  if (typeof random !== "function") throw new TypeError("random must be a RandomBytes function");
  const width = data.n > 0 ? data.x.length / data.n : 0;
  if (!Number.isInteger(width) || width < 1 || data.y.length !== data.n) {
    throw new RangeError("data must have n rows of features and n labels");
  }
  const byLabel = new Map<number, number[]>();
  for (let i = 0; i < data.n; i++) {
    const c = data.y[i]!;
    let list = byLabel.get(c);
    if (!list) byLabel.set(c, (list = []));
    list.push(i);
  }
  const labels = [...byLabel.keys()].sort((a, b) => a - b);
  if (!Number.isSafeInteger(k) || k < 1 || k > labels.length) {
    throw new RangeError(`labelsPerClient must be an integer in [1, ${labels.length}], got ${k}`);
  }
  const word = new Uint32Array(1);
  shuffleInPlace(labels, random, word);
  const holders = new Map<number, number[]>(labels.map((l) => [l, []]));
  for (let c = 0; c < clients; c++) {
    for (let t = 0; t < k; t++) holders.get(labels[(c * k + t) % labels.length]!)!.push(c);
  }
  const rows: number[][] = Array.from({ length: clients }, () => []);
  for (const label of [...byLabel.keys()].sort((a, b) => a - b)) {
    const owners = holders.get(label)!;
    if (owners.length === 0) continue;
    const idx = byLabel.get(label)!;
    shuffleInPlace(idx, random, word);
    owners.forEach((c, p) => {
      const from = Math.floor((p * idx.length) / owners.length);
      const to = Math.floor(((p + 1) * idx.length) / owners.length);
      rows[c]!.push(...idx.slice(from, to));
    });
  }
  return rows.map((r, c) => {
    if (r.length === 0) throw new RangeError(`client ${c} gets no sample: too many clients for the data`);
    const x = new Float32Array(r.length * width);
    const y = new Uint8Array(r.length);
    r.forEach((i, j) => {
      x.set(data.x.subarray(i * width, (i + 1) * width), j * width);
      y[j] = data.y[i]!;
    });
    return { x, y, n: r.length };
  });
}
