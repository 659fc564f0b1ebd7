import { describe, expect, it } from "vitest";
import { loadSyntheticText, TEXT_MAX_LEN, TEXT_VOCAB, textPolarity } from "./synthetic-text.ts";

describe("loadSyntheticText", () => {
  it("is reproducible, padded with a consistent mask, and labelled by the sign of the summed polarities", () => {
    const a = loadSyntheticText();
    const b = loadSyntheticText();
    expect(a.train.ids).toEqual(b.train.ids);
    expect(a.test.y).toEqual(b.test.y);
    expect([a.train.n, a.test.n]).toEqual([4000, 1000]);
    const polarity = textPolarity();
    for (const d of [a.train, a.test]) {
      expect(d.len).toBeLessThanOrEqual(TEXT_MAX_LEN);
      for (let r = 0; r < d.n; r++) {
        let score = 0;
        let words = 0;
        for (let k = 0; k < d.len; k++) {
          const id = Number(d.ids[r * d.len + k]);
          const m = Number(d.mask[r * d.len + k]);
          expect(m === 1 ? id >= 1 && id < TEXT_VOCAB : id === 0).toBe(true);
          if (m === 1) {
            expect(words).toBe(k); // words first, then padding
            words++;
            score += polarity[id]!;
          }
        }
        expect(words).toBeGreaterThanOrEqual(4);
        expect(score).not.toBe(0);
        expect(d.y[r]).toBe(score > 0 ? 1 : 0);
      }
    }
    const positives = a.train.y.reduce((s, v) => s + v, 0) / a.train.n;
    expect(positives).toBeGreaterThan(0.4);
    expect(positives).toBeLessThan(0.6);
  });
});
