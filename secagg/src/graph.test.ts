import { describe, expect, it } from "vitest";
import { NeighbourGraph } from "./graph.ts";

const seed = (b: number) => new Uint8Array(32).fill(b);

describe("NeighbourGraph (Harary H(k, n), randomly labelled)", () => {
  it("gives every device k distinct neighbours, symmetrically, never itself", () => {
    const g = new NeighbourGraph(50, 8, seed(1));
    for (let u = 0; u < 50; u++) {
      const ns = g.neighboursOf(u);
      expect(new Set(ns).size).toBe(8);
      expect(ns).not.toContain(u);
      for (const v of ns) expect(g.areNeighbours(v, u)).toBe(true);
    }
  });

  it("is the same for the same seed and another for another seed", () => {
    const a = new NeighbourGraph(30, 6, seed(2));
    const b = new NeighbourGraph(30, 6, seed(2));
    const c = new NeighbourGraph(30, 6, seed(3));
    const all = (g: NeighbourGraph) => Array.from({ length: 30 }, (_, u) => g.neighboursOf(u).join(","));
    expect(all(a)).toEqual(all(b));
    expect(all(a)).not.toEqual(all(c));
  });

  it("is complete when k = n − 1 and refuses an odd sparse degree", () => {
    const g = new NeighbourGraph(7, 6, seed(4));
    expect(g.neighboursOf(3)).toEqual([0, 1, 2, 4, 5, 6]);
    expect(() => new NeighbourGraph(10, 5, seed(4))).toThrow(RangeError);
  });

  it("answers areNeighbours from the cycle exactly as the neighbour lists say, for sparse and complete graphs", () => {
    for (const [n, k] of [
      [40, 6],
      [41, 20],
      [9, 8],
    ] as const) {
      const g = new NeighbourGraph(n, k, seed(5));
      for (let u = 0; u < n; u++) {
        const ns = new Set(g.neighboursOf(u));
        for (let v = 0; v < n; v++) expect(g.areNeighbours(u, v)).toBe(ns.has(v));
      }
    }
    expect(() => new NeighbourGraph(10, 4, seed(6)).areNeighbours(0, 10)).toThrow(RangeError);
  });
});
