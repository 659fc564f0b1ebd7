/**
 * `npm run tune -w demo` (or `node demo/tune.ts`): chooses the demo's knobs on the tuning split's validation pool,
 * never on the test digits (demo/src/setting.ts `tuningData`; the protocol and the last results: demo/TUNING.md).
 *
 *   node demo/tune.ts [--stage pretrain|federated|ceiling|all] [--seeds 1,2] [--epsilon 1] [--clients N]
 *                     [--public-samples P] [--out DIR]
 *
 * - `pretrain`: the public-only model's recipe (augmentation, epochs) by its validation accuracy;
 * - `federated`: coordinate search at the headline ε: one knob at a time, each candidate run in process (the demo's
 *   round engine and device code) on the proxy federation and scored by the mean validation accuracy over the seeds;
 *   the best value is kept before the next knob;
 * - `curve`: the server learning rate at each other ε of the privacy–utility curve (`--curve`; less noise, larger
 *   steps), the rest of the recipe as chosen at the headline ε;
 * - `ceiling`: the server learning rate of the non-private ceiling (privacy mode none, otherwise the same recipe);
 * - `small` (not part of `all`): the setting of the e2e test's small run (`SMALL_RUN`): each candidate's margin over
 *   the public-only model over `--draws` CSPRNG draws; the first (cheapest) whose mean clears `SMALL_RUN_MARGIN_SDS`
 *   standard deviations is chosen.
 * - `served` (not part of `all`): the served central-vs-distributed comparison's rounds and q (`SERVED_SETTING`):
 *   central mode at the headline ε on its 200 devices, each of `servedCandidates()` over `--draws` CSPRNG draws; the
 *   rule of `chooseServedSetting` picks (distributed mode then runs that setting unchanged).
 * Results go to DIR/results.jsonl (one line per run) and DIR/summary-<stage>.md.
 */
