/**
 * @module
 * `runDemo()`: the whole of `npm run demo` (see README "What the demo does"): data, public pretraining of the features,
 * the local edge, the fleet, the private run and the non-private baseline through the edge, the checks, and the outputs
 * (report.md, two SVG plots, summary.json). `demo/main.ts` parses flags and calls it; test/e2e-demo.test.ts runs a
 * small one.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { FedgeClient } from "@fedge/client";
import { initMlp, trainLocal, xoshiroRandomBytes } from "@fedge/ml";
import { createBackend, type Backend } from "@fedge/gpu-node";
import { readMlpFromOnnx, type MlpParams } from "@fedge/ml";
import { toBase64Url } from "@fedge/protocol";
import { createAccountant, getNoiseMultiplier, PrivacyLedger } from "@fedge/privacy";
import { loadMnist, type Dataset } from "fedge/data";
import { NINE_SHIFTS, shardNonIid, shiftAugment } from "fedge/data";
import { parsePopulationConfig, type PopulationConfigInput } from "fedge/config";
import { RoundEngine } from "fedge/round";
import { evaluateModel } from "fedge/evaluate";
import { exportModel, generateSigningKey, type SigningKey } from "fedge/export";
import { EdgeAdminClient, EdgeRoundRunner, edgeRunnerStateOf } from "fedge/edge";
import { repoRoot, startLocalEdge, type LocalEdge } from "@fedge/local-edge";
import { Fleet } from "./fleet.ts";
import { MISBEHAVIOURS, type Misbehaviour } from "./misbehave.ts";
import {
  accuracyVsEpsilonSvg,
  accuracyVsRoundSvg,
  progressLine,
  reportMarkdown,
  type DemoReport,
  type RoundRecord,
  type RunRecord,
} from "./report.ts";

/** Options of {@link runDemo}; the flags of `npm run demo` map onto them. */
export interface DemoOptions {
  /** Simulated devices N. @default 1000 */
  clients?: number;
  /** Rounds R per run. @default 12 */
  rounds?: number;
  /** Target user-level ε of the private run over R rounds (z is solved for it). @default 4 */
  epsilon?: number;
  /** δ. @default 1e-5 */
  delta?: number;
  /** Run the private (DP) run. `--no-dp` sets false: only the non-private run. @default true */
  dp?: boolean;
  /** Also run the non-private baseline through the edge (when `dp`). @default true */
  baseline?: boolean;
  /** Aggregation backend. @default "auto" (webgpu on lavapipe if an adapter exists, else cpu) */
  backend?: "auto" | "cpu" | "webgpu";
  /** Edge port. @default 8787 */
  port?: number;
  /** Output folder (report, plots, summary, edge state). @default `<repo>/demo-out` */
  outDir?: string;
  /**
   * Poisson sampling rate q. 0.3 rather than 0.2: ~300 reports a round average the noise down further (z grows less
   * than q), for ~12% more wall time a round (check-ins of the unselected devices dominate it).
   * @default 0.3
   */
  samplingRate?: number;
  /** Server learning rate η of FedAvgM (both runs). @default 4 */
  serverLearningRate?: number;
  /** FedAvgM momentum μ (both runs). @default 0.5 */
  serverMomentum?: number;
  /**
   * Target quantile γ of adaptive clipping (Andrew et al. 2021, arXiv 1905.03871): C tracks the γ-quantile of the
   * update norms, so a low γ clips most updates and keeps the noise σ = z·C small. @default 0.3
   */
  clipQuantile?: number;
  /** Train digits treated as public server data (the first ones of the train split). @default 2000 */
  publicSamples?: number;
  /** Distinct digits per device. @default 2 */
  labelsPerClient?: number;
  /** Misbehaving devices per kind. @default 5 */
  misbehavingPerKind?: number;
  /** Devices in flight at once. @default 24 */
  concurrency?: number;
  /** Epochs of public pretraining (×9 shifted copies, see {@link PRETRAIN}). @default 5 */
  pretrainEpochs?: number;
  /** Seed of the DATA partition and model init only (never of privacy noise, sampling, keys or nonces). @default 1 */
  seed?: number;
  /** Progress sink. @default console.log */
  log?: (line: string) => void;
}

