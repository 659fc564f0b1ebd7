/**
 * @module
 * A small synthetic text-classification task for the text transformer seed model: sentiment by word polarity.
 *
 * Vocabulary: token 0 is padding, tokens 1..V−1 are words; {@link TEXT_POLAR_WORDS} of them are positive (+1),
 * as many negative (−1), the rest neutral. A sentence is 4 to {@link TEXT_MAX_LEN} words drawn uniformly; its label
 * is 1 when the polarities sum above 0, 0 when below (sentences summing to exactly 0 are drawn again). Sentences are
 * padded with token 0 to the longest one of their batch and come with an attention mask (1 = word, 0 = padding), so a
 * model must ignore the padding to be right. Everything is drawn from a seeded xoshiro128** stream: the split is
 * reproducible and the test split never overlaps the training stream.
 */
import { xoshiroRandomBytes } from "@fedge/ml";

/** Vocabulary size including padding (token 0). */
export const TEXT_VOCAB = 48;
/** Positive words (as many negative ones). */
export const TEXT_POLAR_WORDS = 8;
/** Longest sentence (tokens). */
export const TEXT_MAX_LEN = 16;
export const TEXT_CLASSES = 2;

export interface TextDataset {
  /** Row-major `[n, len]` token ids (0 = padding). */
  ids: BigInt64Array;
  /** Row-major `[n, len]`: 1 for a word, 0 for padding. */
  mask: BigInt64Array;
  /** Labels 0/1. */
  y: Uint8Array;
  n: number;
  /** Padded length (the longest sentence). */
  len: number;
}

/** Polarity of each token (index = token id): +1, −1 or 0. Fixed: the first words positive, the next negative. */
export function textPolarity(): Int8Array {
  const p = new Int8Array(TEXT_VOCAB);
  for (let t = 1; t <= TEXT_POLAR_WORDS; t++) p[t] = 1;
  for (let t = TEXT_POLAR_WORDS + 1; t <= 2 * TEXT_POLAR_WORDS; t++) p[t] = -1;
  return p;
}

function makeSplit(n: number, seed: number): TextDataset {
  const random = xoshiroRandomBytes(seed);
  const buf = new Uint8Array(4);
  const below = (k: number) => {
    random(buf);
    return ((buf[0]! | (buf[1]! << 8) | (buf[2]! << 16)) >>> 0) % k;
  };
  const polarity = textPolarity();
  const sentences: number[][] = [];
  const y = new Uint8Array(n);
  while (sentences.length < n) {
    const len = 4 + below(TEXT_MAX_LEN - 3);
    const words = Array.from({ length: len }, () => 1 + below(TEXT_VOCAB - 1));
    const score = words.reduce((s, w) => s + polarity[w]!, 0);
    if (score === 0) continue;
    y[sentences.length] = score > 0 ? 1 : 0;
    sentences.push(words);
  }
  const len = Math.max(...sentences.map((s) => s.length));
  const ids = new BigInt64Array(n * len);
  const mask = new BigInt64Array(n * len);
  sentences.forEach((s, r) =>
    s.forEach((w, k) => {
      ids[r * len + k] = BigInt(w);
      mask[r * len + k] = 1n;
    }),
  );
  return { ids, mask, y, n, len };
}

/** The task's train (4,000 sentences) and test (1,000) splits, each from its own seeded stream. */
export function loadSyntheticText(): { train: TextDataset; test: TextDataset } {
  return { train: makeSplit(4000, 0x7e57_0001), test: makeSplit(1000, 0x7e57_0002) };
}
