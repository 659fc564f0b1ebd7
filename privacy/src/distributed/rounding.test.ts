import { describe, expect, it } from "vitest";
import { seededRandomBytes } from "../samplers/testing.ts";
import { conditionalRound, DEFAULT_ROUNDING_BETA, roundedNormBound } from "./rounding.ts";

describe("conditional randomized rounding", () => {
  it("states KLS21's bound: min{(Δ+√d)², Δ² + d/4 + √(2 ln 1/β)(Δ + √d/2)}, rounded down", () => {
    // Δ = 100, d = 64, β = e^(−1/2): √(2·½) = 1 → 10000 + 16 + 100 + 4 = 10120 < (108)² = 11664.
    expect(roundedNormBound(100, 64, DEFAULT_ROUNDING_BETA)).toBe(10119); // 10120 shaved below: never above
    expect(roundedNormBound(100, 64, 0)).toBe(11663);
    expect(() => roundedNormBound(100, 64, 1)).toThrow(RangeError);
  });

  it("always returns a vector within the bound, unbiased per coordinate, in ≈ 1/(1−β) tries at most", () => {
    const random = seededRandomBytes(7);
    const d = 256;
    const norm = 40;
    const y = Float64Array.from({ length: d }, (_, i) => ((i % 3) - 1) * 0.3 + 0.1);
    let n2 = 0;
    for (const v of y) n2 += v * v;
    for (let i = 0; i < d; i++) y[i] = (y[i]! * norm) / Math.sqrt(n2);
    const bound = roundedNormBound(norm, d, DEFAULT_ROUNDING_BETA);
    const mean = new Float64Array(d);
    let tries = 0;
    let worstMove = 0;
    let worstSq = 0;
    const reps = 2000;
    for (let r = 0; r < reps; r++) {
      const out = conditionalRound(y, bound, random);
      let sq = 0;
      for (let i = 0; i < d; i++) {
        sq += out.rounded[i]! ** 2;
        mean[i] = mean[i]! + out.rounded[i]! / reps;
        worstMove = Math.max(worstMove, Math.abs(out.rounded[i]! - y[i]!));
      }
      worstSq = Math.max(worstSq, sq);
      tries += out.tries;
    }
    expect(worstMove).toBeLessThan(1);
    expect(worstSq).toBeLessThanOrEqual(bound);
    expect(tries / reps).toBeLessThan(1 / (1 - DEFAULT_ROUNDING_BETA));
    // Conditioning on the norm may bias coordinates slightly; the mean stays within 0.05 of y (coin std ≤ 0.5/√2000).
    let worst = 0;
    for (let i = 0; i < d; i++) worst = Math.max(worst, Math.abs(mean[i]! - y[i]!));
    expect(worst).toBeLessThan(0.06);
  });

  it("gives up with a RangeError when the input is far above the bound's norm", () => {
    const y = new Float64Array(16).fill(10.5);
    expect(() => conditionalRound(y, 100, seededRandomBytes(1))).toThrow(/conditional rounding failed/);
    expect(() => conditionalRound(Float64Array.of(Number.NaN), 100, seededRandomBytes(1))).toThrow(RangeError);
  });
});
