/**
 * @module
 * The demo's outputs as pure functions of its results: the live progress line, `report.md`, and the two plots.
 *
 * Every accuracy is on the same held-out test digits with int8 weights (served through `/predict`, or the same int8
 * weights evaluated in process); the report names each number's source. It publishes no exact per-round count of the
 * private population (check-ins, selections, uploads): those stay in the demo's in-memory audit.
 */
import { modeComparisonMarkdown, type ModeComparison } from "./mode-comparison.ts";
import type { FederatedRecipe } from "./setting.ts";
import type { PopulationPrivacy } from "./privacy.ts";
import type { PrivacyAuditReport } from "./privacy-audit.ts";
import { lineChartSvg, type Series } from "./svg.ts";

/** One round of the served private run (no device counts: see the module header). */
export interface RoundRecord {
  round: number;
  roundId: string;
  /** The clip norm C of the round (adaptive clipping moves it by a noised count, so it is public). */
  clipNorm: number | null;
  /** σ of the Gaussian noise on the clipped sum. */
  noiseStd: number;
  /** Test accuracy of the served int8 model through `/predict`. */
  servedAccuracy: number;
  /** Test accuracy of the aggregator's float32 model (for the int8 gap). */
  fp32Accuracy: number;
  servedVersion: number;
  /** ε spent after the round, from {@link PopulationPrivacy}. */
  epsilon: number;
  /** Wall time of the round, and the part of it the fleet took (check-ins, local training, uploads). */
  seconds: number;
  fleetSeconds: number;
}

/** What a device itself can show: the rounds it checked in for, its upload receipts, its own ε. */
export interface DeviceView {
  label: string;
  device: number;
  /** Rounds the population's ledger charged. */
  roundsCharged: number;
  journal: { roundId: string; selected: boolean; receipt: { sha256: string; receivedAt: string } | null }[];
  /** ε composed over the rounds it checked in for, with the population's accountant and the ledger's (q, z). */
  epsilon: number;
  delta: number;
  /** The edge's signed check-in receipts the device verified and kept (one per round it checked in for). */
  checkinReceipts: { roundId: string; samplingRate: number; noiseMultiplier: number }[];
  /** The device's own `client.privacy()`: RDP over its verified receipts (null: it holds none). */
  ownEpsilon: { epsilon: number; delta: number; rounds: number; accountant: "rdp" } | null;
}

/** (b): the private run served through the edge (seed 1). */
export interface ServedRun {
  population: string;
  noiseMultiplier: number;
  /** v1: the public-only model of seed 1, served int8. */
  initialServedAccuracy: number;
  initialVersion: number;
  rounds: RoundRecord[];
  /** The population's spend after the last round and where it was read. */
  privacy: PopulationPrivacy;
  /**
   * The edge ledger's ε, the same recomputed by a fresh accountant from the (q, z) the edge published, and the
   * aggregator's own ledger of the same rounds.
   */
  epsilonCheck: { recomputed: number; ledger: number; aggregator: number };
  /** Served predictions vs onnxruntime-node on the downloaded ONNX file of the final version. */
  ortCheck: { version: number; samples: number; argmaxAgreement: number; maxAbsLogitDiff: number; sha256: string };
  devices: DeviceView[];
  /** Every misbehaving upload got a 4xx. */
  misbehavingRefused: boolean;
  /** Every round the edge accepted exactly the honest uploads, and the aggregator streamed them all. */
  acceptedAreHonest: boolean;
  /**
   * The coordinator shards S the population's rounds ran on (as the edge recorded each round; the same every round)
   * and why the demo chose it.
   */
  coordination: { shards: number; why: string };
  /** What the devices uploaded: the dtype the rounds asked for, the update's length, mean bytes per signed update. */
  uploads: { dtype: "float32" | "int8"; updateLength: number; bytesPerUpdate: number };
  seconds: number;
}

