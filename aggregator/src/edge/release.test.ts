import { describe, expect, it } from "vitest";
import { RoundRelease } from "@fedge/protocol";
import type { RoundSummary } from "../checkpoint.ts";
import type { RoundCharge } from "./charge.ts";
import { releaseOf } from "./release.ts";

const summary: RoundSummary = {
  round: 3,
  roundId: "m_3",
  count: 17,
  unclippedCount: 11,
  clipNorm: 0.8,
  noiseStd: 0.9,
  mechanism: "discrete-gaussian",
  denominator: 16,
  nextClipNorm: 0.85,
  noisyUnclippedFraction: 0.59375,
  epsilon: 1.2,
  delta: 1e-5,
  warnings: [],
};
const adaptive: RoundCharge = {
  privacy_mode: "central",
  sampling_rate: 0.5,
  noise_multiplier: 1.1,
  clip_rule: "adaptive",
  count_noise_std: 0.8,
};

describe("releaseOf", () => {
  it("reports the noised unclipped count, C and z, and never the exact counts", () => {
    const r = releaseOf(summary, adaptive)!;
    expect(r).toEqual({
      clip_norm: 0.8,
      next_clip_norm: 0.85,
      noise_multiplier: 1.1,
      noise: "discrete-gaussian",
      unclipped: { noised_fraction: 0.59375, noised_count: 9.5, expected_clients: 16, noise_std: 0.8 },
    });
    expect(RoundRelease.parse(r)).toEqual(r);
    expect(JSON.stringify(r)).not.toMatch(/\b(17|11)\b/);
  });

  it("reports no count with a fixed clip norm, no noise in local mode, and nothing without DP", () => {
    const { noisyUnclippedFraction: _, ...fixedSummary } = summary;
    const { mechanism: _m, ...localSummary } = fixedSummary;
    const fixed = { ...adaptive, clip_rule: "fixed" as const, count_noise_std: null };
    expect(releaseOf(fixedSummary, fixed)).toEqual({
      clip_norm: 0.8,
      next_clip_norm: 0.8,
      noise_multiplier: 1.1,
      noise: "discrete-gaussian",
      unclipped: null,
    });
    // Local mode: the devices clipped to the task's C and drew the noise; the server clipped nothing.
    const local = { ...fixed, privacy_mode: "local" as const };
    expect(releaseOf({ ...localSummary, clipNorm: null }, local, 0.8)).toEqual({
      clip_norm: 0.8,
      next_clip_norm: 0.8,
      noise_multiplier: 1.1,
      unclipped: null,
    });
    expect(() => releaseOf({ ...localSummary, clipNorm: null }, local)).toThrow(RangeError);
    expect(releaseOf(summary, null)).toBeNull();
    // A summary that does not match its charge is a bug, not something to report.
    expect(() => releaseOf(fixedSummary, adaptive)).toThrow(RangeError);
    expect(() => releaseOf(summary, fixed)).toThrow(RangeError);
  });
});
