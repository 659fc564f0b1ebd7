import { describe, expect, it } from "vitest";
import { chooseParameters, hypergeometricUpperTail, smallestPrivateThreshold } from "./parameters.ts";

/** P[at least m of a uniform k-subset of 0 … N−1 fall in 0 … marked−1], by listing every subset (N ≤ 20). */
function subsetsWithAtLeast(population: number, marked: number, draws: number, m: number): number {
  let hit = 0;
  let all = 0;
  for (let mask = 0; mask < 1 << population; mask++) {
    if (popcount(mask) !== draws) continue;
    all++;
    if (popcount(mask & ((1 << marked) - 1)) >= m) hit++;
  }
  return hit / all;
}

function popcount(x: number): number {
  let c = 0;
  for (; x; x &= x - 1) c++;
  return c;
}

/**
 * The parameters by brute force, straight from the conditions: for each even k (then n − 1), the smallest t ≤ k such
 * that no split of the honest neighbours gives the server t shares of both secrets except with n·P ≤ 2^−σ (trying
 * every number x of corrupt neighbours and every split h₁ + h₂ = k − x), and at most k − t dropped neighbours except
 * with n·P ≤ 2^−η; probabilities by listing subsets.
 */
function bruteForce(n: number, corrupt: number, dropped: number, sigma: number, eta: number) {
  const ks = [];
  for (let k = 2; k < n - 1; k += 2) ks.push(k);
  ks.push(n - 1);
  for (const k of ks) {
    for (let t = Math.floor(k / 2) + 1; t <= k; t++) {
      let leak = 0;
      for (let x = 0; x <= Math.min(corrupt, k); x++) {
        const h = k - x;
        let both = false;
        for (let h1 = 0; h1 <= h; h1++) both ||= x + h1 >= t && x + (h - h1) >= t;
        if (both) leak += subsetsWithAtLeast(n - 1, corrupt, k, x) - subsetsWithAtLeast(n - 1, corrupt, k, x + 1);
      }
      if (n * leak > 2 ** -sigma) continue;
      const failure = subsetsWithAtLeast(n - 1, dropped, k, k - t + 1);
      if (k - t >= Math.min(dropped, k) || n * failure <= 2 ** -eta) return { neighbours: k, threshold: t };
      break; // a larger t only loses correctness
    }
  }
  return undefined;
}