/** One in-process run (the curve, the headline ε's other seeds, the ceiling). */
export interface CurvePoint {
  /** Target ε (`null`: non-private). */
  epsilonTarget: number | null;
  /** ε spent, from the run's ledger. */
  epsilon: number | null;
  noiseMultiplier: number | null;
  seed: number;
  /** Last round's test accuracy, int8 weights. */
  final: number;
  /** Test accuracy of the float32 model after every round. */
  accuracy: number[];
  seconds: number;
}

export interface DemoReport {
  startedAt: string;
  clients: number;
  delta: number;
  headlineEpsilon: number;
  seeds: number;
  backend: string;
  publicSamples: number;
  privateSamples: number;
  testSamples: number;
  labelsPerClient: number;
  intermittent: number;
  misbehavingPerKind: number;
  recipe: FederatedRecipe;
  ceilingRecipe: FederatedRecipe;
  /** The server learning rate of the recipe at each ε of the curve (tuned per ε). */
  serverLrByEpsilon: { epsilon: number; lr: number }[];
  pretrain: { hidden: number; epochs: number; copies: number };
  /** (a) per seed; seed 1 is also what the edge served as v1 (`served.initialServedAccuracy`). */
  publicOnly: { seed: number; accuracy: number }[];
  served: ServedRun;
  /** `--audit`: the one-shot empirical privacy audit of the served population (on its shadow). */
  privacyAudit?: PrivacyAuditReport;
  /** `--privacy distributed`: central and distributed DP side by side at the headline ε, fixed C, in process. */
  modes?: ModeComparison;
  curve: CurvePoint[];
  ceiling: CurvePoint[];
  stateDir: string;
  /** Wall time per phase and in all. */
  seconds: Record<string, number>;
}

/** The issue's goals (1,000 devices, non-IID, 500 public digits, δ = 1e-5, int8, mean of 3 seeds). */
export const GOALS = { publicOnly: 0.915, privateAt1: 0.925, privateAt4: 0.938, stretchGap: 0.01 } as const;

const pct = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x) ? "–" : `${(x * 100).toFixed(2)}%`;
const pts = (x: number) => `${x >= 0 ? "+" : "−"}${Math.abs(x * 100).toFixed(2)}`;
const fx = (x: number | null | undefined, d = 3) =>
  x === null || x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(d);
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
/** δ as people write it (1e-5, not 0.00001). */
const fd = (d: number) => (d < 1e-3 ? d.toExponential() : String(d));

/** The report's lines on the empirical privacy audit: ε (accountant) next to ε̂ (audit). */
export function auditLines(a: PrivacyAuditReport): string[] {
  const pctl = Math.round(a.interval.confidence * 100);
  const e = a.epsilon;
  const verdict =
    e === null
      ? ""
      : a.interval.upper <= e
        ? " ε̂ and its whole interval are at or below the accountant's ε, as a correct mechanism shows."
        : a.epsilonHat <= e
          ? " ε̂ is at or below the accountant's ε; its interval reaches above it (more canaries narrow it)."
          : a.interval.lower <= e
            ? " ε̂ is above the accountant's ε but its interval reaches below it: inconclusive with this many canaries."
            : " **ε̂ and its whole interval are above the accountant's ε: the mechanism that ran leaks more than it claims.**";
  return [
    "### Empirical privacy audit",
    "",
    `The one-shot audit of Andrew et al. ("One-shot Empirical Privacy Estimation for Federated Learning", ICLR 2024, arXiv 2302.03098) ` +
      `ran the population's mechanism for ${a.rounds} rounds on \`${a.shadow}\`, a shadow of \`${a.auditOf}\` that the edge never serves, ` +
      `with ${a.canaries} canary devices sampled by the edge's coin (each a random unit direction at the clip norm) and ${a.canaries} never inserted.`,
    "",
    "| ε (accountant, the shadow's edge ledger) | ε̂ (audit) | " + `${pctl} % bootstrap interval of ε̂ | δ |`,
    "|---:|---:|---|---:|",
    `| ${fx(a.epsilon)} | ${fx(a.epsilonHat)} | [${fx(a.interval.lower)}, ${fx(a.interval.upper)}] | ${fd(a.delta)} |`,
    "",
    `Cosines with the final model delta: inserted ${a.observed.mean.toExponential(2)} ± ${a.observed.std.toExponential(2)}, ` +
      `never inserted ${a.unobserved.mean.toExponential(2)} ± ${a.unobserved.std.toExponential(2)}.${verdict} ` +
      "ε̂ is an estimate from one run, not a bound (docs/PRIVACY.md).",
  ];
}

