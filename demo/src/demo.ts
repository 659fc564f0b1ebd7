/**
 * @module
 * `runDemo()`: the whole of `npm run demo` (see README "What the demo does"):
 *
 * 1. data (`setting.ts`): 500 public train digits, the rest on the devices (non-IID), 1,505 test digits that only
 *    measure;
 * 2. (a) the public-only model of every seed: the whole MLP pretrained on the public slice (`pretrainPublic`);
 * 3. (b) the private run through the real local edge at the headline ε: the fleet of `FedgeClient`s, the aggregator's
 *    `EdgeRoundRunner`, fine-tuning the whole public model of seed 1 (its head, by the tuned recipe), every round's
 *    model served int8 and measured through `/predict`; ε read through `populationPrivacy` (the edge's ledger);
 * 4. (c) the privacy–utility curve and (d) the non-private ceiling, in process (`in-process.ts`: `fedge simulate` on
 *    the same devices' data, same round engine and device code), never served;
 * 5. the outputs: report.md, accuracy_vs_round.svg, accuracy_vs_epsilon.svg, summary.json (`report.ts`).
 *
 * Seeds: seed s fixes the public model's init and augmentation, the devices' partition and their batch order; privacy
 * noise, sampling, keys and nonces always come from the CSPRNG. Seed 1 is the served run; seeds 2…S run in process.
 * `demo/main.ts` parses flags and calls it; test/e2e-demo.test.ts runs a small one.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { FedgeClient } from "@fedge/client";
import { createBackend } from "@fedge/gpu-node";
import { paddedLength } from "@fedge/privacy";
import { toBase64Url } from "@fedge/protocol";
import { generateSigningKey } from "fedge/export";
import { EdgeAdminClient } from "fedge/edge";
import { repoRoot, startLocalEdge, type LocalEdge } from "@fedge/local-edge";
import { Fleet } from "./fleet.ts";
import {
  doInProcessWork,
  startInProcessWork,
  type InProcessHandle,
  type InProcessJob,
  type InProcessResults,
  type InProcessWork,
} from "./in-process-worker.ts";
import { runServed, type DemoAudit } from "./served-run.ts";
import { runPrivacyAudit, type PrivacyAuditReport } from "./privacy-audit.ts";
import { accuracyVsEpsilonSvg, accuracyVsRoundSvg, reportMarkdown, type DemoReport, type ServedRun } from "./report.ts";
import { FIXED_CLIP_WHY, type ModeComparison, type ServedModeRun } from "./mode-comparison.ts";
import { inProcessCohort, servedEpsilon, type DistributedCohort, type ServedEpsilon } from "./distributed-cohort.ts";
import { runServedModes } from "./served-modes.ts";
import { servedRecipeFor } from "./served-setting.ts";
import {
  demoData,
  demoUpdateLength,
  distributedSharesFor,
  PRETRAIN,
  pretrainPublic,
  RECIPE,
  recipeAt,
  withFixedClip,
  type FederatedRecipe,
} from "./setting.ts";

/** Options of {@link runDemo}; the flags of `npm run demo` map onto them. */
export interface DemoOptions {
  /** Simulated devices N. @default 1000 */
  clients?: number;
  /** Headline target ε of the served private run, δ = `delta`. @default 1 */
  epsilon?: number;
  /** δ. @default 1e-5 */
  delta?: number;
  /** Train digits treated as public (the first ones of the train split). @default 500 */
  publicSamples?: number;
  /** Seeds S: seed 1 is served, seeds 2…S run in process. @default 3 */
  seeds?: number;
  /** ε of the privacy–utility curve (in process; `[]` skips it). @default [0.5, 1, 2, 4, 8] */
  curveEpsilons?: number[];
  /**
   * `distributed`: also run the headline ε in central and in distributed DP with one fixed clip norm (the recipe's
   * C) and put them side by side in the report (`mode-comparison.ts`): served through the local edge on
   * `modesClients` devices (`served-modes.ts`), and in process on every device, every seed. The main served run (b)
   * stays central with adaptive clipping.
   * @default "central" (no comparison)
   */
  privacy?: "central" | "distributed";
  /**
   * Devices of the served comparison (`privacy: "distributed"`): the first of the fleet's partition, each with its own
   * shard. Every selected device takes part in SecAgg+ (its cost grows with the round's size), so it is smaller than
   * the fleet to fit the demo's time budget. At 200 devices and ε = 1 both modes run `SERVED_SETTING`'s rounds and q
   * (tuned for central mode on the validation pool, `served-setting.ts`); otherwise the recipe's. @default min(200, clients)
   */
  modesClients?: number;
  /** Run the non-private ceiling in process. @default true */
  ceiling?: boolean;
  /**
   * Overrides of the tuned recipe (`setting.ts` `recipeAt`: RECIPE with the server learning rate of each ε): rounds, q,
   * server optimizer, clipping, device task; they apply to every run (an overridden `server` to the ceiling too).
   */
  recipe?: Partial<FederatedRecipe>;
  /** Server learning rate of the non-private ceiling (tuned on its own, demo/TUNING.md). @default CEILING_SERVER_LR */
  ceilingServerLr?: number;
  /** Epochs of public pretraining. @default PRETRAIN.learningRates.length */
  pretrainEpochs?: number;
  /** Distinct digits per device. @default 2 */
  labelsPerClient?: number;
  /** Misbehaving devices per kind. @default 5 */
  misbehavingPerKind?: number;
  /** Honest devices that are away (do not check in) every third round, starting at a round of their own. @default 10 */
  intermittent?: number;
  /** Devices in flight at once. @default 24 */
  concurrency?: number;
  /**
   * Run the in-process work (public models of seeds 2…S, curve, ceiling) in a worker thread while the served run goes
   * through the edge (the main thread mostly waits on the edge then). `false` runs it after the served run.
   * @default true
   */
  parallel?: boolean;
  /** Aggregation backend. @default "auto" (webgpu on lavapipe if an adapter exists, else cpu) */
  backend?: "auto" | "cpu" | "webgpu";
  /**
   * After the served run, audit its population empirically (`privacy-audit.ts`: the one-shot audit of Andrew et al.
   * 2024 on a never-served shadow, with this many canaries); the report shows ε̂ next to the ledger's ε.
   * @default undefined (no audit)
   */
  auditCanaries?: number;
  /** Edge port. @default 8787 */
  port?: number;
  /** Output folder (report, plots, summary, edge state). @default `<repo>/demo-out` */
  outDir?: string;
  /** Progress sink. @default console.log */
  log?: (line: string) => void;
}

