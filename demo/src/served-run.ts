/**
 * @module
 * (b) of the demo: the private run through the real local edge: the fleet of `FedgeClient`s, the aggregator's
 * `EdgeRoundRunner` fine-tuning the whole public model, every round's model served int8 and measured through `/predict`,
 * ε read from the edge's ledger (`populationPrivacy`), two devices' own views. `demo.ts` starts the edge and calls it.
 */
import * as ort from "onnxruntime-node";
import { FedgeClient } from "@fedge/client";
import type { Backend } from "@fedge/gpu-node";
import type { MlpParams } from "@fedge/ml";
import { defaultShardCount, DEVICES_PER_SHARD } from "@fedge/protocol";
import { PrivacyLedger } from "@fedge/privacy";
import type { Dataset } from "fedge/data";
import { RoundEngine } from "fedge/round";
import { evaluateModel } from "fedge/evaluate";
import { exportModel, type SigningKey } from "fedge/export";
import { EdgeAdminClient, EdgeRoundRunner, edgeRunnerStateOf } from "fedge/edge";
import type { LocalEdge } from "@fedge/local-edge";
import { Fleet, type SimulatedDevice } from "./fleet.ts";
import { MISBEHAVIOURS } from "./misbehave.ts";
import { deviceEpsilon, populationPrivacy, recomputedEpsilon, type PopulationPrivacy } from "./privacy.ts";
import { progressLine, type DeviceView, type RoundRecord, type ServedRun } from "./report.ts";
import { populationConfig, type FederatedRecipe } from "./setting.ts";

/**
 * Exact per-round counts of the private population (check-ins, selections, uploads) and the checks on them. Kept in
 * memory for tests; never written to the report or summary.json, which publish no exact counts.
 */
export interface DemoAudit {
  rounds: {
    checkedIn: number;
    selected: number;
    accepted: number;
    honestAccepted: number;
    aggregated: number;
    offline: number;
    /**
     * Honest uploads still in a device's offline queue when the round closed (every retry failed with a retryable
     * error): reports the round lost, which shrink its signal against the noise (the denominator is fixed at q·N).
     */
    queued: number;
  }[];
  refusals: Record<string, Record<string, number>>;
  notRefused: number;
  honestErrors: Record<string, number>;
}

/**
 * The coordinator shards the demo's population runs on. The default rule (`defaultShardCount`: ⌈expected check-ins /
 * 50,000⌉) gives S = 1 for the demo's 1,000 devices, which would leave the sharded path unused; the demo sets S
 * explicitly to at least this, so every run goes the way a population past 50,000 devices does (open and close fanned
 * out to the shards, nonces issued per shard, the aggregator streaming from every shard). 4 is the S the shards bench
 * compares with one coordinator (`npm run bench -- shards`).
 */
export const DEMO_MIN_SHARDS = 4;

/** Mean bytes per accepted update of `roundId`, from the edge's update list (every page). */
async function meanUpdateBytes(admin: EdgeAdminClient, roundId: string): Promise<{ bytes: number; n: number }> {
  let bytes = 0;
  let n = 0;
  let after: number | null = 0;
  while (after !== null) {
    const page = await admin.listUpdates(roundId, after, 1000);
    for (const u of page.items) {
      bytes += u.byte_length;
      n++;
    }
    after = page.next_cursor === null ? null : Number(page.next_cursor);
  }
  return { bytes, n };
}

