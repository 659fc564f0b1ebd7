import { describe, expect, it } from "vitest";
import type { RoundStatus } from "@fedge/protocol";
import { publicRound } from "./rounds.tsx";

function round(mode: RoundStatus["params"]["privacy_mode"]): RoundStatus {
  return {
    round_id: "pop_1",
    model: "pop",
    state: "closed",
    params: {
      model_version: 1,
      clip_norm: 1,
      learning_rate: 0.1,
      local_epochs: 1,
      batch_size: 8,
      privacy_mode: mode,
      trainable: "all",
      update_length: 10,
      update_dtype: "float32",
      sampling_rate: 0.5,
      min_reports: 1,
      ...(mode === "none" ? {} : { mechanism: { noise_multiplier: 1.1, clip_rule: "fixed" as const } }),
    },
    opened_at: "2026-12-01T00:00:00.000Z",
    deadline: "2026-12-01T00:10:00.000Z",
    closed_at: "2026-12-01T00:10:00.000Z",
    close_reason: "deadline",
    aggregated_at: null,
    published_version: null,
    payloads_purged_at: null,
    checked_in: 41,
    selected: 23,
    accepted: 19,
  };
}

describe("what the rounds page may show of a round", () => {
  it("drops the exact counts of every DP mode before anything renders them", () => {
    for (const mode of ["central", "local", "distributed"] as const) {
      const shown = publicRound(round(mode));
      expect(shown.counts).toBeNull();
      expect(JSON.stringify(shown)).not.toMatch(/\b(41|23|19)\b/);
      expect(shown.params.mechanism?.noise_multiplier).toBe(1.1);
    }
  });

  it("keeps them for a round without DP", () => {
    expect(publicRound(round("none")).counts).toEqual({ checked_in: 41, selected: 23, accepted: 19 });
  });
});