export type { DemoAudit } from "./served-run.ts";

export interface DemoResult {
  report: DemoReport;
  audit: DemoAudit;
  files: { report: string; accuracyVsRound: string; accuracyVsEpsilon: string; summary: string };
}

function secret(bytes: number): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(bytes)));
}

/** Runs the demo end to end (see the module header) and writes its outputs. */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const t0 = performance.now();
  const log = options.log ?? ((l: string) => console.log(l));
  const clients = options.clients ?? 1000;
  const epsilon = options.epsilon ?? 1;
  const delta = options.delta ?? 1e-5;
  const seeds = options.seeds ?? 3;
  const publicSamples = options.publicSamples ?? 500;
  const curveEpsilons = [...new Set(options.curveEpsilons ?? [0.5, 1, 2, 4, 8])].sort((a, b) => a - b);
  // the tuned recipe at each ε (its server step grows as the noise shrinks), then the caller's overrides
  const recipeFor = (e: number | null) => recipeAt(e, options.recipe);
  const recipe = recipeFor(epsilon);
  const ceilingRecipe: FederatedRecipe = {
    ...recipeFor(null),
    ...(options.ceilingServerLr ? { server: { ...recipeFor(null).server, lr: options.ceilingServerLr } } : {}),
  };
  const labelsPerClient = options.labelsPerClient ?? 2;
  if (!Number.isInteger(seeds) || seeds < 1) throw new RangeError(`seeds must be an integer >= 1, got ${seeds}`);
  if (!(epsilon > 0)) throw new RangeError(`epsilon must be > 0, got ${epsilon}`);
  const modesClients = options.modesClients ?? Math.min(200, clients);
  const modesOk = Number.isInteger(modesClients) && modesClients <= clients && modesClients * recipe.samplingRate >= 5;
  if (options.privacy === "distributed" && !modesOk) {
    throw new RangeError(
      `modesClients must be an integer ≤ clients (${clients}) with at least 5 devices a round at q = ${recipe.samplingRate}, got ${modesClients}`,
    );
  }
  // (e)'s cohorts and ε by their stated rules (`distributed-cohort.ts`), before anything runs: the in-process
  // comparison at the headline ε on central's own q (a checked-in cohort: no add/remove floor); the served one on the
  // served devices at the recipe's q, at the headline ε if its distributed plan reaches it, else at the rule's ε.
  let modesCohort: DistributedCohort | undefined;
  let servedTarget: ServedEpsilon | undefined;
  // The served comparison's rounds and q: tuned for central mode on its own device count (`served-setting.ts`).
  const servedChoice = servedRecipeFor({ recipe, overrides: options.recipe, clients: modesClients, epsilon });
  if (options.privacy === "distributed") {
    const planFor = { delta, updateLength: demoUpdateLength(recipe.trainable) };
    modesCohort = inProcessCohort({ ...planFor, recipe: withFixedClip(recipe), clients, epsilon });
    servedTarget = servedEpsilon({ ...planFor, recipe: servedChoice.recipe, clients: modesClients, epsilon });
    log(
      `(e) in process: q = ${modesCohort.samplingRate}, n_min = ${modesCohort.minClients} of ${modesCohort.noiseShares} ` +
        `(${modesCohort.rule}); served: ${servedChoice.recipe.rounds} rounds at q = ${servedChoice.recipe.samplingRate} ` +
        `(${servedChoice.why}), ε = ${servedTarget.epsilon} (${servedTarget.rule})`,
    );
  }
  const outDir = options.outDir ?? path.join(repoRoot, "demo-out");
  const startedAt = new Date().toISOString();
  const stateDir = path.join(outDir, "state", startedAt.replace(/[:.]/g, "-"));
  await mkdir(stateDir, { recursive: true });
  const seconds: Record<string, number> = {};
  const lap = (k: string, since: number) => (seconds[k] = (performance.now() - since) / 1000);

  // 1. Data: seed 1's partition is the fleet's; seeds 2…S re-partition the same digits for the in-process runs.
  let t = performance.now();
  const data = demoData({ clients, publicSamples, labelsPerClient, seed: 1 });
  const test = data.test;
  log(
    `data: ${data.public.n} public train digits (pretraining only), ${data.privateSamples} private digits on ${clients} devices ` +
      `(${labelsPerClient} digits each), ${test.n} test digits (never on a device, never tuning anything)`,
  );

  // 2. (a), (c), (d): the public-only model of every seed (the whole model: features and head), the curve, the
  // headline ε's other seeds and the ceiling, in process on the same devices' data; in a worker thread unless
  // `parallel` is false. Seed 1's public model comes first: the served run starts from it.
  const jobs: InProcessJob[] = [];
  const epsilons = curveEpsilons.includes(epsilon) ? curveEpsilons : [...curveEpsilons, epsilon];
  for (const e of epsilons)
    for (let s = 1; s <= seeds; s++)
      if (!(e === epsilon && s === 1))
        jobs.push({ kind: "curve", epsilon: e, seed: s, recipe: recipeFor(e), everyRound: e === epsilon });
  if (options.ceiling ?? true)
    for (let s = 1; s <= seeds; s++) jobs.push({ kind: "ceiling", epsilon: null, seed: s, recipe: ceilingRecipe });
  if (modesCohort) jobs.push(...modeComparisonJobs(modesCohort.recipe, epsilon, seeds));
  const work: InProcessWork = {
    clients,
    publicSamples,
    labelsPerClient,
    delta,
    seeds,
    ...(options.pretrainEpochs ? { pretrainEpochs: options.pretrainEpochs } : {}),
    jobs,
  };
  const parallel = options.parallel ?? true;
  t = performance.now();
  const inProcess: InProcessHandle | undefined = parallel ? startInProcessWork(work, log) : undefined;
  const seed1 = inProcess
    ? inProcess.seed1
    : Promise.resolve(
        pretrainPublic(data.public, { seed: 1, ...(options.pretrainEpochs ? { epochs: options.pretrainEpochs } : {}) }),
      );

  // 3. (b) The private run through the edge.
  const backend = await createBackend({ prefer: options.backend ?? "auto", log: () => undefined });
  const audit: DemoAudit = { rounds: [], refusals: {}, notRefused: 0, honestErrors: {} };
  let served: ServedRun;
  let servedModes: ServedModeRun[] | undefined;
  let privacyAudit: PrivacyAuditReport | undefined;
  const signingKey = generateSigningKey();
  const adminToken = `fa_${secret(32)}`;
  t = performance.now();
  let edge: LocalEdge;
  try {
    edge = await startLocalEdge({
      port: options.port ?? 8787,
      persistTo: stateDir,
      vars: {
        FEDGE_ADMIN_TOKEN: adminToken,
        FEDGE_DEV_API_KEY: `fk_dev_${secret(24)}`,
        FEDGE_AGGREGATOR_PUBLIC_KEY: toBase64Url(signingKey.publicKey),
      },
      readyTimeoutMs: 180_000,
    });
  } catch (e) {
    await inProcess?.terminate();
    throw e;
  }
  // Ctrl-C / kill: stop wrangler's process group too (it runs detached), then exit.
  const onSignal = (signal: NodeJS.Signals) => {
    void edge.stop().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    log(
      `edge: wrangler dev at ${edge.url} in ${((performance.now() - t) / 1000).toFixed(1)} s (state ${path.relative(repoRoot, stateDir)}); aggregation backend ${backend.kind}`,
    );
    const operator = new EdgeAdminClient({ baseUrl: edge.url, adminToken });
    const key = await operator.createApiKey("fedge demo fleet", 1_000_000);
    // A key registers 1,000 devices by default; the fleet is one key, so its quota is the fleet's size.
    await operator.setDeviceQuota(key.id, clients);
    const admin = new EdgeAdminClient({ baseUrl: edge.url, signingKey: signingKey.secretKey });
    const intermittent = Math.min(options.intermittent ?? 10, Math.floor(clients / 10));
    const stride = Math.max(1, Math.floor(clients / Math.max(1, intermittent)));
    const fleet = new Fleet({
      baseUrl: edge.url,
      apiKey: key.key,
      shards: data.devices,
      misbehavingPerKind: options.misbehavingPerKind ?? 5,
      concurrency: options.concurrency ?? 24,
      // The demo app's own policy: central DP only, up to the ε the demo was asked for; every model it trains on must
      // be signed by this run's aggregator.
      privacyPolicy: { allowedModes: ["central"], maxPopulationEpsilon: Math.max(10, epsilon), maxDelta: delta },
      aggregatorPublicKey: signingKey.publicKey,
      // `intermittent` honest devices (one every `stride`, from device 3) are away every third round
      offline: (i, round) => i % stride === 3 && i / stride < intermittent && (round + i) % 3 === 0,
    });
    await fleet.register();
    log(`fleet: ${clients} devices registered in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    lap("edge start and fleet registration", t);
    const evaluator = new FedgeClient({ baseUrl: edge.url, apiKey: key.key, platform: "demo-evaluator" });
    t = performance.now();
    const initial = await seed1;
    lap("waiting for seed 1's public model", t);
    t = performance.now();
    served = await runServed(
      { edge, admin, operator, signingKey, apiKey: key.key, evaluator, fleet, backend, test, log },
      { clients, epsilon, delta, recipe },
      initial,
      audit,
    );
    lap("served rounds", t);
    if (options.auditCanaries !== undefined) {
      t = performance.now();
      privacyAudit = await runPrivacyAudit(
        { operator, signingKey, backend, log },
        { population: served.population, clients, epsilon, delta, recipe, canaries: options.auditCanaries },
      );
      lap("privacy audit", t);
    }
    if (servedTarget) {
      t = performance.now();
      servedModes = await runServedModes(
        { baseUrl: edge.url, admin, operator, signingKey, backend, evaluator, test, log },
        {
          shards: data.devices.slice(0, modesClients),
          recipe: servedChoice.recipe,
          epsilon: servedTarget.epsilon,
          delta,
          // The demo app's policy, with distributed DP allowed, up to the ε the served comparison runs at (the SDK's
          // defaults bound each report's own ε).
          privacyPolicy: {
            allowedModes: ["central", "distributed"],
            maxPopulationEpsilon: Math.max(10, servedTarget.epsilon),
            maxDelta: delta,
          },
          initial,
          concurrency: options.concurrency ?? 24,
        },
      );
      lap("served central vs distributed", t);
    }
  } catch (e) {
    await inProcess?.terminate();
    const out = edge.output().trim();
    if (out) log(`the edge's last output (wrangler dev):\n${out.slice(-3000)}`);
    throw e;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await edge.stop();
  }

  // 4. The in-process work: awaited (it ran beside the served run), or run now.
  t = performance.now();
  let results: InProcessResults;
  try {
    results = inProcess ? await inProcess.results : await doInProcessWork({ ...work, jobs: work.jobs }, log);
  } finally {
    await backend.dispose();
  }
  lap(parallel ? "in-process work still running after the served rounds" : "in-process work", t);
  const publicOnly = results.publicOnly;
  const curve = results.runs.filter((r) => r.kind === "curve");
  const ceiling = results.runs.filter((r) => r.kind === "ceiling");
  const modes: ModeComparison | undefined = modesCohort
    ? {
        ...modeComparisonOf({ runs: results.runs, recipe: modesCohort.recipe, clients, epsilon, delta }),
        cohort: cohortSummary(modesCohort),
        ...(servedModes && servedTarget
          ? {
              served: {
                devices: modesClients,
                epsilon: servedTarget.epsilon,
                floor: servedTarget.floor,
                headline: servedTarget.headline,
                rule: servedTarget.rule,
                setting: {
                  rounds: servedChoice.recipe.rounds,
                  samplingRate: servedChoice.recipe.samplingRate,
                  why: servedChoice.why,
                },
                distributed: distributedSharesFor(servedChoice.recipe, modesClients),
                runs: servedModes,
              },
            }
          : {}),
      }
    : undefined;

  const report: DemoReport = {
    startedAt,
    clients,
    delta,
    headlineEpsilon: epsilon,
    seeds,
    backend: backend.kind,
    publicSamples: data.public.n,
    privateSamples: data.privateSamples,
    testSamples: test.n,
    labelsPerClient,
    intermittent: Math.min(options.intermittent ?? 10, Math.floor(clients / 10)),
    misbehavingPerKind: options.misbehavingPerKind ?? 5,
    recipe,
    ceilingRecipe,
    serverLrByEpsilon: [...epsilons].sort((a, b) => a - b).map((e) => ({ epsilon: e, lr: recipeFor(e).server.lr })),
    pretrain: {
      hidden: PRETRAIN.hidden,
      epochs: options.pretrainEpochs ?? PRETRAIN.learningRates.length,
      copies: PRETRAIN.copies,
    },
    publicOnly,
    served,
    ...(privacyAudit ? { privacyAudit } : {}),
    ...(modes ? { modes } : {}),
    curve: curve.map(summaryOf),
    ceiling: ceiling.map(summaryOf),
    stateDir: path.relative(repoRoot, stateDir),
    seconds: { ...seconds, total: (performance.now() - t0) / 1000 },
  };
  await mkdir(outDir, { recursive: true });
  const files = {
    report: path.join(outDir, "report.md"),
    accuracyVsRound: path.join(outDir, "accuracy_vs_round.svg"),
    accuracyVsEpsilon: path.join(outDir, "accuracy_vs_epsilon.svg"),
    summary: path.join(outDir, "summary.json"),
  };
  await writeFile(files.report, reportMarkdown(report));
  await writeFile(files.accuracyVsRound, accuracyVsRoundSvg(report));
  await writeFile(files.accuracyVsEpsilon, accuracyVsEpsilonSvg(report));
  await writeFile(files.summary, JSON.stringify(report, null, 2) + "\n");
  return { report, audit, files };
}

