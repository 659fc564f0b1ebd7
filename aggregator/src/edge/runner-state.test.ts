import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  EDGE_RUNNER_STATE_FILE,
  loadEdgeRunnerState,
  saveEdgeRunnerState,
  type EdgeRunnerState,
} from "./runner-state.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "fedge-runner-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const state: EdgeRunnerState = {
  version: 1,
  model: "m",
  config: { model: "m" },
  modelVersion: 3,
  pending: { roundId: "m_4", modelVersion: 3, nextVersion: 5, servingVersion: 2, servingAccuracy: 0.5 },
};

describe("runner state file", () => {
  it("round-trips atomically and is absent until written", async () => {
    expect(await loadEdgeRunnerState(dir)).toBeNull();
    await saveEdgeRunnerState(dir, state);
    expect(await loadEdgeRunnerState(dir)).toEqual(state);
    await saveEdgeRunnerState(dir, { ...state, pending: null });
    expect((await loadEdgeRunnerState(dir))!.pending).toBeNull();
    expect(JSON.parse(await readFile(join(dir, EDGE_RUNNER_STATE_FILE), "utf8")).modelVersion).toBe(3);
  });

  it("refuses a corrupt or mis-shaped file with a clear error", async () => {
    await writeFile(join(dir, EDGE_RUNNER_STATE_FILE), "{not json");
    await expect(loadEdgeRunnerState(dir)).rejects.toThrow(/edge-runner\.json is not JSON/);
    await writeFile(join(dir, EDGE_RUNNER_STATE_FILE), JSON.stringify({ ...state, modelVersion: 0 }));
    await expect(loadEdgeRunnerState(dir)).rejects.toThrow(/edge-runner\.json is invalid/);
    await expect(loadEdgeRunnerState(dir)).rejects.toMatchObject({ name: "EdgeClientError", reason: "corrupt_state" });
  });
});
