import { describe, expect, it } from "vitest";
import { erfc, logAdd, logErfc, logNormalCdf, logSub } from "./special.ts";

describe("erfc / logErfc (Cody 1969)", () => {
  // reference values: Abramowitz & Stegun Table 7.1 / high-precision evaluations
  it.each([
    [0, 1],
    [0.1, 0.8875370839817151],
    [0.5, 0.4795001221869535],
    [1, 0.15729920705028513],
    [2, 0.004677734981047266],
    [3, 2.209049699858544e-5],
    [5, 1.5374597944280349e-12],
    [10, 2.088487583762545e-45],
    [-1, 1.8427007929497148],
  ])("erfc(%d)", (x, want) => {
    expect(Math.abs(erfc(x) / want - 1)).toBeLessThan(1e-14);
  });

  it("log erfc does not underflow far in the tail", () => {
    // log erfc(x) ~ −x² − log(x√π) − 1/(2x²) for large x
    for (const x of [30, 100, 1e4]) {
      const asym = -x * x - Math.log(x * Math.sqrt(Math.PI)) - 1 / (2 * x * x);
      expect(Math.abs(logErfc(x) - asym)).toBeLessThan(1e-6 * Math.abs(asym) + 1e-9);
    }
    expect(logNormalCdf(-40)).toBeCloseTo(-804.6084420137538, 9);
  });

  it("log-space add/sub", () => {
    expect(logAdd(Math.log(2), Math.log(3))).toBeCloseTo(Math.log(5), 14);
    expect(logAdd(Number.NEGATIVE_INFINITY, 1)).toBe(1);
    expect(logSub(Math.log(5), Math.log(3))).toBeCloseTo(Math.log(2), 14);
    expect(logSub(2, 2)).toBe(Number.NEGATIVE_INFINITY);
    expect(() => logSub(1, 2)).toThrow(RangeError);
  });
});