export interface DemoResult {
  report: DemoReport;
  files: { report: string; accuracyVsRound: string; accuracyVsEpsilon: string; summary: string };
}

function secret(bytes: number): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(bytes)));
}

function slice(d: Dataset, from: number, to: number): Dataset {
  return { x: d.x.slice(from * 784, to * 784), y: d.y.slice(from, to), n: to - from };
}

/** The devices' task (head only): a few SGD steps on their handful of digits each round. */
const CLIENT_TASK = { learningRate: 0.5, localEpochs: 5, batchSize: 8 } as const;

/**
 * The public pretraining recipe: minibatch SGD on the public slice ×9 shifts, batch 16, learning rate per epoch (the
 * last one repeats). Tuned in process (the aggregator's RoundEngine, the demo's split and head-only training) for a
 * head that a few noisy federated rounds can learn from zero: this higher, decaying rate gives features on which 12
 * private rounds reach ~93% vs ~90% with the former recipe (batch 32, rates 0.1 → 0.01), though the full public
 * model's own accuracy differs by < 1 point.
 */
export const PRETRAIN = { batchSize: 16, learningRates: [0.2, 0.2, 0.1, 0.05, 0.02] } as const;

/**
 * Features from public data: the seed model `models/mnist-mlp-init` (falls back to a fresh init with the same recipe)
 * trained on the public slice (×9 shifts), then its head reset to zero so that the classifier is learned privately.
 */
async function pretrainOnPublic(
  pub: Dataset,
  epochs: number,
  seed: number,
  test: Dataset,
): Promise<{ model: MlpParams; accuracy: number }> {
  let model: MlpParams;
  try {
    model = readMlpFromOnnx(await readFile(path.join(repoRoot, "models/mnist-mlp-init/fp32.onnx"))).params;
  } catch {
    model = initMlp([784, 64, 10], { random: xoshiroRandomBytes(seed) });
  }
  const aug = shiftAugment(pub, NINE_SHIFTS);
  for (let e = 0; e < epochs; e++) {
    model = trainLocal(model, aug.x, aug.y, {
      epochs: 1,
      batchSize: PRETRAIN.batchSize,
      learningRate: PRETRAIN.learningRates[Math.min(e, PRETRAIN.learningRates.length - 1)]!,
      scope: "all",
      random: xoshiroRandomBytes(seed + 100 + e),
    }).params;
  }
  const accuracy = evaluateModel(model, test).accuracy;
  const head = model.layers.at(-1)!;
  head.weight.fill(0);
  head.bias.fill(0);
  return { model, accuracy };
}

/** Served accuracy through `/predict` (batches of 128, the edge's cap) and the served logits. */
async function servedAccuracy(
  client: FedgeClient,
  model: string,
  test: Dataset,
): Promise<{ accuracy: number; version: number; logits: number[][] }> {
  let correct = 0;
  let version = 0;
  const logits: number[][] = [];
  for (let i = 0; i < test.n; i += 128) {
    const to = Math.min(test.n, i + 128);
    const res = await client.predict(model, test.x.subarray(i * 784, to * 784), { features: 784 });
    version = res.version;
    res.outputs.forEach((row, k) => {
      logits.push(row);
      let best = 0;
      for (let c = 1; c < row.length; c++) if (row[c]! > row[best]!) best = c;
      if (best === test.y[i + k]) correct++;
    });
  }
  return { accuracy: correct / test.n, version, logits };
}

