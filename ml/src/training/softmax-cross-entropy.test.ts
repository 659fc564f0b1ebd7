import { describe, expect, it } from "vitest";
import { softmaxCrossEntropy } from "./softmax-cross-entropy.ts";

describe("softmaxCrossEntropy", () => {
  it("matches the closed form and its gradient rows sum to zero", () => {
    const logits = Float64Array.from([1, 2, 3, -1, 0, 1]);
    const grad = new Float64Array(6);
    const loss = softmaxCrossEntropy(logits, [2, 0], 2, 3, grad, 0.5);
    const lse = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
    // Row 2 is row 1 shifted by −2, so its log-sum-exp is lse − 2 and its loss (lse − 2) − (−1).
    expect(loss).toBeCloseTo(lse - 3 + (lse - 1), 12);
    expect(grad[0]! + grad[1]! + grad[2]!).toBeCloseTo(0, 15);
    expect(grad[3]! + grad[4]! + grad[5]!).toBeCloseTo(0, 15);
    expect(grad[2]).toBeCloseTo(0.5 * (Math.exp(3 - lse) - 1), 15);
  });

  it("stays finite for extreme logits (max subtracted before exp)", () => {
    const logits = Float64Array.from([1e300, -1e300, 0, 800, 799, -800]);
    const grad = new Float64Array(6);
    const loss = softmaxCrossEntropy(logits, [0, 1], 2, 3, grad);
    expect(loss).toBeCloseTo(0 + Math.log(1 + Math.E), 12);
    expect(Array.from(grad).every(Number.isFinite)).toBe(true);
    // A wrong label at 1e300 costs 2e300 (finite), not NaN.
    expect(softmaxCrossEntropy(logits, [1, 0], 2, 3, null)).toBe(2e300);
  });
});
