/**
 * `npm run demo`: trains a private MNIST model across simulated devices through the real local edge (`wrangler dev`),
 * then writes demo-out/report.md, demo-out/accuracy_vs_round.svg and demo-out/accuracy_vs_epsilon.svg.
 * What it does, step by step: README "What the demo does"; the code: demo/src/.
 *
 *   npm run demo -- [--clients N] [--rounds R] [--epsilon E] [--no-dp] [--no-baseline] [--backend auto|cpu|webgpu]
 *                   [--sampling-rate Q] [--server-lr L] [--server-momentum M] [--clip-quantile G] [--port P] [--out DIR]
 */
import { parseArgs } from "node:util";
import { runDemo } from "./src/demo.ts";

const USAGE = `usage: npm run demo -- [options]
  --clients N         simulated devices (default 1000)
  --rounds R          rounds per run (default 12)
  --epsilon E         target user-level ε of the private run, δ = 1e-5 (default 4)
  --no-dp             run only the non-private training (no clipping in effect, no noise)
  --no-baseline       skip the non-private baseline run after the private one
  --backend B         aggregation backend: auto | cpu | webgpu (default auto: webgpu if an adapter exists)
  --sampling-rate Q   Poisson sampling rate per device per round (default 0.3)
  --server-lr L       FedAvgM server learning rate (default 4)
  --server-momentum M FedAvgM momentum in [0, 1) (default 0.5)
  --clip-quantile G   adaptive clipping target quantile in (0, 1) (default 0.3)
  --port P            local edge port (default 8787, or FEDGE_DEMO_PORT)
  --out DIR           output folder (default demo-out)`;

function fail(message: string): never {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      clients: { type: "string" },
      rounds: { type: "string" },
      epsilon: { type: "string" },
      "no-dp": { type: "boolean" },
      "no-baseline": { type: "boolean" },
      backend: { type: "string" },
      "sampling-rate": { type: "string" },
      "server-lr": { type: "string" },
      "server-momentum": { type: "string" },
      "clip-quantile": { type: "string" },
      port: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (e) {
  fail((e as Error).message);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

function int(name: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!/^\d+$/.test(v) || x < min || x > max) fail(`--${name} must be an integer in [${min}, ${max}], got "${v}"`);
  return x;
}
function num(name: string, v: string | undefined, ok: (x: number) => boolean, what: string): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (v.trim() === "" || !Number.isFinite(x) || !ok(x)) fail(`--${name} must be ${what}, got "${v}"`);
  return x;
}

const backend = values.backend ?? process.env.FEDGE_BACKEND ?? "auto";
if (backend !== "auto" && backend !== "cpu" && backend !== "webgpu")
  fail(`--backend must be auto, cpu or webgpu, got "${backend}"`);
const clients = int("clients", values.clients, 20, 6000);
const rounds = int("rounds", values.rounds, 1, 1000);
const port = int("port", values.port ?? process.env.FEDGE_DEMO_PORT, 1, 65535);
const epsilon = num("epsilon", values.epsilon, (x) => x > 0, "a number > 0");
const samplingRate = num("sampling-rate", values["sampling-rate"], (x) => x > 0 && x <= 1, "in (0, 1]");
const serverLearningRate = num("server-lr", values["server-lr"], (x) => x > 0, "a number > 0");
const serverMomentum = num("server-momentum", values["server-momentum"], (x) => x >= 0 && x < 1, "in [0, 1)");
const clipQuantile = num("clip-quantile", values["clip-quantile"], (x) => x > 0 && x < 1, "in (0, 1)");

const { report, files } = await runDemo({
  ...(clients !== undefined ? { clients } : {}),
  ...(rounds !== undefined ? { rounds } : {}),
  ...(epsilon !== undefined ? { epsilon } : {}),
  ...(samplingRate !== undefined ? { samplingRate } : {}),
  ...(serverLearningRate !== undefined ? { serverLearningRate } : {}),
  ...(serverMomentum !== undefined ? { serverMomentum } : {}),
  ...(clipQuantile !== undefined ? { clipQuantile } : {}),
  ...(port !== undefined ? { port } : {}),
  ...(values.out !== undefined ? { outDir: values.out } : {}),
  dp: !values["no-dp"],
  baseline: !values["no-baseline"],
  backend,
});
const final = report.runs.map((r) => {
  const last = r.rounds.at(-1);
  return `${r.label}: ${last ? (last.servedAccuracy * 100).toFixed(2) : "–"}% served${last?.epsilon != null ? ` at ε = ${last.epsilon.toFixed(3)}` : ""}`;
});
console.log(`\ndone in ${report.seconds.toFixed(0)} s — ${final.join("; ")}`);
console.log(`report: ${files.report}\nplots:  ${files.accuracyVsRound}\n        ${files.accuracyVsEpsilon}`);