/** The live line printed after each served round (no device counts). */
export function progressLine(r: RoundRecord, planned: number): string {
  return (
    `[private] round ${String(r.round).padStart(String(planned).length)}/${planned}` +
    `  served acc ${pct(r.servedAccuracy)} (v${r.servedVersion}, fp32 ${pct(r.fp32Accuracy)})` +
    `  C ${fx(r.clipNorm)}  σ ${fx(r.noiseStd, 4)}  ε ${r.epsilon.toFixed(3)}` +
    `  ${r.seconds.toFixed(1)} s (fleet ${r.fleetSeconds.toFixed(1)} s)`
  );
}

/** One row of the results: a value per seed, their mean, and where each came from. */
interface Row {
  key: string;
  what: string;
  perSeed: { seed: number; value: number; source: string }[];
  mean: number;
}

/** (b) at the headline ε: served seed 1, in-process seeds 2…S. */
export function headlineRuns(rep: DemoReport): { seed: number; value: number; source: string }[] {
  const served = rep.served.rounds.at(-1)?.servedAccuracy ?? NaN;
  return [
    { seed: 1, value: served, source: "served" },
    ...rep.curve
      .filter((c) => c.epsilonTarget === rep.headlineEpsilon && c.seed !== 1)
      .map((c) => ({ seed: c.seed, value: c.final, source: "in process" })),
  ];
}

/** (c): per ε, every seed's final accuracy (the headline ε's seed 1 is the served run). */
export function curveByEpsilon(rep: DemoReport): { epsilon: number; runs: { seed: number; value: number }[] }[] {
  const eps = [...new Set(rep.curve.map((c) => c.epsilonTarget!))].sort((a, b) => a - b);
  return eps.map((e) => ({
    epsilon: e,
    runs: [
      ...(e === rep.headlineEpsilon ? [{ seed: 1, value: rep.served.rounds.at(-1)?.servedAccuracy ?? NaN }] : []),
      ...rep.curve.filter((c) => c.epsilonTarget === e).map((c) => ({ seed: c.seed, value: c.final })),
    ].sort((a, b) => a.seed - b.seed),
  }));
}

function rows(rep: DemoReport): Row[] {
  const out: Row[] = [];
  const a = rep.publicOnly.map((p) => ({
    seed: p.seed,
    value: p.seed === 1 ? rep.served.initialServedAccuracy : p.accuracy,
    source: p.seed === 1 ? "served v1" : "in process",
  }));
  out.push({
    key: "(a)",
    what: "public-only model (500 public digits, no device)",
    perSeed: a,
    mean: mean(a.map((x) => x.value)),
  });
  const b = headlineRuns(rep);
  out.push({
    key: "(b)",
    what: `private, served through the edge, ε = ${rep.headlineEpsilon}`,
    perSeed: b,
    mean: mean(b.map((x) => x.value)),
  });
  for (const c of curveByEpsilon(rep)) {
    out.push({
      key: "(c)",
      what: `private, ε = ${c.epsilon}`,
      perSeed: c.runs.map((r) => ({
        ...r,
        source: c.epsilon === rep.headlineEpsilon && r.seed === 1 ? "served" : "in process",
      })),
      mean: mean(c.runs.map((r) => r.value)),
    });
  }
  if (rep.ceiling.length) {
    const d = rep.ceiling.map((c) => ({ seed: c.seed, value: c.final, source: "in process" }));
    out.push({
      key: "(d)",
      what: "non-private federated ceiling (never served)",
      perSeed: d,
      mean: mean(d.map((x) => x.value)),
    });
  }
  return out;
}

