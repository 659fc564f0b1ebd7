/**
 * @module
 * The runner state file of `fedge aggregate` (`edge-runner.json`, beside the checkpoint): the population config the
 * rounds run with, the edge version holding the engine's model, and the round in progress as planned BEFORE the
 * ledger was charged (round id, versions, the gate's reference accuracy). Written atomically (tmp, fsync, rename).
 */
import { mkdir, open, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import type { PopulationConfig } from "../config.ts";
import { EdgeClientError } from "./admin-client.ts";

/** File name of the runner state, in the checkpoint directory. */
export const EDGE_RUNNER_STATE_FILE = "edge-runner.json";

const PendingRound = z.strictObject({
  roundId: z.string().min(1),
  /** Version devices download and train from. */
  modelVersion: z.number().int().min(1),
  /** Version the new global model gets. */
  nextVersion: z.number().int().min(1),
  /** Accuracy of the version the edge served when the round was planned (the gate's reference). */
  servingAccuracy: z.number().min(0).max(1).optional(),
  servingVersion: z.number().int().min(1).nullable(),
});
export type PendingRound = z.infer<typeof PendingRound>;

export const EdgeRunnerState = z.strictObject({
  version: z.literal(1),
  model: z.string().min(1),
  /** The population config the rounds run with (validated again on load by the caller). */
  config: z.record(z.string(), z.unknown()),
  /** The edge version holding the engine's current model (devices train from it). */
  modelVersion: z.number().int().min(1),
  pending: PendingRound.nullable(),
});
export type EdgeRunnerState = z.infer<typeof EdgeRunnerState>;

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, "w", 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

/** Reads the runner state of `dir`, or `null` when there is none. Throws `EdgeClientError` (`corrupt_state`) on a corrupt file. */
export async function loadEdgeRunnerState(dir: string): Promise<EdgeRunnerState | null> {
  let text: string;
  try {
    text = await readFile(join(dir, EDGE_RUNNER_STATE_FILE), "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
  let parsed;
  try {
    parsed = EdgeRunnerState.safeParse(JSON.parse(text));
  } catch (e) {
    throw new EdgeClientError(
      "corrupt_state",
      `${join(dir, EDGE_RUNNER_STATE_FILE)} is not JSON: ${(e as Error).message}`,
    );
  }
  if (!parsed.success) {
    throw new EdgeClientError(
      "corrupt_state",
      `${join(dir, EDGE_RUNNER_STATE_FILE)} is invalid: ${parsed.error.message}`,
    );
  }
  return parsed.data;
}

/** A runner state for `config` whose devices train from edge version `modelVersion`, with no round planned. */
export function edgeRunnerStateOf(
  config: PopulationConfig,
  modelVersion: number,
  pending: PendingRound | null = null,
): EdgeRunnerState {
  return {
    version: 1,
    model: config.model,
    config: config as unknown as Record<string, unknown>,
    modelVersion,
    pending,
  };
}

/** Atomically writes the runner state into `dir` (created 0700 if missing). */
export async function saveEdgeRunnerState(dir: string, state: EdgeRunnerState): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeAtomic(join(dir, EDGE_RUNNER_STATE_FILE), JSON.stringify(state, null, 1) + "\n");
}
