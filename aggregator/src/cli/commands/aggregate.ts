/**
 * @module
 * `fedge aggregate`: runs a population's rounds through the real edge with the resumable {@link EdgeRoundRunner}
 * (`edge/runner.ts`): privacy ledger check, open the round on the edge, wait for it to close, stream + re-verify +
 * aggregate on the Backend, evaluate, export int8 ONNX + signed manifest, upload, promote when the gate passes,
 * checkpoint. One JSON line per round on stdout; progress on stderr.
 */
import { readFile } from "node:fs/promises";
import { z } from "zod";
import { createBackend } from "@fedge/gpu-node";
import { FedgeError } from "@fedge/protocol";
import { type MlpParams } from "@fedge/ml";
import { CheckpointStore } from "../../checkpoint.ts";
import { POPULATION_CONFIG_FLAGS } from "../../config.ts";
import { loadMnist } from "../../data/mnist.ts";
import type { EvalSet } from "../../evaluate.ts";
import { RoundEngine, type RoundHooks } from "../../round.ts";
import { fetchEdgeModel, fetchModelDetail } from "../../edge/edge-registry.ts";
import { EdgeRoundRunner, type EdgeRunnerHooks } from "../../edge/runner.ts";
import { edgeRunnerStateOf, loadEdgeRunnerState, saveEdgeRunnerState } from "../../edge/runner-state.ts";
import { pinSavedMechanism } from "../../edge/charge.ts";
import { UsageError, parseFlags, type Command } from "../command.ts";
import {
  ADMIN_TOKEN_SYNOPSIS,
  EDGE_FLAGS,
  EDGE_HELP,
  adminClientOf,
  backendOf,
  edgeUrl,
  edgeUsageHeader,
  intFlag,
  readConfigFile,
  resolveConfig,
  signingKeyOf,
  withEdge,
  type FlagValues,
} from "./edge-options.ts";

const USAGE = `${edgeUsageHeader(
  "aggregate",
  "[--config FILE] [--checkpoint-dir DIR] [--signing-key FILE]",
  `${ADMIN_TOKEN_SYNOPSIS} [--rounds N] [--round-duration-s S]`,
  "[population options]",
)}
Runs N training rounds of a population through the edge. Each round:
  1. checks the privacy ledgers, the edge's first (the authority: its budget, set by the operator with
     PUT /v1/admin/populations/NAME/privacy-budget, counts every round it ever charged, whatever checkpoint dir is
     used) then the checkpoint's: a round that would exceed a budget is refused (exit 1, budget_exceeded, message
     names the budget and the projected ε) before any device sees it;
  2. opens the round on the edge with the task (clip norm, privacy mode, client lr/epochs/batch, q) and the
     mechanism the edge charges (z, clip rule, σ_b); before aggregating, a round whose charge on the edge differs
     from what this run would aggregate with is refused (exit 1, conflict: charge_mismatch);
  3. waits until it closes (its deadline, or --max-reports accepted updates), polling its status;
  4. streams the accepted updates, re-verifies every Ed25519 signature, aggregates them on the Backend (clip, noise,
     fixed denominator, server optimizer, adaptive clip);
  5. exports the new model (int8 ONNX + manifest signed with the aggregator key), evaluates those int8 bytes on the
     held-out set (the accuracy the manifest signs), uploads it, and promotes it to serving unless that int8 accuracy
     is more than --max-accuracy-drop below the served int8 version's (a tie publishes; the refusal and its reason
     are recorded in the checkpoint's publish log);
  6. checkpoints, and prints one JSON line ({"type":"round", roundId, outcome, version, servingVersion, accuracy
     (int8), accuracyFp32, servingAccuracyBefore (int8), epsilon, ...}).
With --checkpoint-dir, a rerun after a crash resumes the round in progress without charging privacy twice, re-opening
the edge round or uploading the version twice. Without a checkpoint, the first run starts from the edge's serving
version (seed one first with POST /v1/admin/models/NAME/versions).

Edge:
${EDGE_HELP.edge}
${EDGE_HELP.adminTokenFile(
  "; without it, requests are signed with the aggregator key, which the edge must trust " +
    "(FEDGE_AGGREGATOR_PUBLIC_KEY or --register-key)",
)}
  --register-key           register the aggregator key with the admin token, then sign requests with it
${EDGE_HELP.signingKey("; default DIR/aggregator-key.json")}
${EDGE_HELP.checkpointDir("checkpoint + runner state (resume after a crash; the config is remembered there)")}

Rounds:
  --rounds N               rounds to run (default 1)
  --round-duration-s S     collecting window per round (default 600)
  --min-reports K          fewer accepted updates and the round is abandoned (default 1; exactly 1 with DP)
  --max-reports M          the round closes once M updates are accepted (default 1000000; privacy mode none only:
                           DP rounds keep Poisson sampling and close at their deadline)
  --wait-poll-ms P         status poll interval while a round collects (default 1000)
  --backend B              auto | cpu | webgpu (default: FEDGE_BACKEND or auto)
  --eval-set E             held-out set of the publish gate: auto (default: MNIST test split when the model is
                           784→…→10, else none), mnist, none, or a JSON file {"x": number[] (n×features, row-major),
                           "y": number[]}

Population (or --config FILE with a JSON population config; flags override it; a resumed run reuses the saved one,
and for a round in progress the saved mechanism (privacy, sampling rate, expected clients, clipping) wins over both):
  --model NAME  --privacy-mode central|local|none  --noise-multiplier Z  --target-epsilon E  --delta D
  --accountant rdp|pld  --sampling-rate Q  --expected-clients M  --clip-norm C
  --noise-mechanism discrete-gaussian|gaussian (central mode; default discrete-gaussian, floating-point safe)
  --adaptive [--target-quantile G] [--clip-lr H] [--count-noise-std S]
  --optimizer fedavg|fedavgm|fedadam|fedyogi [--server-lr η] [--momentum μ] [--beta1 b1] [--beta2 b2] [--tau τ]
  --robust median|trimmed_mean [--trim-fraction β]   --client-lr L  --local-epochs E  --client-batch-size B
  --max-accuracy-drop A  --batch-size K  --trainable all|head
  --update-dtype int8|float32              what devices upload (default int8: ¼ of the bytes, norm bound kept)
Exit codes: 0 ok, 2 bad arguments, 1 the run failed (budget_exceeded, edge errors, checkpoint conflicts); see
fedge --help.
Test hook: FEDGE_AGGREGATE_CRASH_AT=after-open|after-edge-open|after-aggregate|after-upload|after-release kills the
process (SIGKILL) right after that step, to exercise resume.
`;

