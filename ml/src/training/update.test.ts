import { describe, expect, it } from "vitest";
import { flattenTrainable, trainableLength, withTrainable } from "../model-layout/mlp.ts";
import { initMlp } from "./init.ts";
import { cloneMlp } from "./mlp.ts";
import { xoshiroRandomBytes } from "./random.ts";
import { computeUpdate } from "./update.ts";

describe("computeUpdate", () => {
  it("is after − before in the layout order of flattenTrainable", () => {
    const before = initMlp([4, 3, 2], { random: xoshiroRandomBytes(1) });
    const after = initMlp([4, 3, 2], { random: xoshiroRandomBytes(2) });
    for (const scope of ["all", "head"] as const) {
      const u = computeUpdate(before, after, scope);
      expect(u.length).toBe(trainableLength(before, scope));
      const a = flattenTrainable(after, scope);
      const b = flattenTrainable(before, scope);
      for (let i = 0; i < u.length; i++) expect(u[i]).toBe(Math.fround(a[i]! - b[i]!));
    }
    expect(computeUpdate(before, before, "all").every((v) => v === 0)).toBe(true);
  });

  it("round-trips through withTrainable exactly when the difference is representable", () => {
    const before = initMlp([4, 3, 2], { random: xoshiroRandomBytes(3) });
    // Steps of ±2⁻¹⁰: exact in float32 for weights of this magnitude.
    const step = new Float32Array(trainableLength(before, "all")).map((_, i) => (i % 2 ? 1 : -1) * 2 ** -10);
    const after = withTrainable(
      before,
      "all",
      flattenTrainable(before, "all").map((v, i) => v + step[i]!),
    );
    const u = computeUpdate(before, after, "all");
    const rebuilt = withTrainable(
      before,
      "all",
      flattenTrainable(before, "all").map((v, i) => v + u[i]!),
    );
    expect(rebuilt).toEqual(after);
  });

  it("rejects mismatched models and scopes", () => {
    const a = initMlp([4, 3, 2], { random: xoshiroRandomBytes(4) });
    expect(() => computeUpdate(a, initMlp([4, 2], { random: xoshiroRandomBytes(4) }), "all")).toThrow(
      /before has 2 layers but after has 1/,
    );
    expect(() => computeUpdate(a, initMlp([4, 5, 2], { random: xoshiroRandomBytes(4) }), "all")).toThrow(
      /layer 0 differs/,
    );
    const relu = cloneMlp(a);
    relu.layers[1]!.activation = "relu";
    expect(() => computeUpdate(a, relu, "head")).toThrow(/layer 1 differs/);
    expect(() => computeUpdate(a, a, "none" as "all")).toThrow(TypeError);
  });
});
