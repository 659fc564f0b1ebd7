/**
 * @module
 * `fedge rollback`: makes the edge serve the previous serving version again (`POST /v1/admin/models/:name/rollback`),
 * or a given one (`--to V`: `POST /v1/admin/models/:name/serving`), and records it in the aggregator's checkpoint
 * (`RoundEngine.recordRollback`) when `--checkpoint-dir` is given. Prints one JSON line.
 */
import { createBackend } from "@fedge/gpu-node";
import { FedgeError, ModelName, RegistryChange } from "@fedge/protocol";
import { CheckpointStore } from "../../checkpoint.ts";
import { POPULATION_CONFIG_FLAGS, type PopulationConfig } from "../../config.ts";
import { RoundEngine, RoundStateError } from "../../round.ts";
import { fetchModelDetail } from "../../edge/edge-registry.ts";
import { loadEdgeRunnerState } from "../../edge/runner-state.ts";
import { UsageError, parseFlags, type Command } from "../command.ts";
import {
  ADMIN_TOKEN_SYNOPSIS,
  EDGE_FLAGS,
  EDGE_HELP,
  adminClientOf,
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
  "rollback",
  "[--to VERSION] [--checkpoint-dir DIR] [--reason TEXT]",
  `${ADMIN_TOKEN_SYNOPSIS.slice(0, -1)} | --signing-key FILE]`,
)}
Makes the edge serve the previous serving version again (its serving history), or VERSION with --to (it must exist
on the edge). With --checkpoint-dir, the rollback is also recorded in the aggregator's checkpoint (publish log and
serving version; the population config is read from the directory's runner state, or --config FILE), so the next
\`fedge aggregate\` round gates against the version that serves. A version the aggregator never published (e.g. the
seed) is rolled back on the edge but cannot be recorded: the line says "recorded": false and why.

Prints {"type":"rollback","model","from","to","recorded",...}.
${EDGE_HELP.edge}
  --model NAME             the model
  --to VERSION             serve this version (default: the previous serving version)
  --reason TEXT            recorded with the rollback (default "manual rollback")
${EDGE_HELP.checkpointDir("the aggregator's checkpoint to record it in")}
${EDGE_HELP.adminTokenFile("; a rollback without --to needs it, else --to is signed with")}
${EDGE_HELP.signingKey("; default DIR/aggregator-key.json")}
Exit codes: 0 ok, 2 bad arguments, 1 other errors (no earlier version: 409 conflict; unknown version: 404).
`;

export const rollbackCommand: Command = {
  summary: "serve the previous (or a given) model version again on the edge, and record it in the checkpoint",
  usage: USAGE,
  async run(argv, io) {
    const values: FlagValues = parseFlags(argv, {
      ...EDGE_FLAGS,
      config: POPULATION_CONFIG_FLAGS.config,
      model: POPULATION_CONFIG_FLAGS.model,
      to: { type: "string" },
      reason: { type: "string" },
    });
    const log = (line: string) => io.stderr(`${line}\n`);
    const url = edgeUrl(values);
    const model = values.model;
    if (typeof model !== "string") throw new UsageError("missing --model NAME");
    if (!ModelName.safeParse(model).success) throw new UsageError(`--model "${model}" is not a valid model name`);
    const to = values.to === undefined ? undefined : intFlag(values, "to", 0, 1);
    const reason = typeof values.reason === "string" && values.reason.trim() ? values.reason : "manual rollback";
    const dir = values["checkpoint-dir"] as string | undefined;

    // Check the checkpoint side first, so a bad directory changes nothing on the edge.
    let config: PopulationConfig | undefined;
    if (dir) {
      const saved = await loadEdgeRunnerState(dir);
      const base = typeof values.config === "string" ? await readConfigFile(values.config) : saved?.config;
      if (!base)
        throw new UsageError(`--checkpoint-dir ${dir} has no edge-runner.json; give the population's --config FILE`);
      config = resolveConfig({ model }, base);
      if (!(await new CheckpointStore({ dir }).load()))
        throw new UsageError(`--checkpoint-dir ${dir} holds no checkpoint`);
    }
    return withEdge(url, async () => {
      const signing = await signingKeyOf(values);
      const admin = await adminClientOf(url, values, signing?.key ?? null, log);

      const before = await fetchModelDetail(url, model);
      if (!before) throw new FedgeError("model_not_found", 404, `the edge has no model named ${model}`);
      const from = before.serving_version;
      const path = `/v1/admin/models/${encodeURIComponent(model)}/${to === undefined ? "rollback" : "serving"}`;
      const body =
        to === undefined
          ? undefined
          : { bytes: new TextEncoder().encode(JSON.stringify({ version: to })), contentType: "application/json" };
      // The edge refuses the aggregator's signature for a rollback (only the admin token may roll back); --to is a
      // promote, which a signed request may do.
      const res = await admin.request("POST", path, body, to === undefined);
      const change = RegistryChange.parse(await res.json());
      const now = change.model.serving_version;
      const out: Record<string, unknown> = { type: "rollback", model, from, to: now, recorded: false };
      if (config && dir && now !== null) {
        const backend = await createBackend({ prefer: "cpu", log });
        let engine: RoundEngine | undefined;
        try {
          engine = await RoundEngine.create({ config, backend, store: new CheckpointStore({ dir }), log });
          await engine.recordRollback(now, reason);
          out.recorded = true;
        } catch (e) {
          if (!(e instanceof RoundStateError && e.reason === "version_not_published")) throw e;
          out.note = `the edge serves v${now} again, but the checkpoint was not changed: ${e.message}`;
        } finally {
          engine?.dispose();
          await backend.dispose();
        }
      }
      io.stdout(JSON.stringify(out) + "\n");
      return 0;
    });
  },
};