function epsilonMean(rep: DemoReport, e: number): number {
  return mean(
    curveByEpsilon(rep)
      .find((c) => c.epsilon === e)
      ?.runs.map((r) => r.value) ?? [],
  );
}

/** `report.md` (see the README's "What the demo does"). */
export function reportMarkdown(rep: DemoReport): string {
  const L: string[] = [];
  const s = rep.served;
  const R = rep.recipe;
  const table = rows(rep);
  const aMean = table[0]!.mean;
  const bMean = table[1]!.mean;
  const dMean = table.find((r) => r.key === "(d)")?.mean ?? NaN;
  const bServed = s.rounds.at(-1)?.servedAccuracy ?? NaN;
  L.push("# fedge demo report", "");
  L.push(
    `Started ${rep.startedAt}; ${rep.clients} simulated devices (non-IID, ${rep.labelsPerClient} digits each), ${rep.publicSamples} public digits, ` +
      `headline ε = ${rep.headlineEpsilon}, δ = ${fd(rep.delta)}, ${rep.seeds} seeds; aggregation backend \`${rep.backend}\`. ` +
      `**Wall time ${rep.seconds.total!.toFixed(0)} s** (${Object.entries(rep.seconds)
        .filter(([k]) => k !== "total")
        .map(([k, v]) => `${k} ${v.toFixed(0)} s`)
        .join(", ")}).`,
    "",
  );

  L.push("## Results", "");
  L.push(
    `All on the same ${rep.testSamples} test digits (never on a device, never used to tune anything), int8 weights: "served" = measured through ` +
      'the edge\'s `/predict` (onnxruntime-web in workerd), "in process" = the same int8 weights evaluated by the aggregator after a run of ' +
      "`fedge simulate` on the same devices' data (same round engine, strategy, server optimizer and device code as the served run). " +
      `Seed s fixes the public model's init and augmentation, the devices' partition and their batch order; privacy noise and sampling always come from the CSPRNG.`,
    "",
  );
  const seedCols = Array.from({ length: rep.seeds }, (_, i) => i + 1);
  L.push(
    `| | run | ${seedCols.map((k) => `seed ${k}`).join(" | ")} | mean | vs (a) |`,
    `|---|---|${seedCols.map(() => "---:").join("|")}|---:|---:|`,
  );
  for (const r of table) {
    const cells = seedCols.map((k) => {
      const v = r.perSeed.find((p) => p.seed === k);
      return v ? `${pct(v.value)} (${v.source})` : "–";
    });
    const vs = r.key === "(a)" ? "" : `${pts(r.mean - aMean)}${r.mean < aMean ? " ⚠ below (a)" : ""}`;
    L.push(`| ${r.key} | ${r.what} | ${cells.join(" | ")} | **${pct(r.mean)}** | ${vs} |`);
  }
  L.push("");
  const below = table.filter((r) => r.key !== "(a)" && r.key !== "(d)" && r.perSeed.some((p) => p.value < aMean));
  if (below.length)
    L.push(
      `⚠ Single runs below (a)'s mean: ${below
        .flatMap((r) =>
          r.perSeed.filter((p) => p.value < aMean).map((p) => `${r.what}, seed ${p.seed} (${pct(p.value)})`),
        )
        .join("; ")}.`,
      "",
    );
  L.push(
    `(b) on its own: the served run (seed 1) went from v1 = the public-only model at ${pct(s.initialServedAccuracy)} to ${pct(bServed)} at ` +
      `ε = ${fx(s.privacy.epsilon)} (${pts(bServed - s.initialServedAccuracy)} points; float32 before export ${pct(s.rounds.at(-1)?.fp32Accuracy)}).`,
    "",
  );

  L.push("## Goals", "");
  const at1 = epsilonMean(rep, 1);
  const at4 = epsilonMean(rep, 4);
  const goal = (name: string, target: string, measured: number, ok: boolean, gap: string) =>
    L.push(`| ${name} | ${target} | ${pct(measured)} | ${ok ? "reached" : "**not reached**"} | ${gap} |`);
  L.push("| goal | target | measured (mean of seeds) | | margin |", "|---|---|---:|---|---:|");
  goal(
    "public-only (a)",
    `≥ ${pct(GOALS.publicOnly)}`,
    aMean,
    aMean >= GOALS.publicOnly,
    pts(aMean - GOALS.publicOnly),
  );
  goal("private at ε = 1", `≥ ${pct(GOALS.privateAt1)}`, at1, at1 >= GOALS.privateAt1, pts(at1 - GOALS.privateAt1));
  goal("private at ε = 4", `≥ ${pct(GOALS.privateAt4)}`, at4, at4 >= GOALS.privateAt4, pts(at4 - GOALS.privateAt4));
  goal(
    "stretch: ε = 1 within 1 point of (d)",
    `≥ (d) − 1 = ${pct(dMean - GOALS.stretchGap)}`,
    at1,
    at1 >= dMean - GOALS.stretchGap,
    pts(at1 - (dMean - GOALS.stretchGap)),
  );
  goal(
    `(b) beats (a) at ε = ${rep.headlineEpsilon}`,
    `> (a) = ${pct(aMean)}`,
    bMean,
    bMean > aMean,
    pts(bMean - aMean),
  );
  L.push(
    "",
    `The served run alone against the model the edge served before any device took part: ${pct(bServed)} vs ${pct(s.initialServedAccuracy)} ` +
      `(${bServed > s.initialServedAccuracy ? "beats it" : "**does not beat it**"}).`,
    "",
  );

  L.push("## Privacy", "");
  L.push(
    `- **Guarantee**: user-level (ε, δ) = (${fx(s.privacy.epsilon)}, ${fd(s.privacy.delta)}) for every device's whole data, against everyone who sees the ` +
      `published models, after ${s.privacy.rounds.length} rounds of DP-FedAvg (central mode, adaptive clipping, Poisson q = ${R.samplingRate}, ` +
      `z = ${fx(s.noiseMultiplier)} solved for ε ≤ ${rep.headlineEpsilon}, ${s.privacy.accountant.toUpperCase()} accountant). ` +
      `It covers the devices' digits only: the public digits and the test digits are not private.`,
    `- **Where ε comes from**: the edge's ledger, \`GET /v1/populations/${s.population}/privacy\`, charged when each round opened. ` +
      `A fresh accountant fed the (q, z) of every round the edge charged gives ${s.epsilonCheck.recomputed.toFixed(6)} (edge: ${s.epsilonCheck.ledger.toFixed(6)}; ` +
      `the aggregator's own ledger of the same rounds: ${s.epsilonCheck.aggregator.toFixed(6)}).`,
    `- **Counts**: the report publishes no exact per-round count of the private population (devices checked in, selected, uploads); ` +
      (R.clip.adaptive
        ? `the clip norm C it shows moved by a noised count (σ_b = ${fx(Math.max((R.samplingRate * rep.clients) / 20, s.noiseMultiplier), 1)}), inside the same ε.`
        : "the clip norm C is fixed."),
    `- **Tuning** chose the knobs on a validation pool carved from the devices' digits of a proxy federation, never on the test digits (demo/TUNING.md). ` +
      "Those tuning runs read device digits outside this ε (as most DP papers' tuning does; Papernot & Steinke 2022, arXiv 2110.03620, account for it).",
    "",
  );
  if (rep.privacyAudit) L.push(...auditLines(rep.privacyAudit), "");
  if (s.devices.length) {
    L.push(
      "What two devices can show for themselves. At every check-in the edge hands the device a receipt signed with the edge's key " +
        "(round, q, z, σ_b, mode, clip rule, device, time); the SDK verifies and keeps it, and `client.privacy()` recomputes the " +
        "device's ε from its receipts alone (RDP, @fedge/privacy). Beside it, the same rounds composed with the population's " +
        "accountant: a round the device sat out never saw its data, so it counts for neither.",
      "",
    );
    L.push(
      "| device | rounds checked in (of those charged) | signed check-in receipts | selected / upload receipts | its own ε (SDK, RDP over receipts) | ε of its rounds (population's accountant) |",
      "|---|---:|---:|---|---:|---:|",
    );
    for (const d of s.devices) {
      const receipts = d.journal
        .filter((c) => c.selected)
        .map(
          (c) =>
            `${c.roundId}: ${c.receipt ? `sha256 ${c.receipt.sha256.slice(0, 12)}… at ${c.receipt.receivedAt}` : "no receipt"}`,
        );
      L.push(
        `| #${d.device} (${d.label}) | ${d.journal.length} of ${d.roundsCharged} | ${d.checkinReceipts.length} | ${receipts.length ? receipts.join("<br>") : "never selected"} | ` +
          `${d.ownEpsilon ? `${fx(d.ownEpsilon.epsilon)} (δ = ${fd(d.ownEpsilon.delta)})` : "no receipts"} | ${fx(d.epsilon)} (δ = ${fd(d.delta)}) |`,
      );
    }
    L.push("");
  }

  if (rep.modes) L.push(...modeComparisonMarkdown(rep.modes));

  L.push("## The served run, per round", "");
  L.push(
    "| round | clip C | noise σ | served acc | fp32 acc | version | ε | s |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|",
  );
  L.push(`| 0 | | | ${pct(s.initialServedAccuracy)} | | v${s.initialVersion} | 0 | |`);
  for (const r of s.rounds)
    L.push(
      `| ${r.round} | ${fx(r.clipNorm)} | ${fx(r.noiseStd, 4)} | ${pct(r.servedAccuracy)} | ${pct(r.fp32Accuracy)} | v${r.servedVersion} | ${fx(r.epsilon)} | ${r.seconds.toFixed(1)} |`,
    );
  L.push("");
  L.push("## Checks", "");
  L.push(
    `- Misbehaving devices (${rep.misbehavingPerKind} per kind: wrong signature, replayed nonce, NaN, oversize, dropout after check-in): ` +
      (s.misbehavingRefused
        ? "every misbehaving upload got a 4xx"
        : "**CHECK FAILED: some misbehaving upload was not refused**") +
      "; " +
      (s.acceptedAreHonest
        ? "every round the edge accepted exactly the honest uploads, and the aggregator streamed and re-verified all of them."
        : "**CHECK FAILED: the accepted updates differ from the honest uploads.**"),
    `- Served model: v${s.ortCheck.version} (sha256 ${s.ortCheck.sha256.slice(0, 16)}…) downloaded from the edge and run in onnxruntime-node on ${s.ortCheck.samples} ` +
      `test digits: argmax agreement with /predict ${(s.ortCheck.argmaxAgreement * 100).toFixed(2)}%, max |logit difference| ${s.ortCheck.maxAbsLogitDiff.toExponential(2)}.`,
    `- ${rep.intermittent} honest devices are away every third round (they do not check in then), so the per-device ε above differs between devices.`,
    "",
  );

  L.push("## Setting", "");
  const float32Bytes = 4 * s.uploads.updateLength;
  L.push(
    `- **Coordination**: the population's rounds ran on S = ${s.coordination.shards} coordinator shard${s.coordination.shards === 1 ? "" : "s"} ` +
      `(\`PUT /v1/admin/populations/${s.population}/sharding\`; ${s.coordination.why}).`,
    `- **Uploads**: ${s.uploads.dtype}, ${Math.round(s.uploads.bytesPerUpdate)} bytes per signed update of ${s.uploads.updateLength} values ` +
      `(mean over the accepted updates the edge listed), ${(s.uploads.bytesPerUpdate / float32Bytes).toFixed(3)}× the ${float32Bytes} bytes of the same values in float32.`,
  );
  L.push(
    `- **Data**: the \`mnist\` package's 10,000 digits, fixed split (\`loadMnist\`): ${rep.testSamples} test digits; of the train digits the first ` +
      `${rep.publicSamples} are public (used only to pretrain) and the other ${rep.privateSamples} are on the devices, non-IID (\`shardNonIid\`).`,
    `- **Model**: MLP 784→${rep.pretrain.hidden}→10. (a) is the whole model pretrained on the public digits (${rep.pretrain.epochs} SGD epochs over ` +
      `${rep.pretrain.copies} fresh random affine copies of each digit per epoch: rotation, scale, shear, shift; \`affineAugment\`). ` +
      `The private run starts from all of it, head included, and the devices fine-tune ${R.trainable === "head" ? "its head (the output layer, " + (rep.pretrain.hidden * 10 + 10) + " parameters)" : "every layer"}.`,
    `- **Recipe** (demo/src/setting.ts RECIPE; tuned on the validation pool, demo/TUNING.md): ${R.rounds} rounds, q = ${R.samplingRate}, ` +
      `${R.server.kind === "fedadam" ? `FedAdam on the server (η = ${R.server.lr})` : `FedAvgM on the server (η = ${R.server.lr}, μ = ${R.server.momentum})`}, ` +
      (R.clip.adaptive
        ? `adaptive clipping from C = ${R.clip.initial} to the ${R.clip.targetQuantile} quantile (η_C = ${R.clip.learningRate}), `
        : `a fixed clip norm C = ${R.clip.initial}, `) +
      `each device ${R.client.localEpochs} local epochs (batch ${R.client.batchSize}, learning rate ${R.client.learningRate}), ` +
      `${R.accountant.toUpperCase()} accounting. The curve (c) uses at each ε the server learning rate tuned for it ` +
      `(${rep.serverLrByEpsilon.map((x) => `ε ${x.epsilon}: η ${x.lr}`).join(", ")}; less noise allows larger steps), the rest as above; ` +
      `the ceiling (d) is the same recipe with privacy mode none and its own tuned η = ${rep.ceilingRecipe.server.lr}.`,
    `- **Edge**: a fresh \`wrangler dev\` (state \`${rep.stateDir}\`); every device is a real \`FedgeClient\` (own Ed25519 key, storage, offline queue) ` +
      "checking in, downloading the signed model, training, clipping, signing and uploading over HTTP; the aggregator opens each round on the edge, " +
      "streams and re-verifies the accepted updates, aggregates on gpu-node, exports int8 ONNX with a signed manifest and promotes it. Every round's model " +
      "is served (no publish gate: its only held-out digits would be the test digits).",
    "",
  );
  L.push(
    "## Plots",
    "",
    "![accuracy vs round](accuracy_vs_round.svg)",
    "",
    "![accuracy vs epsilon](accuracy_vs_epsilon.svg)",
    "",
  );
  return L.join("\n");
}