/**
 * The comparison's in-process jobs: the headline ε's recipe with its C fixed (distributed mode cannot adapt it), in
 * central and in distributed DP, for every seed.
 */
export function modeComparisonJobs(recipe: FederatedRecipe, epsilon: number, seeds: number): InProcessJob[] {
  const fixed = withFixedClip(recipe);
  const jobs: InProcessJob[] = [];
  for (const privacy of ["central", "distributed"] as const)
    for (let s = 1; s <= seeds; s++) jobs.push({ kind: "modes", privacy, epsilon, seed: s, recipe: fixed });
  return jobs;
}

/** What the report states about the in-process cohort. */
export function cohortSummary(c: DistributedCohort): NonNullable<ModeComparison["cohort"]> {
  return {
    samplingRate: c.samplingRate,
    expectedClients: c.expectedClients,
    cohort: c.cohort,
    noiseShares: c.noiseShares,
    minClients: c.minClients,
    floor: c.floor,
    recipeFloor: c.recipeFloor,
    rule: c.rule,
  };
}

/** The comparison of the report, from the worker's runs of {@link modeComparisonJobs}. */
export function modeComparisonOf(o: {
  runs: InProcessResults["runs"];
  recipe: FederatedRecipe;
  clients: number;
  epsilon: number;
  delta: number;
}): ModeComparison {
  const runs = o.runs.filter((r) => r.kind === "modes");
  const updateLength = runs[0]?.updateLength ?? 0;
  return {
    epsilonTarget: o.epsilon,
    delta: o.delta,
    clipNorm: o.recipe.clip.initial,
    clipWhy:
      o.recipe.clip.initial === RECIPE.clip.initial ? FIXED_CLIP_WHY : "the caller's C (a recipe override, not tuned)",
    updateLength,
    paddedLength: paddedLength(updateLength),
    distributed: distributedSharesFor(o.recipe, o.clients),
    runs: runs.map((r) => ({
      privacy: r.privacy === "distributed" ? "distributed" : "central",
      seed: r.seed,
      epsilon: r.epsilon,
      noiseMultiplier: r.noiseMultiplier,
      final: r.final,
      uploadBytesPerUpdate: r.uploadBytesPerUpdate,
      deviceSecondsPerUpdate: r.deviceSecondsPerUpdate,
      roundSeconds: r.roundSeconds,
      ...(r.noiseOnlyPerRound > 0 ? { noiseOnlySecondsPerInput: r.noiseOnlySecondsPerInput } : {}),
      ...(r.epsilonAgainstEdge !== undefined ? { epsilonAgainstEdge: r.epsilonAgainstEdge } : {}),
    })),
  };
}

function summaryOf(r: InProcessResults["runs"][number]) {
  return {
    epsilonTarget: r.epsilonTarget,
    epsilon: r.epsilon,
    noiseMultiplier: r.noiseMultiplier,
    seed: r.seed,
    final: r.final,
    accuracy: r.accuracy,
    seconds: r.seconds,
  };
}