describe("chooseParameters (SecAgg+ degree and threshold)", () => {
  it("computes the hypergeometric tail exactly (against direct counting)", () => {
    // 10 items, 4 marked, draw 3: P[X ≥ 2] = (C(4,2)·C(6,1) + C(4,3)) / C(10,3) = (36 + 4) / 120.
    expect(hypergeometricUpperTail(10, 4, 3, 2)).toBeCloseTo(40 / 120, 12);
    expect(hypergeometricUpperTail(10, 4, 3, 0)).toBeCloseTo(1, 12);
  });

  it("keeps t > k/2 and survives a third dropping out, at the round sizes of the issue", () => {
    for (const n of [100, 200, 300]) {
      const p = chooseParameters(n, 16, 1000);
      const dropped = Math.floor(n / 3);
      expect(2 * p.threshold).toBeGreaterThan(p.neighbours);
      expect(p.minSurvivors).toBe(n - dropped);
      const failure = n * hypergeometricUpperTail(n - 1, dropped, p.neighbours, p.neighbours - p.threshold + 1);
      expect(failure).toBeLessThanOrEqual(2 ** -30);
      // The smallest such even k: k − 2 fails the bound.
      const k = p.neighbours - 2;
      const smaller = n * hypergeometricUpperTail(n - 1, dropped, k, k - (k / 2 + 1) + 1);
      expect(smaller).toBeGreaterThan(2 ** -30);
    }
  });

  it("is sparse at 300 devices and complete (SecAgg) for small rounds", () => {
    expect(chooseParameters(300, 16, 10).neighbours).toBeLessThan(200);
    expect(chooseParameters(5, 16, 10).neighbours).toBe(4);
  });

  it("refuses rounds it cannot run", () => {
    expect(() => chooseParameters(2, 16, 10)).toThrow(RangeError);
    expect(() => chooseParameters(10, 0, 10)).toThrow(RangeError);
    expect(() => chooseParameters(10, 16, 0)).toThrow(RangeError);
  });

  it("meets the collusion condition exactly as a brute force over every neighbourhood does, for small rounds", () => {
    expect(hypergeometricUpperTail(13, 4, 6, 3)).toBeCloseTo(subsetsWithAtLeast(13, 4, 6, 3), 12);
    let sparse = 0;
    for (let n = 6; n <= 15; n++) {
      for (let corrupt = 0; corrupt <= 4; corrupt++) {
        for (const [sigma, eta] of [
          [3, 2],
          [6, 4],
        ] as const) {
          const dropped = Math.floor(n / 5);
          const expected = bruteForce(n, corrupt, dropped, sigma, eta);
          const options = { dropoutFraction: 1 / 5, corruptDevices: corrupt, securityBits: sigma, failureBits: eta };
          if (expected === undefined) {
            expect(() => chooseParameters(n, 16, 4, options), `n ${n} C ${corrupt}`).toThrow(/corruptDevices|dropout/);
            continue;
          }
          const p = chooseParameters(n, 16, 4, options);
          expect({ neighbours: p.neighbours, threshold: p.threshold }, `n ${n} C ${corrupt} σ ${sigma}`).toEqual(
            expected,
          );
          if (p.neighbours < n - 1 && corrupt > 0) sparse++;
        }
      }
    }
    expect(sparse).toBeGreaterThan(10); // the sparse-graph tails were exercised, not only complete graphs
  });

  it("keeps today's k and t without corrupt devices", () => {
    for (const n of [5, 12, 40, 100, 300]) {
      const plain = chooseParameters(n, 16, 10);
      expect(chooseParameters(n, 16, 10, { corruptFraction: 0 })).toEqual(plain);
      expect(chooseParameters(n, 16, 10, { corruptDevices: 0 })).toEqual(plain);
      expect(plain.threshold).toBe(Math.floor(plain.neighbours / 2) + 1);
    }
  });

  it("grows k and t with the corrupt fraction, and bounds the corrupt neighbours' reach at 2^−40", () => {
    for (const n of [100, 300]) {
      let last = chooseParameters(n, 16, 10);
      for (const gamma of [0.02, 0.05, 0.1, 0.15]) {
        const p = chooseParameters(n, 16, 10, { corruptFraction: gamma });
        expect(p.neighbours).toBeGreaterThanOrEqual(last.neighbours);
        expect(p.threshold).toBeGreaterThan(last.threshold);
        const corrupt = Math.floor(gamma * n);
        const k = p.neighbours;
        // privacy: corrupt neighbours + half the honest ones reach t with n·P ≤ 2^−40; t − 1 would not do
        expect(n * hypergeometricUpperTail(n - 1, corrupt, k, 2 * p.threshold - k)).toBeLessThanOrEqual(2 ** -40);
        expect(n * hypergeometricUpperTail(n - 1, corrupt, k, 2 * p.threshold - 2 - k)).toBeGreaterThan(2 ** -40);
        expect(smallestPrivateThreshold(n, corrupt, k, 2 ** -40)).toBe(p.threshold);
        // correctness as before: a third dropping out leaves t live neighbours
        const dropped = Math.floor(n / 3);
        expect(n * hypergeometricUpperTail(n - 1, dropped, k, k - p.threshold + 1)).toBeLessThanOrEqual(2 ** -30);
        last = p;
      }
    }
    expect(chooseParameters(100, 16, 10, { corruptFraction: 0.1 })).toMatchObject({ neighbours: 78, threshold: 45 });
    expect(chooseParameters(300, 16, 10, { corruptFraction: 0.1 })).toMatchObject({ neighbours: 226, threshold: 129 });
  });

  it("refuses a corrupt share no graph tolerates, naming the parameter", () => {
    expect(() => chooseParameters(9, 16, 10, { corruptDevices: 2 })).toThrow(/^corruptDevices: 9 devices cannot/);
    expect(() => chooseParameters(30, 16, 10, { corruptFraction: 0.3 })).toThrow(/^corruptFraction: 30 devices cannot/);
    expect(() => chooseParameters(100, 16, 10, { corruptFraction: 1 / 3 })).toThrow(/corruptFraction must be/);
    expect(() => chooseParameters(100, 16, 10, { corruptDevices: 1.5 })).toThrow(/corruptDevices must be/);
    expect(() => chooseParameters(100, 16, 10, { corruptDevices: 1, corruptFraction: 0.01 })).toThrow(RangeError);
    expect(chooseParameters(9, 16, 10, { corruptDevices: 1 })).toMatchObject({ neighbours: 8, threshold: 5 });
  });
});