/** y range that shows the data: from the lowest to the highest value, padded by 0.3 points and a tenth of the span. */
function zoom(values: number[]): [number, number] {
  const v = values.filter(Number.isFinite);
  const lo = Math.min(...v);
  const hi = Math.max(...v);
  const pad = 0.003 + (hi - lo) * 0.1;
  return [Math.floor((lo - pad) * 200) / 200, Math.ceil((hi + pad) * 200) / 200];
}

/** `accuracy_vs_round.svg`: the served run per round and the headline ε's in-process seeds, with (a) and (d). */
export function accuracyVsRoundSvg(rep: DemoReport): string {
  const s = rep.served;
  const aMean = mean(rep.publicOnly.map((p) => (p.seed === 1 ? s.initialServedAccuracy : p.accuracy)));
  const dMean = mean(rep.ceiling.map((c) => c.final));
  const series: Series[] = [
    {
      label: `(b) served through the edge, seed 1 (int8), ε = ${rep.headlineEpsilon}`,
      points: [{ x: 0, y: s.initialServedAccuracy }, ...s.rounds.map((r) => ({ x: r.round, y: r.servedAccuracy }))],
    },
    ...rep.curve
      .filter((c) => c.epsilonTarget === rep.headlineEpsilon)
      .map((c) => ({
        label: `(b) in process, seed ${c.seed} (fp32)`,
        dashed: true,
        points: [
          { x: 0, y: rep.publicOnly.find((p) => p.seed === c.seed)?.accuracy ?? NaN },
          ...c.accuracy.map((y, i) => ({ x: i + 1, y })),
        ],
      })),
  ];
  const hlines = [
    { y: aMean, label: `(a) public-only, mean ${pct(aMean)}`, color: "#555555" },
    ...(Number.isFinite(dMean)
      ? [{ y: dMean, label: `(d) non-private ceiling, mean ${pct(dMean)}`, color: "#8c564b" }]
      : []),
  ];
  return lineChartSvg({
    title: `Test accuracy by round, private at ε = ${rep.headlineEpsilon} (δ = ${fd(rep.delta)})`,
    xLabel: "round",
    yLabel: "test accuracy",
    series,
    xTicks: Array.from({ length: rep.recipe.rounds + 1 }, (_, i) => i),
    xDomain: [0, rep.recipe.rounds],
    hlines,
    yPercent: true,
    yDomain: zoom([...series.flatMap((x) => x.points.map((p) => p.y)), ...hlines.map((h) => h.y)]),
  });
}

