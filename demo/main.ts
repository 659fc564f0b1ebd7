/**
 * `npm run demo`: do the devices' data matter, privately? Pretrains the public-only model, fine-tunes it privately
 * across simulated devices through the real local edge (`wrangler dev`) at the headline ε, then runs the
 * privacy–utility curve and the non-private ceiling in process, and writes demo-out/report.md, two plots and
 * summary.json. What it does, step by step: README "What the demo does"; the code: demo/src/.
 *
 *   npm run demo -- [--quick] [--clients N] [--epsilon E] [--rounds R] [--public-samples P] [--seeds S]
 *                   [--curve E1,E2,…|none] [--no-ceiling] [--sampling-rate Q] [--server-lr L] [--server-momentum M]
 *                   [--clip-quantile G] [--audit [--audit-canaries K]] [--privacy central|distributed]
 *                   [--modes-clients N]
 *                   [--backend auto|cpu|webgpu] [--port P] [--out DIR]
 */
import { parseArgs } from "node:util";
import { runDemo, type DemoOptions } from "./src/demo.ts";
import { modeRows } from "./src/mode-comparison.ts";
import { SERVED_SETTING } from "./src/served-setting.ts";
import { RECIPE } from "./src/setting.ts";

const USAGE = `usage: npm run demo -- [options]
  --quick             a first look (~2 minutes on a quiet 2-core machine): 5 rounds, 1 seed, the curve at the
                      headline ε and ε = 4 only (flags given explicitly still win)
  --clients N         simulated devices (default 1000)
  --epsilon E         headline ε of the served private run, δ = 1e-5 (default 1)
  --rounds R          rounds of every federated run (default ${RECIPE.rounds}, tuned)
  --public-samples P  train digits that are public, used only to pretrain (default 500)
  --seeds S           seeds: seed 1 is served, seeds 2…S run in process (default 3)
  --curve LIST        ε of the in-process privacy–utility curve, or none (default 0.5,1,2,4,8)
  --no-ceiling        skip the in-process non-private ceiling
  --sampling-rate Q   Poisson sampling rate per device per round (default ${RECIPE.samplingRate}, tuned)
  --server-lr L       FedAvgM server learning rate of every private run (default: tuned per ε, ${RECIPE.server.lr} at ε = 1;
                      demo/TUNING.md)
  --server-momentum M FedAvgM momentum in [0, 1) (default ${RECIPE.server.momentum}, tuned)
  --clip-quantile G   adaptive clipping target quantile in (0, 1) (default ${RECIPE.clip.targetQuantile}, tuned)
  --audit             after the served run, audit its population empirically (one-shot audit, Andrew et al. 2024):
                      canaries on a never-served shadow; the report shows ε̂ and its interval next to the ledger's ε
  --audit-canaries K  canaries of the audit (default 200; as many more are never inserted)
  --privacy MODE      central (default) | distributed: distributed also runs central and distributed DP (secure
                      aggregation, KLS21) with the recipe's fixed C, in process on every device and seed at the
                      headline ε and the recipe's q, and served through the local edge on --modes-clients devices
                      (200 devices at ε = 1: ${SERVED_SETTING.recipe.rounds} rounds at q = ${SERVED_SETTING.recipe.samplingRate}, tuned for central mode,
                      demo/TUNING.md; else the recipe's) at the headline ε, or at the smallest ε its distributed
                      plan reaches; the report sets accuracy, ε, bytes, device CPU and round time side by side
  --modes-clients N   devices of the served central-vs-distributed comparison (default min(200, clients))
  --backend B         aggregation backend: auto | cpu | webgpu (default auto: a hardware GPU through WebGPU, else
                      the CPU; a software adapter such as lavapipe is slower than the CPU path)
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
      quick: { type: "boolean" },
      clients: { type: "string" },
      epsilon: { type: "string" },
      rounds: { type: "string" },
      "public-samples": { type: "string" },
      seeds: { type: "string" },
      curve: { type: "string" },
      "no-ceiling": { type: "boolean" },
      "sampling-rate": { type: "string" },
      "server-lr": { type: "string" },
      "server-momentum": { type: "string" },
      "clip-quantile": { type: "string" },
      audit: { type: "boolean" },
      "audit-canaries": { type: "string" },
      privacy: { type: "string" },
      "modes-clients": { type: "string" },
      backend: { type: "string" },
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
const privacy = values.privacy ?? "central";
if (privacy !== "central" && privacy !== "distributed")
  fail(`--privacy must be central or distributed, got "${privacy}"`);
const clients = int("clients", values.clients, 20, 6000);
const modesClients = int("modes-clients", values["modes-clients"], 5, 6000);
if (modesClients !== undefined && privacy !== "distributed") fail("--modes-clients needs --privacy distributed");
const rounds = int("rounds", values.rounds, 1, 1000) ?? (values.quick ? 5 : undefined);
const publicSamples = int("public-samples", values["public-samples"], 10, 8000);
const seeds = int("seeds", values.seeds, 1, 20) ?? (values.quick ? 1 : undefined);
const port = int("port", values.port ?? process.env.FEDGE_DEMO_PORT, 1, 65535);
const epsilon = num("epsilon", values.epsilon, (x) => x > 0, "a number > 0");
const samplingRate = num("sampling-rate", values["sampling-rate"], (x) => x > 0 && x <= 1, "in (0, 1]");
const serverLr = num("server-lr", values["server-lr"], (x) => x > 0, "a number > 0");
const serverMomentum = num("server-momentum", values["server-momentum"], (x) => x >= 0 && x < 1, "in [0, 1)");
const auditCanaries = int("audit-canaries", values["audit-canaries"], 2, 5000);
if (auditCanaries !== undefined && !values.audit) fail("--audit-canaries needs --audit");
const clipQuantile = num("clip-quantile", values["clip-quantile"], (x) => x > 0 && x < 1, "in (0, 1)");
let curveEpsilons: number[] | undefined;
if (values.curve !== undefined) {
  curveEpsilons =
    values.curve === "none"
      ? []
      : values.curve.split(",").map((e) => num("curve", e, (x) => x > 0, "a list of numbers > 0, or none")!);
} else if (values.quick) curveEpsilons = [...new Set([epsilon ?? 1, 4])];

const recipe: NonNullable<DemoOptions["recipe"]> = {
  ...(rounds !== undefined ? { rounds } : {}),
  ...(samplingRate !== undefined ? { samplingRate } : {}),
  ...(serverLr !== undefined || serverMomentum !== undefined
    ? {
        server: {
          ...RECIPE.server,
          lr: serverLr ?? RECIPE.server.lr,
          momentum: serverMomentum ?? RECIPE.server.momentum,
        },
      }
    : {}),
  ...(clipQuantile !== undefined ? { clip: { ...RECIPE.clip, targetQuantile: clipQuantile } } : {}),
};

const { report, files } = await runDemo({
  ...(clients !== undefined ? { clients } : {}),
  ...(epsilon !== undefined ? { epsilon } : {}),
  ...(publicSamples !== undefined ? { publicSamples } : {}),
  ...(seeds !== undefined ? { seeds } : {}),
  ...(curveEpsilons !== undefined ? { curveEpsilons } : {}),
  ...(port !== undefined ? { port } : {}),
  ...(values.out !== undefined ? { outDir: values.out } : {}),
  ceiling: !values["no-ceiling"],
  ...(values.audit ? { auditCanaries: auditCanaries ?? 200 } : {}),
  recipe,
  backend,
  privacy,
  ...(modesClients !== undefined ? { modesClients } : {}),
});
const s = report.served;
const last = s.rounds.at(-1);
console.log(
  `\ndone in ${report.seconds.total!.toFixed(0)} s — (a) public-only served ${(s.initialServedAccuracy * 100).toFixed(2)}%; ` +
    `(b) private served ${last ? (last.servedAccuracy * 100).toFixed(2) : "–"}% at ε = ${s.privacy.epsilon.toFixed(3)} (δ = ${s.privacy.delta.toExponential()})`,
);
const a = report.privacyAudit;
if (a)
  console.log(
    `audit: ε̂ = ${a.epsilonHat.toFixed(3)} [${a.interval.lower.toFixed(3)}, ${a.interval.upper.toFixed(3)}] vs ε = ${a.epsilon?.toFixed(3) ?? "–"} (accountant, ${a.shadow})`,
  );
const m = report.modes;
for (const r of m?.served?.runs ?? []) {
  console.log(
    `served ${r.privacy} (${r.devices} devices, fixed C): ${(r.final * 100).toFixed(2)}% at ε ${r.epsilon?.toFixed(3)} (edge ledger), ` +
      `${Math.round(r.uploadBytesPerUpdate)} bytes and ${(r.deviceSecondsPerUpdate * 1000).toFixed(0)} ms CPU a device a round, ${r.roundSeconds.toFixed(1)} s a round`,
  );
}
if (m) {
  const [c, d] = modeRows(m);
  console.log(
    `central vs distributed at fixed C = ${m.clipNorm}: ${(c.accuracy * 100).toFixed(2)}% (ε ${c.epsilon.toFixed(3)}) vs ` +
      `${(d.accuracy * 100).toFixed(2)}% (ε ${d.epsilon.toFixed(3)}), ${Math.round(c.bytesPerUpdate)} vs ${Math.round(d.bytesPerUpdate)} bytes a device a round`,
  );
}
console.log(`report: ${files.report}\nplots:  ${files.accuracyVsRound}\n        ${files.accuracyVsEpsilon}`);
