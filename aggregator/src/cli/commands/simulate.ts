/**
 * @module
 * `fedge simulate`: runs the aggregator pipeline with N simulated clients in one process (see `simulate/`). Prints one
 * JSON line per round (`"type":"round"`) and a final summary line (`"type":"summary"`).
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { createBackend, createParamShardedBackend } from "@fedge/gpu-node";
import { CheckpointStore } from "../../checkpoint.ts";
import { ConfigError, configFromFlags, POPULATION_CONFIG_FLAGS } from "../../config.ts";
import { loadOrCreateSigningKey } from "../../export.ts";
import { runSimulation } from "../../simulate/simulate.ts";
import { UsageError, type Command } from "../command.ts";

const USAGE = `Usage:
  fedge simulate [--mode synthetic|mnist] [--clients N] [--rounds T] [--params P] [population options]

Runs DP-FedAvg rounds (the same round engine, strategies, Backend and optimizers as \`fedge aggregate\`) with N
simulated clients and no HTTP. Each round samples every client with an independent CSPRNG coin (probability
--sampling-rate), generates or trains each sampled client's update on the fly and streams it into the Backend,
so memory stays O(model size). Prints one JSON line per round and a summary line.

Simulation:
  --mode M               synthetic (update = f(client id, round) + pseudo-noise; default) or mnist (real local SGD)
  --clients N            population size (default 10000; mnist: at most a few thousand)
  --rounds T             rounds to run (default 5; stops early when the privacy budget is spent)
  --params P             synthetic: parameters per update (default 100000)
  --hidden W[,W…]        mnist: hidden layer widths (default none: softmax regression 784→10)
  --labels-per-client K  mnist: digits per client, 10 ≈ IID, 2 = non-IID (default 10)
  --seed S               seed of the simulated data/init (default random); privacy noise never uses it
  --backend B            auto | cpu | webgpu (default: FEDGE_BACKEND or auto)
  --param-shards K       aggregate with the parameters cut into K slices, one backend each, combined per update
                         (how a model larger than one GPU is aggregated; the same model as K = 1, default 1)
  --checkpoint DIR       keep (and resume from) a checkpoint in DIR
  --export-dir DIR       write each published version as int8 ONNX + signed manifest (needs --key)
  --key FILE             aggregator Ed25519 key file (created 0600 if missing)

Population (or --config FILE with a JSON population config; flags override it):
  --model NAME (default "simulated")       --privacy-mode central|local|distributed|none (default central)
  --noise-multiplier Z (default 1)          --target-epsilon E (budget, default 10)   --delta D (default 1e-5)
  --accountant rdp|pld                      --sampling-rate Q (default 0.01)          --expected-clients M (default Q·N)
  --noise-mechanism discrete-gaussian|gaussian (central mode; default discrete-gaussian, floating-point safe)
  --bits B --min-clients N --max-clients N --corrupt-fraction F --cohort checked-in|sampled (distributed mode:
                                            modulus 2^B, default 20; who adds noise shares, default checked-in: every
                                            device, a coin-excluded one with a zero update (n = M/Q shares), or only
                                            the sampled ones (n = M); fewest inputs released, default ⌈0.8·n⌉,
                                            charged N − 1 − ⌊F·max⌋ shares; most inputs the modulus holds, default
                                            2·n; F the fraction of devices that may collude with the server, in
                                            [0, 1/3), default 0; the modular sum is computed in the clear where
                                            secure aggregation would compute it)
  --clip-norm C (default 1)                 --adaptive [--target-quantile G] [--clip-lr H] [--count-noise-std S]
  --optimizer fedavg|fedavgm|fedadam|fedyogi [--server-lr η] [--momentum μ] [--beta1 b1] [--beta2 b2] [--tau τ]
  --robust median|trimmed_mean [--trim-fraction β]   (privacy mode none only)
  --client-lr L  --local-epochs E  --client-batch-size B  --max-accuracy-drop A  --batch-size K  --trainable all|head
  --update-dtype int8|float32              what devices upload (default int8: ¼ of the bytes, norm bound kept)
`;

function int(name: string, v: string | undefined, fallback: number, min: number): number {
  if (v === undefined) return fallback;
  const x = Number(v);
  if (!/^\+?\d+$/.test(v.trim()) || !Number.isSafeInteger(x) || x < min)
    throw new UsageError(`--${name} must be an integer >= ${min}, got "${v}"`);
  return x;
}

export const simulateCommand: Command = {
  summary: "run DP-FedAvg rounds with N simulated clients in one process (no HTTP); JSON line per round",
  usage: USAGE,
  async run(argv, io) {
    let values: Record<string, string | boolean | undefined>;
    try {
      ({ values } = parseArgs({
        args: argv,
        strict: true,
        allowPositionals: false,
        options: {
          ...POPULATION_CONFIG_FLAGS,
          mode: { type: "string" },
          clients: { type: "string" },
          rounds: { type: "string" },
          params: { type: "string" },
          hidden: { type: "string" },
          "labels-per-client": { type: "string" },
          seed: { type: "string" },
          backend: { type: "string" },
          "param-shards": { type: "string" },
          checkpoint: { type: "string" },
          "export-dir": { type: "string" },
          key: { type: "string" },
        },
      }));
    } catch (err) {
      throw new UsageError((err as Error).message.split("\n")[0]!);
    }
    const mode = (values.mode as string | undefined) ?? "synthetic";
    if (mode !== "synthetic" && mode !== "mnist")
      throw new UsageError(`--mode must be synthetic or mnist, got "${mode}"`);
    const clients = int("clients", values.clients as string | undefined, 10_000, 1);
    const rounds = int("rounds", values.rounds as string | undefined, 5, 0);
    const params = int("params", values.params as string | undefined, 100_000, 2);
    const labelsPerClient = int("labels-per-client", values["labels-per-client"] as string | undefined, 10, 1);
    const seedText = values.seed as string | undefined;
    const seed = seedText === undefined ? undefined : int("seed", seedText, 0, 0);
    const hiddenText = values.hidden as string | undefined;
    const hidden = hiddenText ? hiddenText.split(",").map((w) => int("hidden", w, 0, 1)) : [];
    const paramShards = int("param-shards", values["param-shards"] as string | undefined, 1, 1);
    const backendName = (values.backend as string | undefined) ?? "auto";
    if (backendName !== "auto" && backendName !== "cpu" && backendName !== "webgpu") {
      throw new UsageError(`--backend must be auto, cpu or webgpu, got "${backendName}"`);
    }
    if (values["export-dir"] !== undefined && values.key === undefined)
      throw new UsageError("--export-dir needs --key FILE");

    let base: Record<string, unknown> = {};
    if (typeof values.config === "string") {
      try {
        base = JSON.parse(await readFile(values.config, "utf8")) as Record<string, unknown>;
      } catch (e) {
        throw new UsageError(`--config ${values.config}: ${(e as Error).message}`);
      }
    }
    const q =
      values["sampling-rate"] !== undefined
        ? Number(values["sampling-rate"])
        : ((base.samplingRate as number | undefined) ?? 0.01);
    const defaults: Record<string, unknown> = {
      model: "simulated",
      samplingRate: 0.01,
      expectedClients: q * clients,
      ...base,
      privacy: {
        mode: "central",
        noiseMultiplier: 1,
        budget: { epsilon: 10, delta: 1e-5 },
        ...((base.privacy as object | undefined) ?? {}),
      },
    };
    if ((defaults.privacy as { mode?: string }).mode === "none" && values["privacy-mode"] === undefined)
      delete (defaults.privacy as Record<string, unknown>).budget;
    if (values["privacy-mode"] === "none") {
      const p = defaults.privacy as Record<string, unknown>;
      delete p.budget;
      delete p.noiseMultiplier;
    }
    let config;
    try {
      config = configFromFlags(values, defaults);
    } catch (e) {
      if (e instanceof ConfigError) throw new UsageError(e.message);
      throw e;
    }
    const make = () => createBackend({ prefer: backendName, log: (m) => io.stderr(`${m}\n`) });
    const backend =
      paramShards === 1
        ? await make()
        : createParamShardedBackend({ shards: await Promise.all(Array.from({ length: paramShards }, make)) });
    try {
      const signingKey = typeof values.key === "string" ? await loadOrCreateSigningKey(values.key) : undefined;
      const summary = await runSimulation({
        config,
        backend,
        clients,
        rounds,
        mode,
        params,
        hidden,
        labelsPerClient,
        ...(seed !== undefined ? { seed } : {}),
        ...(typeof values.checkpoint === "string" ? { store: new CheckpointStore({ dir: values.checkpoint }) } : {}),
        ...(typeof values["export-dir"] === "string" ? { exportDir: values["export-dir"] } : {}),
        ...(signingKey ? { signingKey } : {}),
        onRound: (r) => {
          io.stdout(JSON.stringify({ type: "round", ...r }) + "\n");
          const eps = r.epsilon === null ? "" : ` · ε ${r.epsilon.toFixed(3)}`;
          io.progress?.(`fedge simulate: round ${r.round}/${rounds} · ${r.count} updates${eps}`);
        },
        log: (m) => io.stderr(`${m}\n`),
      });
      io.stdout(JSON.stringify({ type: "summary", ...summary, paramShards }) + "\n");
      return 0;
    } finally {
      await backend.dispose();
    }
  },
};