/** `accuracy_vs_epsilon.svg`: final accuracy at each ε (mean, min–max over seeds), with (a) and (d). */
export function accuracyVsEpsilonSvg(rep: DemoReport): string {
  const s = rep.served;
  const aMean = mean(rep.publicOnly.map((p) => (p.seed === 1 ? s.initialServedAccuracy : p.accuracy)));
  const dMean = mean(rep.ceiling.map((c) => c.final));
  const curve = curveByEpsilon(rep);
  const points = curve.map((c) => {
    const v = c.runs.map((r) => r.value);
    return { x: c.epsilon, y: mean(v), lo: Math.min(...v), hi: Math.max(...v) };
  });
  const hlines = [
    { y: aMean, label: `(a) public-only, mean ${pct(aMean)}`, color: "#555555" },
    ...(Number.isFinite(dMean)
      ? [{ y: dMean, label: `(d) non-private ceiling, mean ${pct(dMean)}`, color: "#8c564b" }]
      : []),
  ];
  const eps = curve.map((c) => c.epsilon);
  return lineChartSvg({
    title: `Privacy–utility: final test accuracy vs ε (δ = ${fd(rep.delta)}, ${rep.recipe.rounds} rounds)`,
    xLabel: "ε (log scale)",
    yLabel: "test accuracy (mean, min–max over seeds)",
    series: [{ label: `(c) private, mean of ${rep.seeds} seeds`, points }],
    hlines,
    xLog: true,
    xTicks: eps,
    ...(eps.length ? { xDomain: [Math.min(...eps) / 1.25, Math.max(...eps) * 1.25] as [number, number] } : {}),
    yPercent: true,
    yDomain: zoom([...points.flatMap((p) => [p.lo, p.hi]), ...hlines.map((h) => h.y)]),
  });
}