import { appendFile, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { createBackend } from "@fedge/gpu-node";
import { initMlp, trainLocal, xoshiroRandomBytes, type MlpParams } from "@fedge/ml";
import { evaluateModel } from "fedge/evaluate";
import { NINE_SHIFTS, shiftAugment } from "fedge/data";
import { repoRoot } from "@fedge/local-edge";
import { runInProcess } from "./src/in-process.ts";
import { PRETRAIN, pretrainPublic, RECIPE, tuningData, type FederatedRecipe } from "./src/setting.ts";
import { SMALL_RUN, SMALL_RUN_MARGIN_SDS, smallRunMargins, type SmallRunSetting } from "./src/small-run.ts";
import {
  SERVED_MARGIN_SDS,
  SERVED_MAX_UPDATES_PER_DEVICE,
  SERVED_MIN_GAIN,
  SERVED_SETTING,
  chooseServedSetting,
  servedCandidates,
  servedSettingScore,
  servedTuningSplit,
  type ScoredServedSetting,
} from "./src/served-setting.ts";

const { values } = parseArgs({
  options: {
    stage: { type: "string", default: "all" },
    curve: { type: "string", default: "0.5,2,4,8" },
    seeds: { type: "string", default: "1,2" },
    epsilon: { type: "string", default: "1" },
    clients: { type: "string", default: "1000" },
    "public-samples": { type: "string", default: "500" },
    draws: { type: "string", default: "20" },
    out: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
  strict: true,
});
if (values.help) {
  console.log(
    "usage: node demo/tune.ts [--stage pretrain|federated|curve|ceiling|all|small|served] [--draws 20] [--seeds 1,2] [--epsilon 1] [--curve 0.5,2,4,8] [--clients N] [--public-samples P] [--out DIR]",
  );
  process.exit(0);
}
const stage = values.stage!;
if (!["pretrain", "federated", "curve", "ceiling", "all", "small", "served"].includes(stage))
  throw new RangeError(`unknown --stage ${stage}`);
const seeds = values.seeds!.split(",").map(Number);
const epsilon = Number(values.epsilon);
const clients = Number(values.clients);
const publicSamples = Number(values["public-samples"]);
const outDir = path.resolve(values.out ?? path.join(repoRoot, "demo-out", "tuning"));
await mkdir(outDir, { recursive: true });
const resultsFile = path.join(outDir, "results.jsonl");
const summary: string[] = [
  "# tuning summary",
  "",
  `Validation pool of the tuning split (demo/src/setting.ts tuningData): ${clients} proxy devices, ${publicSamples} public digits; seeds ${seeds.join(", ")}; headline ε = ${epsilon}, δ = 1e-5.`,
  "",
];
const t0 = performance.now();
const log = (line: string) => console.log(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(5)} s] ${line}`);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

const data = tuningData({ clients, publicSamples, seed: 1 });
log(
  `tuning split: ${data.public.n} public digits, ${data.devices.length} proxy devices holding ${data.devices.reduce((s, d) => s + d.n, 0)} digits, validation pool ${data.validation.n} digits`,
);
const backend = await createBackend({ prefer: "cpu", log: () => undefined });

// ---- public pretraining ------------------------------------------------------------------------------------------
type PretrainRecipe = { augment: "shift9" | "affine"; epochs: number; hidden: number };
const publicModels = new Map<string, MlpParams>();
/** Wall time of one seed's pretraining, per recipe key (without the seed). */
const pretrainSeconds = new Map<string, number[]>();
function publicModel(r: PretrainRecipe, seed: number): MlpParams {
  const key = `${r.augment}/${r.epochs}/${r.hidden}/${seed}`;
  let m = publicModels.get(key);
  if (m) return m;
  const t = performance.now();
  if (r.augment === "affine") m = pretrainPublic(data.public, { seed, epochs: r.epochs, hidden: r.hidden });
  else {
    // the former recipe: ×9 one-pixel shifts, batch 16, decaying rate
    const rates = [0.2, 0.2, 0.1, 0.05, 0.02];
    m = initMlp([784, r.hidden, 10], { random: xoshiroRandomBytes(seed) });
    const aug = shiftAugment(data.public, NINE_SHIFTS);
    for (let e = 0; e < r.epochs; e++)
      m = trainLocal(m, aug.x, aug.y, {
        epochs: 1,
        batchSize: 16,
        learningRate: rates[Math.min(e, rates.length - 1)]!,
        scope: "all",
        random: xoshiroRandomBytes(seed * 104729 + e),
      }).params;
  }
  publicModels.set(key, m);
  const rk = `${r.augment}/${r.epochs}/${r.hidden}`;
  pretrainSeconds.set(rk, [...(pretrainSeconds.get(rk) ?? []), (performance.now() - t) / 1000]);
  return m;
}
let pre: PretrainRecipe = { augment: "affine", epochs: PRETRAIN.learningRates.length, hidden: PRETRAIN.hidden };

async function record(line: object): Promise<void> {
  await appendFile(resultsFile, JSON.stringify({ at: new Date().toISOString(), ...line }) + "\n");
}

if (stage === "pretrain" || stage === "all") {
  summary.push(
    "## public pretraining (public-only validation accuracy)",
    "",
    "| recipe | mean | per seed |",
    "|---|---:|---|",
  );
  const candidates: PretrainRecipe[] = [
    { augment: "shift9", epochs: 5, hidden: 64 },
    { augment: "shift9", epochs: 5, hidden: 128 },
    { augment: "affine", epochs: 6, hidden: 128 },
    { augment: "affine", epochs: 12, hidden: 64 },
    { augment: "affine", epochs: 12, hidden: 128 },
    { augment: "affine", epochs: 12, hidden: 256 },
  ];
  let best = -1;
  for (const c of candidates) {
    const accs = seeds.map((s) => evaluateModel(publicModel(c, s), data.validation).accuracy);
    const m = mean(accs);
    await record({ stage: "pretrain", recipe: c, seeds, validation: accs, mean: m });
    log(`pretrain ${JSON.stringify(c)}: ${pct(m)} (${accs.map(pct).join(", ")})`);
    summary.push(`| ${JSON.stringify(c)} | ${pct(m)} | ${accs.map(pct).join(", ")} |`);
    if (m > best) {
      best = m;
      pre = c;
    }
  }
  summary.push("", `Chosen: ${JSON.stringify(pre)}.`, "");
}

// ---- federated knobs, coordinate search --------------------------------------------------------------------------
type Knob = { name: string; candidates: ((r: FederatedRecipe) => FederatedRecipe)[]; labels: string[] };
const knob = <T>(
  name: string,
  vals: T[],
  set: (r: FederatedRecipe, v: T) => FederatedRecipe,
  label = (v: T) => String(v),
): Knob => ({
  name,
  candidates: vals.map((v) => (r: FederatedRecipe) => set(structuredClone(r), v)),
  labels: vals.map(label),
});
const cache = new Map<string, { accuracy: number; worst: number; seconds: number }>();
/** Mean validation accuracy over the seeds, and the mean wall time of one run. */
async function score(
  recipe: FederatedRecipe,
  hidden: number,
  eps: number | null,
  what: string,
): Promise<{ accuracy: number; worst: number; seconds: number }> {
  const key = JSON.stringify({ recipe, hidden, eps });
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  const finals: number[] = [];
  const secs: number[] = [];
  for (const seed of seeds) {
    const run = await runInProcess({
      backend,
      devices: data.devices,
      heldOut: data.validation,
      initial: publicModel({ ...pre, hidden }, seed),
      recipe,
      epsilon: eps,
      seed,
    });
    finals.push(run.final);
    secs.push(run.seconds);
    await record({
      stage: what,
      hidden,
      recipe,
      epsilon: eps,
      seed,
      validation: run.final,
      curve: run.accuracy,
      seconds: run.seconds,
    });
  }
  // the fastest seed's run: the load of other processes only ever adds time
  const r = { accuracy: mean(finals), worst: Math.min(...finals), seconds: Math.min(...secs) };
  cache.set(key, r);
  return r;
}

/**
 * The demo's 10 minutes, as two limits a recipe must meet to be eligible (measured on the 2-core machine, fastest
 * seed): besides the served run (~6 minutes), a worker thread pretrains seeds 2 and 3 and does 17 in-process runs (the
 * curve's 5 ε × 3 seeds less the served one, and the ceiling's 3 seeds), and seed 1's pretraining comes first.
 */
const MAX_IN_PROCESS_SECONDS = 15;
const MAX_PRETRAIN_SECONDS = 45;
const pretrainFits = (hidden: number) =>
  Math.min(...(pretrainSeconds.get(`${pre.augment}/${pre.epochs}/${hidden}`) ?? [0])) <= MAX_PRETRAIN_SECONDS;

let recipe: FederatedRecipe = structuredClone(RECIPE);
let hidden: number = pre.hidden;
if (stage === "federated" || stage === "all") {
  summary.push(`## federated knobs at ε = ${epsilon} (private validation accuracy, coordinate search)`, "");
  const knobs: (Knob | "hidden")[] = [
    "hidden",
    knob("trainable", ["head", "all"] as const, (r, v) => ({ ...r, trainable: v })),
    // q·N·R is bounded by the demo's 10 minutes: through the local edge a report costs ~0.12 s and a check-in ~10 ms
    // (measured on the 2-core machine), so these all fit in ~6 minutes of served rounds with 1,000 devices
    knob(
      "samplingRate × rounds",
      [
        [0.1, 10],
        [0.2, 8],
        [0.2, 10],
        [0.3, 7],
      ],
      (r, [q, rounds]) => ({ ...r, samplingRate: q!, rounds: rounds! }),
      ([q, rounds]) => `q ${q}, ${rounds} rounds`,
    ),
    knob(
      "server optimizer",
      [
        ["fedavgm", 1, 0.5],
        ["fedavgm", 2, 0.5],
        ["fedavgm", 0.5, 0.9],
        ["fedavgm", 1, 0.9],
        ["fedavgm", 2, 0.9],
        ["fedadam", 0.01, 0],
        ["fedadam", 0.03, 0],
      ] as const,
      (r, [kind, lr, momentum]) => ({ ...r, server: { kind, lr, momentum } }),
      ([kind, lr, momentum]) => (kind === "fedadam" ? `FedAdam η ${lr}` : `FedAvgM η ${lr}, μ ${momentum}`),
    ),
    knob("clip.initial", [0.1, 0.3, 1], (r, v) => ({ ...r, clip: { ...r.clip, initial: v } })),
    knob("clip.targetQuantile", [0.3, 0.5, 0.7], (r, v) => ({ ...r, clip: { ...r.clip, targetQuantile: v } })),
    knob("clip.adaptive", [true, false], (r, v) => ({ ...r, clip: { ...r.clip, adaptive: v } })),
    knob("client.learningRate", [0.05, 0.1, 0.3], (r, v) => ({ ...r, client: { ...r.client, learningRate: v } })),
    knob("client.localEpochs", [1, 5, 10], (r, v) => ({ ...r, client: { ...r.client, localEpochs: v } })),
    knob("accountant", ["rdp", "pld"] as const, (r, v) => ({ ...r, accountant: v })),
  ];
  for (const k of knobs) {
    summary.push(
      `### ${k === "hidden" ? "hidden width" : k.name}`,
      "",
      "| value | validation (mean of seeds) |",
      "|---|---:|",
    );
    if (k === "hidden") {
      let best = -1;
      let bestH = hidden;
      for (const h of [64, 128, 256, 512]) {
        const { accuracy: m, seconds } = await score(recipe, h, epsilon, "federated");
        const fits = seconds <= MAX_IN_PROCESS_SECONDS && pretrainFits(h);
        const pt = Math.min(...(pretrainSeconds.get(`${pre.augment}/${pre.epochs}/${h}`) ?? [NaN]));
        const cost = `${seconds.toFixed(0)} s a run, ${pt.toFixed(0)} s a pretraining`;
        log(`hidden ${h}: ${pct(m)} (${cost}${fits ? "" : ", over the time budget"})`);
        summary.push(`| ${h} | ${pct(m)} (${cost}${fits ? "" : ": over the demo's time budget, not eligible"}) |`);
        if (fits && m > best + 0.0005) {
          best = m;
          bestH = h;
        }
      }
      hidden = bestH;
      summary.push("", `Chosen: ${hidden}.`, "");
      continue;
    }
    let best = -1;
    let chosen = recipe;
    let label = "";
    for (let i = 0; i < k.candidates.length; i++) {
      const cand = k.candidates[i]!(recipe);
      const { accuracy: m, seconds } = await score(cand, hidden, epsilon, "federated");
      const fits = seconds <= MAX_IN_PROCESS_SECONDS;
      log(
        `${k.name} = ${k.labels[i]}: ${pct(m)} (${seconds.toFixed(0)} s a run${fits ? "" : ", over the time budget"})`,
      );
      summary.push(
        `| ${k.labels[i]} | ${pct(m)}${fits ? "" : ` (${seconds.toFixed(0)} s a run: over the demo's time budget, not eligible)`} |`,
      );
      // a candidate must fit the time budget and beat the best so far by 0.05 points (ties keep the earlier value)
      if (fits && m > best + 0.0005) {
        best = m;
        chosen = cand;
        label = k.labels[i]!;
      }
    }
    recipe = chosen;
    summary.push("", `Chosen: ${label}.`, "");
  }
  summary.push("Recipe after the search:", "", "```json", JSON.stringify({ hidden, ...recipe }, null, 2), "```", "");
}

if (stage === "curve" || stage === "all") {
  summary.push("## server learning rate at the curve's other ε (private validation accuracy)", "");
  summary.push(
    "| ε | " + [1, 2, 4, 8].map((lr) => `η ${lr}`).join(" | ") + " | chosen |",
    "|---|---:|---:|---:|---:|---|",
  );
  for (const e of values.curve!.split(",").map(Number)) {
    let best = -1;
    let chosen = recipe.server.lr;
    const cells: string[] = [];
    for (const lr of [1, 2, 4, 8]) {
      const { accuracy: m } = await score({ ...recipe, server: { ...recipe.server, lr } }, hidden, e, "curve");
      log(`ε ${e}, server lr ${lr}: ${pct(m)}`);
      cells.push(pct(m));
      if (m > best + 0.0005) {
        best = m;
        chosen = lr;
      }
    }
    summary.push(`| ${e} | ${cells.join(" | ")} | η ${chosen} |`);
  }
  summary.push("");
}

if (stage === "ceiling" || stage === "all") {
  const a = seeds.map((s) => evaluateModel(publicModel({ ...pre, hidden }, s), data.validation).accuracy);
  log(`public-only (hidden ${hidden}) for reference: ${pct(mean(a))} (${a.map(pct).join(", ")})`);
  summary.push(`Public-only model (hidden ${hidden}) on the validation pool, for reference: ${pct(mean(a))}.`, "");
  summary.push(
    "## non-private ceiling (privacy mode none): server learning rate",
    "",
    "Chosen by the worst seed (a large step can diverge on one seed and not another: the ceiling must hold for each).",
    "",
    "| server lr | validation (mean) | worst seed |",
    "|---|---:|---:|",
  );
  let best = -1;
  let chosen = recipe.server.lr;
  for (const lr of [2, 4, 8, 16]) {
    const { accuracy: m, worst } = await score(
      { ...recipe, server: { ...recipe.server, lr } },
      hidden,
      null,
      "ceiling",
    );
    log(`ceiling server lr ${lr}: ${pct(m)} (worst seed ${pct(worst)})`);
    summary.push(`| ${lr} | ${pct(m)} | ${pct(worst)} |`);
    if (worst > best + 0.0005) {
      best = worst;
      chosen = lr;
    }
  }
  summary.push("", `Chosen: ${chosen}.`, "");
}

if (stage === "small") {
  const draws = Number(values.draws);
  summary.push(
    `## the e2e test's small run: margin over the public-only model (${draws} CSPRNG draws each, ε ${SMALL_RUN.epsilon})`,
    "",
    `Chosen: the first candidate (cheapest first: reports per run) whose mean margin is at least ${SMALL_RUN_MARGIN_SDS} sds.`,
    "",
    "| devices | q | rounds | pretraining epochs | z | (a) | margin mean | sd | mean / sd | lowest |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  );
  // cheapest first: ~50 reports a round (100 or 200 check-ins), then ~100
  const candidates: SmallRunSetting[] = [
    { ...SMALL_RUN, clients: 100, recipe: { rounds: 2, samplingRate: 0.5 } },
    { ...SMALL_RUN, clients: 200, recipe: { rounds: 2, samplingRate: 0.25 } },
    { ...SMALL_RUN, clients: 100, recipe: { rounds: 2, samplingRate: 1 } },
    { ...SMALL_RUN, clients: 200, recipe: { rounds: 2, samplingRate: 0.5 } },
  ];
  let chosen: SmallRunSetting | undefined;
  for (const c of candidates) {
    const m = await smallRunMargins({ backend, setting: c, draws });
    const line = {
      stage: "small",
      ...c,
      noiseMultiplier: m.noiseMultiplier,
      publicOnly: m.publicOnly,
      margins: m.margins,
    };
    await appendFile(resultsFile, JSON.stringify(line) + "\n");
    log(`small run ${JSON.stringify(c)}: margin ${pct(m.mean)} ± ${pct(m.sd)} (${(m.mean / m.sd).toFixed(1)} sd)`);
    summary.push(
      `| ${c.clients} | ${c.recipe.samplingRate} | ${c.recipe.rounds} | ${c.pretrainEpochs} | ${m.noiseMultiplier.toFixed(3)} | ` +
        `${pct(m.publicOnly)} | ${pct(m.mean)} | ${pct(m.sd)} | ${(m.mean / m.sd).toFixed(1)} | ${pct(Math.min(...m.margins))} |`,
    );
    if (m.mean >= SMALL_RUN_MARGIN_SDS * m.sd) {
      chosen = c;
      break;
    }
  }
  summary.push("", `Chosen: ${chosen ? JSON.stringify(chosen) : "none of the candidates"}.`, "");
}

if (stage === "served") {
  const draws = Number(values.draws);
  summary.push(
    `## the served comparison's rounds and q: central mode on ${SERVED_SETTING.clients} devices (${draws} CSPRNG draws each, ε ${SERVED_SETTING.epsilon})`,
    "",
    `Rule (\`chooseServedSetting\`): at each q in turn (0.2 first), among the candidates whose mean margin over (a) is at ` +
      `least ${SERVED_MARGIN_SDS} sds, the fewest rounds unless more beat it by ${SERVED_MIN_GAIN * 100} points; the first q ` +
      `with such a candidate decides. Candidates ask at most q·R = ${SERVED_MAX_UPDATES_PER_DEVICE} updates of a device (the recipe's).`,
    "",
    "| q | rounds | z | (a) | validation mean | sd | over (a) | (over (a)) / sd | lowest | seconds a draw |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  );
  const split = servedTuningSplit(clients);
  const scored: ScoredServedSetting[] = [];
  for (const c of servedCandidates()) {
    const t = performance.now();
    const m = await servedSettingScore({ backend, setting: c, draws, fleet: clients, split });
    const seconds = (performance.now() - t) / 1000 / draws;
    await record({
      stage: "served",
      ...c,
      noiseMultiplier: m.noiseMultiplier,
      publicOnly: m.publicOnly,
      finals: m.finals,
    });
    const over = m.mean - m.publicOnly;
    log(
      `served ${JSON.stringify(c.recipe)}: ${pct(m.mean)} ± ${pct(m.sd)} (z ${m.noiseMultiplier.toFixed(3)}, (a) ${pct(m.publicOnly)})`,
    );
    summary.push(
      `| ${c.recipe.samplingRate} | ${c.recipe.rounds} | ${m.noiseMultiplier.toFixed(3)} | ${pct(m.publicOnly)} | ${pct(m.mean)} | ` +
        `${pct(m.sd)} | ${(over * 100).toFixed(2)} | ${(over / m.sd).toFixed(1)} | ${pct(Math.min(...m.finals))} | ${seconds.toFixed(1)} |`,
    );
    scored.push({ setting: c, mean: m.mean, sd: m.sd, publicOnly: m.publicOnly });
  }
  const chosen = chooseServedSetting(scored).setting;
  summary.push("", `Chosen: ${chosen.recipe.rounds} rounds at q = ${chosen.recipe.samplingRate}.`, "");
  log(`chosen: ${JSON.stringify(chosen.recipe)}`);
}

await writeFile(path.join(outDir, `summary-${stage}.md`), summary.join("\n"));
await backend.dispose();
log(`done: ${path.join(outDir, `summary-${stage}.md`)}, ${resultsFile}`);