/** Served accuracy through `/predict` (batches of 128, the edge's cap) and the served logits. */
export async function servedAccuracy(
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

export interface EdgeContext {
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
  log: (line: string) => void;
}

/** A device's own view: the rounds it checked in for, its receipts, and its ε from @fedge/privacy. */
async function deviceView(
  d: SimulatedDevice,
  population: string,
  privacy: PopulationPrivacy,
  label: string,
): Promise<DeviceView> {
  const charged = deviceEpsilon({
    rounds: privacy.rounds,
    checkedIn: d.journal.map((j) => j.roundId),
    accountant: privacy.accountant,
    delta: privacy.delta,
  });
  // What the device states for itself: the SDK's own accounting over the edge's signed check-in receipts it verified.
  const own = (await d.client.privacy()).find((p) => p.model === population);
  const receipts = await d.client.privacyReceipts(population);
  return {
    label,
    device: d.index,
    roundsCharged: privacy.rounds.length,
    journal: d.journal.map((j) => ({
      roundId: j.roundId,
      selected: j.selected,
      receipt: j.receipt ? { sha256: j.receipt.sha256, receivedAt: j.receipt.received_at } : null,
    })),
    epsilon: charged.epsilon,
    delta: privacy.delta,
    checkinReceipts: receipts.map((r) => ({
      roundId: r.round_id,
      samplingRate: r.sampling_rate,
      noiseMultiplier: r.noise_multiplier,
    })),
    ownEpsilon: own ? { epsilon: own.epsilon, delta: own.delta, rounds: own.rounds, accountant: own.accountant } : null,
  };
}

/** (b): the private run through the edge, from the whole public model `initial`. */
export async function runServed(
  ctx: EdgeContext,
  o: { clients: number; epsilon: number; delta: number; recipe: FederatedRecipe },
  initial: MlpParams,
  audit: DemoAudit,
): Promise<ServedRun> {
  const t0 = performance.now();
  const population = "mnist-dp";
  const { config, noiseMultiplier } = populationConfig({
    name: population,
    clients: o.clients,
    epsilon: o.epsilon,
    delta: o.delta,
    recipe: o.recipe,
  });
  const z = noiseMultiplier!;
  const engine = await RoundEngine.create({
    config,
    backend: ctx.backend,
    initialModel: initial,
    log: () => undefined,
  });
  try {
    // Version 1 is the public-only model (a) of seed 1, int8: what the edge serves before any device takes part.
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
      `[private] served v1 = the public-only model (int8, ${seed.onnx.length} bytes): ${(first.accuracy * 100).toFixed(2)}% on the test digits; ` +
        `z = ${z.toFixed(3)} for ε ≤ ${o.epsilon} over ${o.recipe.rounds} rounds at q = ${o.recipe.samplingRate} (${o.recipe.accountant.toUpperCase()})`,
    );
    // The edge keeps the population's ledger: every round is charged to this budget, and one past it is refused.
    await ctx.operator.setPrivacyBudget(population, {
      epsilon: o.epsilon,
      delta: o.delta,
      accountant: o.recipe.accountant,
    });
    // S from the rule for the expected check-ins (every device checks in each round), but never fewer than
    // DEMO_MIN_SHARDS: the rule gives 1 below 50,000 devices (see DEMO_MIN_SHARDS).
    const ruled = defaultShardCount(o.clients);
    const sharding = await ctx.operator.setSharding(population, { shards: Math.max(DEMO_MIN_SHARDS, ruled) });
    const why =
      ruled >= DEMO_MIN_SHARDS
        ? `the default rule ⌈${o.clients} / ${DEVICES_PER_SHARD}⌉ for the expected check-ins`
        : `set explicitly: the default rule ⌈${o.clients} / ${DEVICES_PER_SHARD}⌉ gives ${ruled} for ${o.clients} devices, ` +
          `and the demo runs the sharded path a large population takes, on the S = ${DEMO_MIN_SHARDS} the shards bench measures`;
    ctx.log(`[private] ${population} runs on S = ${sharding.shards} coordinator shards (${why})`);
    const roundShards = new Set<number>();
    let uploadBytes = 0;
    let uploadCount = 0;
    let updateLength = 0;
    let fleetResult: Awaited<ReturnType<Fleet["runRound"]>> | undefined;
    const runner = new EdgeRoundRunner({
      engine,
      admin: ctx.admin,
      signingKey: ctx.signingKey,
      state: edgeRunnerStateOf(config, 1),
      collect: async () => {
        fleetResult = await ctx.fleet.runRound(population);
      },
      log: () => undefined,
    });
    const rounds: RoundRecord[] = [];
    let last = first;
    let privacy: PopulationPrivacy | undefined;
    for (let r = 1; r <= o.recipe.rounds; r++) {
      const t = performance.now();
      fleetResult = undefined;
      const res = await runner.runRound();
      const f = fleetResult!;
      for (const k of MISBEHAVIOURS)
        for (const [a, c] of Object.entries(f.refusals[k]))
          (audit.refusals[k] ??= {})[a] = (audit.refusals[k]![a] ?? 0) + c;
      audit.notRefused += f.notRefused.length;
      for (const [c, n] of Object.entries(f.errors)) audit.honestErrors[c] = (audit.honestErrors[c] ?? 0) + n;
      audit.rounds.push({
        checkedIn: res.checkedIn,
        selected: res.selected,
        accepted: res.accepted,
        honestAccepted: f.honestAccepted,
        aggregated: res.aggregated,
        offline: f.offline,
        queued: f.queued,
      });
      if (res.outcome === "abandoned") ctx.log(`[private] ${res.roundId} abandoned: ${res.reason}`);
      if (res.refusedUpdates.length > 0)
        ctx.log(`[private] the aggregator refused ${res.refusedUpdates.length} streamed updates`);
      // What the edge recorded for the round: the S it ran on, and the bytes it accepted.
      const status = await ctx.admin.roundStatus(res.roundId);
      roundShards.add(status.shards ?? 1);
      updateLength = status.params.update_length;
      const listed = await meanUpdateBytes(ctx.admin, res.roundId);
      uploadBytes += listed.bytes;
      uploadCount += listed.n;
      last = await servedAccuracy(ctx.evaluator, population, ctx.test);
      privacy = await populationPrivacy({ baseUrl: ctx.edge.url, population });
      const round: RoundRecord = {
        round: r,
        roundId: res.roundId,
        clipNorm: res.clipNorm,
        noiseStd: res.noiseStd ?? 0,
        servedAccuracy: last.accuracy,
        fp32Accuracy: evaluateModel(engine.model, ctx.test).accuracy,
        servedVersion: last.version,
        epsilon: privacy.epsilon,
        seconds: (performance.now() - t) / 1000,
        fleetSeconds: f.seconds,
      };
      rounds.push(round);
      ctx.log(progressLine(round, o.recipe.rounds));
    }
    // Two checks of the edge's ε: a fresh accountant fed the edge ledger's (q, z), and the aggregator's own ledger,
    // charged by the same rounds on the aggregator's side.
    const aggregatorEpsilon = PrivacyLedger.fromJSON(engine.checkpoint.ledger!).spent(o.delta);
    const ortCheck = await compareWithOrt(ctx.edge.url, ctx.apiKey, population, last.version, ctx.test, last.logits);
    // Two devices' own views: one that checked in every round, one that was away for some.
    const honest = ctx.fleet.devices.filter((d) => d.role === "honest");
    const always = honest.find((d) => d.journal.length === o.recipe.rounds && d.journal.some((j) => j.receipt));
    const sometimes = honest.find((d) => d.journal.length > 0 && d.journal.length < o.recipe.rounds);
    const devices = [
      ...(always ? [await deviceView(always, population, privacy!, "checked in every round")] : []),
      ...(sometimes ? [await deviceView(sometimes, population, privacy!, "away for some rounds")] : []),
    ];
    ctx.log(
      `[private] ε = ${privacy!.epsilon.toFixed(3)} (δ = ${o.delta.toExponential()}) from the edge's ledger; ` +
        devices
          .map(
            (d) =>
              `device #${d.device} (${d.label}): ${d.journal.length} of ${d.roundsCharged} rounds, ` +
              `${d.checkinReceipts.length} signed check-in receipts, ` +
              `its own ε = ${d.ownEpsilon ? d.ownEpsilon.epsilon.toFixed(3) : "none"} (SDK, RDP over its receipts)`,
          )
          .join("; "),
    );
    return {
      population,
      noiseMultiplier: z,
      initialServedAccuracy: first.accuracy,
      initialVersion: first.version,
      rounds,
      privacy: privacy!,
      epsilonCheck: {
        recomputed: recomputedEpsilon(privacy!),
        ledger: privacy!.epsilon,
        aggregator: aggregatorEpsilon,
      },
      ortCheck,
      devices,
      misbehavingRefused: audit.notRefused === 0,
      acceptedAreHonest: audit.rounds.every((r) => r.accepted === r.honestAccepted && r.aggregated === r.accepted),
      // One S for the whole run (it is set before the first round); a round recorded with another S would show here.
      coordination: { shards: roundShards.size === 1 ? [...roundShards][0]! : NaN, why },
      uploads: {
        dtype: config.updateDtype,
        updateLength,
        bytesPerUpdate: uploadCount > 0 ? uploadBytes / uploadCount : NaN,
      },
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    engine.dispose();
  }
}
