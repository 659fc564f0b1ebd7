import { describe, expect, it } from "vitest";
import { createCpuBackend } from "@fedge/gpu-node";
import { parsePopulationConfig } from "../config.ts";
import { generateSigningKey } from "../export.ts";
import { RoundEngine } from "../round.ts";
import { EdgeAdminClient } from "./admin-client.ts";
import { EdgeRoundRunner } from "./runner.ts";
import type { EdgeRunnerState } from "./runner-state.ts";

// The runner's rounds against the real edge (open, resume after SIGKILL at each step, 409-as-done, gate refusal,
// abandon) are exercised end to end by test/aggregate-edge.test.ts (wrangler dev).
const state: EdgeRunnerState = {
  version: 1,
  model: "m",
  config: { model: "m" },
  modelVersion: 3,
  pending: { roundId: "m_4", modelVersion: 3, nextVersion: 5, servingVersion: 2, servingAccuracy: 0.5 },
};

describe("EdgeRoundRunner options", () => {
  it("names the bad option, and refuses a state for another model", async () => {
    const backend = createCpuBackend();
    const config = parsePopulationConfig({
      model: "m",
      privacy: { mode: "none" },
      samplingRate: 1,
      expectedClients: 2,
    });
    const engine = await RoundEngine.create({
      config,
      backend,
      initialModel: {
        layers: [
          { inFeatures: 2, outFeatures: 2, weight: new Float32Array(4), bias: new Float32Array(2), activation: "none" },
        ],
      },
    });
    const base = {
      engine,
      admin: new EdgeAdminClient({ baseUrl: "http://127.0.0.1:1", adminToken: "t" }),
      signingKey: generateSigningKey(),
      state: { ...state, pending: null },
    };
    try {
      expect(() => new EdgeRoundRunner({ ...base, pollMs: 0 })).toThrow(/pollMs must be an integer ≥ 1/);
      expect(() => new EdgeRoundRunner({ ...base, pollMs: 0 })).toThrow(RangeError);
      expect(() => new EdgeRoundRunner({ ...base, durationS: 1.5 })).toThrow(/durationS/);
      expect(() => new EdgeRoundRunner({ ...base, minReports: 5, maxReports: 2 })).toThrow(/minReports must be ≤/);
      expect(() => new EdgeRoundRunner({ ...base, state: { ...base.state, model: "other" } })).toThrow(
        /runner state is for "other"/,
      );
      expect(() => new EdgeRoundRunner({ ...base, state: { ...base.state, model: "other" } })).toThrow(
        expect.objectContaining({ reason: "state_mismatch" }),
      );
      expect(new EdgeRoundRunner(base).runnerState.modelVersion).toBe(3);
    } finally {
      engine.dispose();
      await backend.dispose();
    }
  });
});