/** Runs the served version's ONNX (downloaded from the edge) in onnxruntime-node and compares with the served logits. */
async function compareWithOrt(
  baseUrl: string,
  apiKey: string,
  model: string,
  version: number,
  test: Dataset,
  served: number[][],
) {
  const res = await fetch(`${baseUrl}/v1/models/${model}/versions/${version}/model.onnx`, {
    headers: { authorization: `Bearer ${apiKey}` },
  });
  if (!res.ok) throw new Error(`download of ${model} v${version} failed: ${res.status}`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const session = await ort.InferenceSession.create(bytes, {
    extra: { session: { qdq_matmulnbits_accuracy_level: "1" } },
  } as ort.InferenceSession.SessionOptions);
  const out = await session.run({ input: new ort.Tensor("float32", test.x, [test.n, 784]) });
  const logits = out.logits!.data as Float32Array;
  let agree = 0;
  let maxDiff = 0;
  for (let i = 0; i < test.n; i++) {
    let a = 0;
    let b = 0;
    for (let c = 0; c < 10; c++) {
      const l = logits[i * 10 + c]!;
      maxDiff = Math.max(maxDiff, Math.abs(l - served[i]![c]!));
      if (l > logits[i * 10 + a]!) a = c;
      if (served[i]![c]! > served[i]![b]!) b = c;
    }
    if (a === b) agree++;
  }
  await session.release();
  const { createHash } = await import("node:crypto");
  return {
    version,
    samples: test.n,
    argmaxAgreement: agree / test.n,
    maxAbsLogitDiff: maxDiff,
    sha256: createHash("sha256").update(bytes).digest("hex"),
  };
}

interface RunContext {
  edge: LocalEdge;
  admin: EdgeAdminClient;
  /** The operator (admin token): sets the DP population's privacy budget on the edge. */
  operator: EdgeAdminClient;
  signingKey: SigningKey;
  apiKey: string;
  evaluator: FedgeClient;
  fleet: Fleet;
  backend: Backend;
  test: Dataset;
  initial: MlpParams;
  log: (line: string) => void;
}

async function runPopulation(
  ctx: RunContext,
  o: Required<Omit<DemoOptions, "log" | "backend" | "outDir" | "port">>,
  dp: boolean,
): Promise<RunRecord> {
  const t0 = performance.now();
  const population = dp ? "mnist-dp" : "mnist-nodp";
  const label = dp ? "private (DP-FedAvg, central)" : "non-private baseline";
  const q = o.samplingRate;
  const expected = q * o.clients;
  const z = dp
    ? getNoiseMultiplier({ targetEpsilon: o.epsilon, targetDelta: o.delta, sampleRate: q, steps: o.rounds })
        .noiseMultiplier
    : null;
  const input: PopulationConfigInput = {
    model: population,
    privacy: dp
      ? { mode: "central", noiseMultiplier: z!, accountant: "rdp", budget: { epsilon: o.epsilon, delta: o.delta } }
      : { mode: "none" },
    samplingRate: q,
    expectedClients: expected,
    trainable: "head",
    clipping: dp
      ? {
          clipNorm: 1,
          adaptive: {
            targetQuantile: o.clipQuantile,
            learningRate: 0.05,
            countNoiseStd: Math.max(expected / 20, z!),
          },
        }
      : { clipNorm: 1 },
    // Tuned in process over 12 rounds (see PRETRAIN): a large server step with light momentum learns the zero head
    // fastest; Adam/Yogi and μ = 0.8–0.9 were within noise or behind.
    optimizer: { kind: "fedavgm", lr: o.serverLearningRate, momentum: o.serverMomentum },
    client: { ...CLIENT_TASK },
    // DP noise makes single rounds wobble; the gate still refuses a real regression.
    publish: { maxAccuracyDrop: 0.05 },
  };
  const config = parsePopulationConfig(input);
  // The edge charges every round to the population's budget and refuses the one that would pass it.
  if (dp) await ctx.operator.setPrivacyBudget(population, { epsilon: o.epsilon, delta: o.delta, accountant: "rdp" });
  const engine = await RoundEngine.create({
    config,
    backend: ctx.backend,
    initialModel: ctx.initial,
    log: () => undefined,
  });
  try {
    // Seed the registry: version 1 is the initial int8 model (public features, zero head).
    const seed = await exportModel({
      model: engine.model,
      name: population,
      version: 1,
      backend: ctx.backend,
      signingKey: ctx.signingKey,
    });
    await ctx.admin.uploadModelVersion(seed.manifest, seed.onnx, true);
    const first = await servedAccuracy(ctx.evaluator, population, ctx.test);
    ctx.log(
      `[${label}] seeded ${population} v1 (int8, ${seed.onnx.length} bytes): served accuracy ${(first.accuracy * 100).toFixed(2)}%` +
        (z ? `; z = ${z.toFixed(3)} for ε ≤ ${o.epsilon} over ${o.rounds} rounds at q = ${q}` : ""),
    );
    const rec: RunRecord = {
      label,
      population,
      dp,
      noiseMultiplier: z,
      initialServedAccuracy: first.accuracy,
      initialVersion: first.version,
      rounds: [],
      refusals: { bad_signature: {}, replay: {}, nan: {}, oversize: {}, dropout: {} },
      misbehavingSelected: { bad_signature: 0, replay: 0, nan: 0, oversize: 0, dropout: 0 },
      notRefused: 0,
      honestErrors: {},
      epsilonCheck: null,
      ortCheck: null,
      seconds: 0,
    };
    let fleetResult: Awaited<ReturnType<Fleet["runRound"]>> | undefined;
    // One runner per population, its state in memory (the demo never resumes); the fleet runs while a round is open.
    const runner = new EdgeRoundRunner({
      engine,
      admin: ctx.admin,
      signingKey: ctx.signingKey,
      state: edgeRunnerStateOf(config, 1),
      heldOut: ctx.test,
      collect: async () => {
        fleetResult = await ctx.fleet.runRound(population);
      },
      log: () => undefined,
    });
    let lastServed = first;
    for (let r = 1; r <= o.rounds; r++) {
      const t = performance.now();
      fleetResult = undefined;
      const res = await runner.runRound();
      const f = fleetResult!;
      for (const k of MISBEHAVIOURS) {
        rec.misbehavingSelected[k] += f.misbehaving[k];
        for (const [a, c] of Object.entries(f.refusals[k])) rec.refusals[k][a] = (rec.refusals[k][a] ?? 0) + c;
      }
      rec.notRefused += f.notRefused.length;
      for (const [c, n] of Object.entries(f.errors)) rec.honestErrors[c] = (rec.honestErrors[c] ?? 0) + n;
      lastServed = await servedAccuracy(ctx.evaluator, population, ctx.test);
      const rejected = MISBEHAVIOURS.filter((k) => k !== "dropout").reduce(
        (s, k) => s + f.misbehaving[k as Misbehaviour],
        0,
      );
      const round: RoundRecord = {
        round: r,
        roundId: res.roundId,
        checkedIn: res.checkedIn,
        selected: res.selected,
        accepted: res.accepted,
        rejected,
        dropouts: f.misbehaving.dropout,
        honestAccepted: f.honestAccepted,
        retried: f.retried,
        queued: f.queued,
        aggregated: res.aggregated,
        clipNorm: dp ? res.clipNorm : null,
        noiseStd: res.noiseStd ?? 0,
        servedAccuracy: lastServed.accuracy,
        candidateAccuracy: res.accuracy ?? null,
        servedVersion: lastServed.version,
        promoted: res.outcome === "published",
        epsilon: res.epsilon,
        seconds: (performance.now() - t) / 1000,
        fleetSeconds: f.seconds,
      };
      if (res.outcome === "abandoned") ctx.log(`[${label}] ${res.roundId} abandoned: ${res.reason}`);
      if (res.refusedUpdates.length > 0)
        ctx.log(
          `[${label}] aggregator refused ${res.refusedUpdates.length} streamed updates: ${JSON.stringify(res.refusedUpdates.slice(0, 3))}`,
        );
      rec.rounds.push(round);
      ctx.log(progressLine(dp ? "DP" : "no-DP", round, o.rounds));
    }
    const ledger = engine.checkpoint.ledger;
    const spent = engine.privacySpent();
    if (ledger && spent) {
      // Independent recomputation: a fresh accountant fed the ledger's recorded (q, z) of every round.
      const acc = createAccountant(ledger.accountant);
      for (const lr of PrivacyLedger.fromJSON(ledger).rounds)
        acc.step({ noiseMultiplier: lr.noiseMultiplier, sampleRate: lr.sampleRate });
      rec.epsilonCheck = { recomputed: acc.getEpsilon(o.delta), engine: spent.epsilon };
    }
    rec.ortCheck = await compareWithOrt(
      ctx.edge.url,
      ctx.apiKey,
      population,
      lastServed.version,
      ctx.test,
      lastServed.logits,
    );
    rec.seconds = (performance.now() - t0) / 1000;
    return rec;
  } finally {
    engine.dispose();
  }
}

/** Runs the demo end to end (see the module header) and writes its outputs. */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const t0 = performance.now();
  const log = options.log ?? ((l: string) => console.log(l));
  const o = {
    clients: options.clients ?? 1000,
    rounds: options.rounds ?? 12,
    epsilon: options.epsilon ?? 4,
    delta: options.delta ?? 1e-5,
    dp: options.dp ?? true,
    baseline: options.baseline ?? true,
    samplingRate: options.samplingRate ?? 0.3,
    serverLearningRate: options.serverLearningRate ?? 4,
    serverMomentum: options.serverMomentum ?? 0.5,
    clipQuantile: options.clipQuantile ?? 0.3,
    publicSamples: options.publicSamples ?? 2000,
    labelsPerClient: options.labelsPerClient ?? 2,
    misbehavingPerKind: options.misbehavingPerKind ?? 5,
    concurrency: options.concurrency ?? 24,
    pretrainEpochs: options.pretrainEpochs ?? 5,
    seed: options.seed ?? 1,
  };
  const outDir = options.outDir ?? path.join(repoRoot, "demo-out");
  const startedAt = new Date().toISOString();
  const stateDir = path.join(outDir, "state", startedAt.replace(/[:.]/g, "-"));
  await mkdir(stateDir, { recursive: true });

  // Data: fixed split; public slice for the server, private shards for the devices, test never leaves the server.
  const { train, test } = loadMnist();
  if (o.publicSamples < 10 || o.publicSamples > train.n - o.clients)
    throw new RangeError(`publicSamples must be in [10, ${train.n - o.clients}]`);
  const pub = slice(train, 0, o.publicSamples);
  const priv = slice(train, o.publicSamples, train.n);
  const shards = shardNonIid(priv, {
    clients: o.clients,
    labelsPerClient: o.labelsPerClient,
    random: xoshiroRandomBytes(o.seed),
  });
  log(
    `data: ${train.n} train digits (${pub.n} public, ${priv.n} private across ${o.clients} devices, ${o.labelsPerClient} digits each), ${test.n} held-out test digits`,
  );
  let t = performance.now();
  const pre = await pretrainOnPublic(pub, o.pretrainEpochs, o.seed, test);
  log(
    `public pretraining of the features: ${((performance.now() - t) / 1000).toFixed(1)} s (full model ${(pre.accuracy * 100).toFixed(2)}% on test; head reset to zero)`,
  );

  const backend = await createBackend({ prefer: options.backend ?? "auto", log: () => undefined });
  const signingKey = generateSigningKey();
  const adminToken = `fa_${secret(32)}`;
  t = performance.now();
  const edge = await startLocalEdge({
    port: options.port ?? 8787,
    persistTo: stateDir,
    vars: {
      FEDGE_ADMIN_TOKEN: adminToken,
      FEDGE_DEV_API_KEY: `fk_dev_${secret(24)}`,
      FEDGE_AGGREGATOR_PUBLIC_KEY: toBase64Url(signingKey.publicKey),
    },
    readyTimeoutMs: 180_000,
  });
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
    await operator.setDeviceQuota(key.id, o.clients);
    const admin = new EdgeAdminClient({ baseUrl: edge.url, signingKey: signingKey.secretKey });
    const fleet = new Fleet({
      baseUrl: edge.url,
      apiKey: key.key,
      shards,
      misbehavingPerKind: o.misbehavingPerKind,
      concurrency: o.concurrency,
      // The demo app's own policy: it takes part in the non-private baseline too, and in a DP population up to the ε
      // the demo was asked for; every model it trains on must be signed by this run's aggregator.
      privacyPolicy: {
        allowedModes: o.dp && !o.baseline ? ["central"] : o.dp ? ["central", "none"] : ["none"],
        maxPopulationEpsilon: Math.max(10, o.epsilon),
        maxDelta: Math.max(1e-5, o.delta),
      },
      aggregatorPublicKey: signingKey.publicKey,
    });
    t = performance.now();
    await fleet.register();
    log(
      `fleet: ${o.clients} devices registered in ${((performance.now() - t) / 1000).toFixed(1)} s (${JSON.stringify(fleet.roles())})`,
    );
    const evaluator = new FedgeClient({ baseUrl: edge.url, apiKey: key.key, platform: "demo-evaluator" });
    const ctx: RunContext = {
      edge,
      admin,
      operator,
      signingKey,
      apiKey: key.key,
      evaluator,
      fleet,
      backend,
      test,
      initial: pre.model,
      log,
    };
    const runs: RunRecord[] = [];
    if (o.dp) runs.push(await runPopulation(ctx, o, true));
    if (!o.dp || o.baseline) runs.push(await runPopulation(ctx, o, false));

    const report: DemoReport = {
      startedAt,
      clients: o.clients,
      roundsPlanned: o.rounds,
      samplingRate: o.samplingRate,
      targetEpsilon: o.epsilon,
      delta: o.delta,
      backend: backend.kind,
      publicSamples: pub.n,
      privateSamples: priv.n,
      testSamples: test.n,
      labelsPerClient: o.labelsPerClient,
      pretrainAccuracy: pre.accuracy,
      pretrain:
        `×9 one-pixel shifts, ${o.pretrainEpochs} SGD epochs, batch ${PRETRAIN.batchSize}, learning rate per epoch ` +
        PRETRAIN.learningRates.slice(0, o.pretrainEpochs).join(", "),
      training:
        `FedAvgM on the aggregator (server learning rate ${o.serverLearningRate}, momentum ${o.serverMomentum}); each selected ` +
        `device trains the head for ${CLIENT_TASK.localEpochs} local epochs (batch ${CLIENT_TASK.batchSize}, learning rate ` +
        `${CLIENT_TASK.learningRate}); the private run clips adaptively to the ${o.clipQuantile} quantile of the update norms ` +
        `(from C = 1) and z is solved for ε ≤ ${o.epsilon} over ${o.rounds} rounds at q = ${o.samplingRate}.`,
      roles: fleet.roles(),
      runs,
      edgeUrl: edge.url,
      stateDir: path.relative(repoRoot, stateDir),
      seconds: (performance.now() - t0) / 1000,
      notes: [
        "Both runs go through the same edge, fleet and aggregator code; the baseline's rounds say privacy_mode none (no clip norm, no noise; the devices' privacy policy opts in to it) and the private run's devices report their clip bit for adaptive clipping.",
        "Accuracy is measured on the served int8 model through HTTP /predict (onnxruntime-web in workerd), on the held-out test digits.",
      ],
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
    return { report, files };
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await edge.stop();
    await backend.dispose();
  }
}