const CRASH_POINTS = ["after-open", "after-edge-open", "after-aggregate", "after-upload", "after-release"] as const;

const EvalFile = z.strictObject({
  x: z.array(z.number().finite()),
  y: z.array(z.number().int().min(0)),
});

async function evalSetOf(spec: string, model: MlpParams): Promise<EvalSet | undefined> {
  const first = model.layers[0]!;
  const last = model.layers[model.layers.length - 1]!;
  const isMnist = first.inFeatures === 784 && last.outFeatures === 10;
  if (spec === "none") return undefined;
  if (spec === "auto") return isMnist ? loadMnist().test : undefined;
  if (spec === "mnist") {
    if (!isMnist)
      throw new UsageError(
        `--eval-set mnist needs a 784→…→10 model, this one is ${first.inFeatures}→…→${last.outFeatures}`,
      );
    return loadMnist().test;
  }
  let parsed;
  try {
    parsed = EvalFile.safeParse(JSON.parse(await readFile(spec, "utf8")));
  } catch (e) {
    throw new UsageError(`--eval-set ${spec}: ${(e as Error).message}`);
  }
  if (!parsed.success) throw new UsageError(`--eval-set ${spec}: ${parsed.error.issues[0]?.message ?? "invalid"}`);
  const { x, y } = parsed.data;
  const n = y.length;
  if (n === 0 || x.length !== n * first.inFeatures)
    throw new UsageError(`--eval-set ${spec}: needs n > 0 labels and n × ${first.inFeatures} features`);
  return { x: Float32Array.from(x), y: Int32Array.from(y), n };
}

function crashHook(point: string): () => void {
  return () => {
    process.stderr.write(`fedge aggregate: FEDGE_AGGREGATE_CRASH_AT=${point}: killing the process\n`);
    process.kill(process.pid, "SIGKILL");
  };
}

