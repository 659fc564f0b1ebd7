import { describe, expect, it } from "vitest";
import { RoundRelease } from "./release.ts";

const adaptive = {
  clip_norm: 1,
  next_clip_norm: 0.9,
  noise_multiplier: 1.2,
  noise: "discrete-gaussian",
  unclipped: { noised_fraction: 0.75, noised_count: 3, expected_clients: 4, noise_std: 2 },
};

describe("RoundRelease", () => {
  it("takes a noised unclipped count with its σ_b, or no count with an unchanged C", () => {
    expect(RoundRelease.parse(adaptive)).toEqual(adaptive);
    const fixed = { clip_norm: 1, next_clip_norm: 1, noise_multiplier: 1.2, unclipped: null };
    expect(RoundRelease.parse(fixed)).toEqual(fixed);
  });

  it("refuses a count without its noise, one that is not fraction × m, report counts, and a moved C without a count", () => {
    const { noise_std: _, ...bare } = adaptive.unclipped;
    expect(RoundRelease.safeParse({ ...adaptive, unclipped: bare }).success).toBe(false);
    expect(RoundRelease.safeParse({ ...adaptive, unclipped: { ...adaptive.unclipped, noised_count: 4 } }).success).toBe(
      false,
    );
    expect(RoundRelease.safeParse({ ...adaptive, reports: 4 }).success).toBe(false);
    expect(RoundRelease.safeParse({ ...adaptive, unclipped: null }).success).toBe(false);
    expect(RoundRelease.safeParse({ ...adaptive, noise: "laplace" }).success).toBe(false);
  });
});