export const aggregateCommand: Command = {
  summary: "run training rounds through the edge (ledger, open, wait, verify, aggregate, publish); JSON line per round",
  usage: USAGE,
  async run(argv, io) {
    const values: FlagValues = parseFlags(argv, {
      ...POPULATION_CONFIG_FLAGS,
      ...EDGE_FLAGS,
      rounds: { type: "string" },
      "round-duration-s": { type: "string" },
      "min-reports": { type: "string" },
      "max-reports": { type: "string" },
      "wait-poll-ms": { type: "string" },
      backend: { type: "string" },
      "eval-set": { type: "string" },
    });
    const log = (line: string) => io.stderr(`${line}\n`);
    const url = edgeUrl(values);
    const rounds = intFlag(values, "rounds", 1, 0);
    const durationS = intFlag(values, "round-duration-s", 600, 1);
    const minReports = intFlag(values, "min-reports", 1, 1);
    const maxReports = intFlag(values, "max-reports", 1_000_000, 1);
    if (minReports > maxReports) throw new UsageError("--min-reports must be <= --max-reports");
    const pollMs = intFlag(values, "wait-poll-ms", 1000, 1);
    const backendName = backendOf(values);
    const evalSpec = (values["eval-set"] as string | undefined) ?? "auto";
    const crashAt = process.env.FEDGE_AGGREGATE_CRASH_AT;
    if (crashAt !== undefined && crashAt !== "" && !(CRASH_POINTS as readonly string[]).includes(crashAt))
      throw new UsageError(`FEDGE_AGGREGATE_CRASH_AT must be one of ${CRASH_POINTS.join(", ")}, got "${crashAt}"`);

    // Config: flags over --config over the runner state saved in the checkpoint dir.
    const dir = values["checkpoint-dir"] as string | undefined;
    const saved = dir ? await loadEdgeRunnerState(dir) : null;
    const base =
      typeof values.config === "string" ? await readConfigFile(values.config) : ((saved?.config ?? {}) as object);
    let config = resolveConfig(values, base as Record<string, unknown>);
    if (saved && saved.model !== config.model)
      throw new UsageError(`--checkpoint-dir ${dir} belongs to model "${saved.model}", not "${config.model}"`);
    // A round in progress was charged on the edge for the saved mechanism: that one wins over flags and --config.
    if (saved?.pending) config = pinSavedMechanism(config, saved.config, log);
    if (config.privacy.mode !== "none") {
      // Poisson sampling: the edge refuses both in DP rounds (a count-based close displaces devices: sensitivity 2C).
      if (values["max-reports"] !== undefined)
        throw new UsageError(
          `--max-reports is refused in privacy mode ${config.privacy.mode} (DP rounds close at their deadline)`,
        );
      if (minReports !== 1) throw new UsageError(`--min-reports must be 1 in privacy mode ${config.privacy.mode}`);
    }
    return withEdge(url, async () => {
      const signing = await signingKeyOf(values);
      if (!signing)
        throw new UsageError("give --signing-key FILE (or --checkpoint-dir DIR): the manifests are signed with it");
      const admin = await adminClientOf(url, values, signing.key, log);

      const store = dir ? new CheckpointStore({ dir }) : undefined;
      const checkpoint = store ? await store.load() : null;
      let initialModel: MlpParams | undefined;
      let modelVersion = saved?.modelVersion;
      if (!checkpoint) {
        const detail = await fetchModelDetail(url, config.model);
        if (!detail || detail.serving_version === null)
          throw new FedgeError(
            "model_not_found",
            404,
            `the edge has no serving version of "${config.model}": seed one (POST /v1/admin/models/${config.model}/versions) first`,
          );
        const seed = await fetchEdgeModel(url, config.model, detail.serving_version);
        initialModel = seed.params;
        modelVersion = seed.version;
        log(`starting from ${config.model} v${seed.version} served by ${url} (sha256 ${seed.sha256.slice(0, 12)}…)`);
        // the runner state is written before the engine's first checkpoint, so a checkpoint never lacks one
        if (dir) await saveEdgeRunnerState(dir, edgeRunnerStateOf(config, seed.version, null));
      } else if (modelVersion === undefined) {
        throw new UsageError(
          `--checkpoint-dir ${dir} holds a checkpoint but no edge-runner.json (was it written by fedge simulate?)`,
        );
      }

      const engineHooks: RoundHooks = {};
      const runnerHooks: EdgeRunnerHooks = {};
      if (crashAt === "after-open") engineHooks.afterOpen = crashHook(crashAt);
      if (crashAt === "after-aggregate") engineHooks.afterAggregate = crashHook(crashAt);
      if (crashAt === "after-edge-open") runnerHooks.afterEdgeOpen = crashHook(crashAt);
      if (crashAt === "after-upload") runnerHooks.afterUpload = crashHook(crashAt);
      if (crashAt === "after-release") runnerHooks.afterRelease = crashHook(crashAt);

      const backend = await createBackend({ prefer: backendName, log });
      let engine: RoundEngine | undefined;
      try {
        engine = await RoundEngine.create({
          config,
          backend,
          ...(store ? { store } : {}),
          ...(initialModel ? { initialModel } : {}),
          log,
          hooks: engineHooks,
        });
        const heldOut = await evalSetOf(evalSpec, engine.model);
        const state = edgeRunnerStateOf(config, modelVersion!, saved?.pending ?? null);
        const runner = new EdgeRoundRunner({
          engine,
          admin,
          signingKey: signing.key,
          state,
          ...(dir ? { stateDir: dir } : {}),
          ...(heldOut ? { heldOut } : {}),
          durationS,
          minReports,
          maxReports,
          pollMs,
          hooks: runnerHooks,
          log,
        });
        // A resumed round counts as one of the N.
        for (let r = 0; r < rounds; r++) {
          io.progress?.(`fedge aggregate: round ${r + 1}/${rounds} · collecting on ${url}`);
          const result = await runner.runRound();
          io.stdout(JSON.stringify(result) + "\n");
          const eps = result.epsilon === null ? "" : ` · ε ${result.epsilon.toFixed(3)}`;
          io.progress?.(
            `fedge aggregate: round ${r + 1}/${rounds} · ${result.outcome} · ${result.accepted} updates${eps}`,
          );
        }
        return 0;
      } finally {
        engine?.dispose();
        await backend.dispose();
      }
    });
  },
};
