/**
 * @module
 * (e) of `npm run demo -- --privacy distributed`, served: central and distributed DP through the real local edge, side
 * by side, on the same devices, from the same public model, with the same recipe, fixed clip norm C and target ε.
 * Each mode has its own population and its own ledger on the edge: central (devices clip, int8-compress and upload;
 * the aggregator adds the Gaussian to their sum) and distributed (devices clip, rotate, round, add their share of the
 * discrete Gaussian of Kairouz, Liu & Steinke 2021, arXiv 2102.06387, and take part in SecAgg+ through the round's
 * `SecAggRound`; the aggregator reads only the modular sum). Every device is a real `FedgeClient` in this process
 * running `participate()`, with its privacy policy; the aggregator is `EdgeRoundRunner`, which in distributed mode
 * follows the stages' deadlines and closes each early once every device still in the round answered it.
 *
 * In a checked-in cohort (the population's `privacy.distributed.cohort`), every device that checks in takes part in
 * the distributed round: the ones the coin selected with their update, the others (`noise-only`) with a zero update
 * and their noise share; the edge admits at most the runner's n_max.
 *
 * Measured per mode: the served model's accuracy on the test digits (int8, through `/predict`), ε from the edge's
 * ledger, the bytes a device moves for its contribution (central: its signed upload; distributed: every SecAgg+
 * message it sends and receives, from the SDK's own count, noise-only devices included), the device CPU per round
 * (this process's main-thread CPU while the devices ran the round, divided by the devices that took part: the devices
 * are simulated here, so that is their work plus their HTTP client's), and the round time (the runner's whole round).
 */
import {
  FedgeClient,
  SecureAggregationError,
  memoryStorage,
  type ParticipateResult,
  type PrivacyPolicy,
} from "@fedge/client";
import type { Backend } from "@fedge/gpu-node";
import { trainableLength, type MlpParams } from "@fedge/ml";
import type { Dataset } from "fedge/data";
import { RoundEngine } from "fedge/round";
import { exportModel, type SigningKey } from "fedge/export";
import { EdgeRoundRunner, edgeRunnerStateOf, type EdgeAdminClient } from "fedge/edge";
import type { ServedModeRun } from "./mode-comparison.ts";
import { mapPool } from "./pool.ts";
import { populationPrivacy } from "./privacy.ts";
import { servedAccuracy } from "./served-run.ts";
import { populationConfig, type FederatedRecipe } from "./setting.ts";

/** What the served comparison needs of the running demo. */
export interface ServedModesContext {
  baseUrl: string;
  /** The aggregator (signing key): opens rounds, reads sums and updates, uploads versions. */
  admin: EdgeAdminClient;
  /** The operator (admin token): budgets and the comparison's API key. */
  operator: EdgeAdminClient;
  signingKey: SigningKey;
  backend: Backend;
  /** Reads the served model through `/predict`. */
  evaluator: FedgeClient;
  test: Dataset;
  log: (line: string) => void;
}

/** Options of {@link runServedModes}. */
export interface ServedModesOptions {
  /** One shard per device of the comparison (the first shards of the demo's partition). */
  shards: Dataset[];
  /** The recipe with its clip norm fixed (distributed mode cannot adapt it). */
  recipe: FederatedRecipe;
  epsilon: number;
  delta: number;
  /** Devices' privacy policy (the demo app's own, with `distributed` allowed). */
  privacyPolicy: PrivacyPolicy;
  /** The model of round 0 (seed 1's public-only model). */
  initial: MlpParams;
  /** Devices' requests in flight in central mode (a distributed device stays in flight through the stages). @default 24 */
  concurrency?: number;
}

/** Both modes served, central first. */
export async function runServedModes(ctx: ServedModesContext, o: ServedModesOptions): Promise<ServedModeRun[]> {
  if (o.recipe.clip.adaptive)
    throw new RangeError("the served comparison needs a fixed clip norm (recipe.clip.adaptive false)");
  const key = await ctx.operator.createApiKey("fedge demo: central vs distributed", 1_000_000);
  const devices = o.shards.map(
    () =>
      new FedgeClient({
        baseUrl: ctx.baseUrl,
        apiKey: key.key,
        storage: memoryStorage(),
        platform: "demo-node",
        privacyPolicy: o.privacyPolicy,
        aggregatorPublicKey: ctx.signingKey.publicKey,
      }),
  );
  await mapPool(devices, o.concurrency ?? 24, (d) => d.register());
  const out: ServedModeRun[] = [];
  for (const privacy of ["central", "distributed"] as const) {
    out.push(await runMode(ctx, o, privacy, devices));
  }
  return out;
}

async function runMode(
  ctx: ServedModesContext,
  o: ServedModesOptions,
  privacy: "central" | "distributed",
  devices: FedgeClient[],
): Promise<ServedModeRun> {
  const population = `mnist-${privacy}-fixed-c`;
  const { config, noiseMultiplier } = populationConfig({
    name: population,
    clients: devices.length,
    epsilon: o.epsilon,
    delta: o.delta,
    recipe: o.recipe,
    privacy,
    updateLength: trainableLength(o.initial, o.recipe.trainable),
  });
  const engine = await RoundEngine.create({
    config,
    backend: ctx.backend,
    initialModel: o.initial,
    log: () => undefined,
  });
  try {
    const v1 = await exportModel({
      model: engine.model,
      name: population,
      version: 1,
      backend: ctx.backend,
      signingKey: ctx.signingKey,
    });
    await ctx.admin.uploadModelVersion(v1.manifest, v1.onnx, true);
    await ctx.operator.setPrivacyBudget(population, {
      epsilon: o.epsilon,
      delta: o.delta,
      accountant: o.recipe.accountant,
    });
    let bytes = 0;
    let reports = 0;
    let cpuMicros = 0;
    // A checked-in cohort: devices the coin left out take part with a zero update and their noise share.
    let noiseOnly = 0;
    let last: (ParticipateResult | undefined)[] = [];
    let failures: Record<string, number> = {};
    const runner = new EdgeRoundRunner({
      engine,
      admin: ctx.admin,
      signingKey: ctx.signingKey,
      state: edgeRunnerStateOf(config, 1),
      // Distributed: advertising ends with collecting at the latest; every later stage has 30 s, and closes as soon
      // as every device still in it answered (the fleet is known, so advertise closes once all checked in).
      durationS: 60,
      secureAggregationStageS: { "share-keys": 30, "masked-input": 30, consistency: 30, unmask: 30 },
      secureAggregation: { pollMs: 100, expectedCheckIns: devices.length },
      collect: async () => {
        const cpu = process.threadCpuUsage();
        // A distributed device stays in flight through every stage: all of them at once, or the stages would wait
        // on devices that have not checked in yet.
        const limit = privacy === "distributed" ? devices.length : (o.concurrency ?? 24);
        failures = {};
        last = await mapPool(devices, limit, async (d, i) => {
          try {
            return await d.participate({
              model: population,
              data: o.shards[i]!.x,
              labels: o.shards[i]!.y,
              secureAggregation: { pollMs: 250 },
            });
          } catch (e) {
            // A round that aborts (too few devices for its threshold) ends every device's part with an error.
            const why = e instanceof SecureAggregationError ? `secure aggregation ${e.reason}` : errorCode(e);
            failures[why] = (failures[why] ?? 0) + 1;
            return undefined;
          }
        });
        const used = process.threadCpuUsage(cpu);
        cpuMicros += used.user + used.system;
        noiseOnly = 0;
        for (const r of last) {
          if (!r?.selected) continue;
          if (r.status === "aggregated") {
            bytes += r.stats.bytesSent + r.stats.bytesReceived;
            if (r.stats.input === "noise-only") noiseOnly++;
          } else if (r.stats) bytes += r.stats.bytes;
          reports++;
        }
      },
      log: () => undefined,
    });
    const rounds: ServedModeRun["rounds"] = [];
    for (let r = 1; r <= o.recipe.rounds; r++) {
      const t = performance.now();
      const res = await runner.runRound();
      const seconds = (performance.now() - t) / 1000;
      rounds.push({
        roundId: res.roundId,
        // devices whose update the coin asked for (a checked-in cohort's noise-only devices are not among them)
        selected:
          last.filter((x) => x?.selected).length - noiseOnly + Object.values(failures).reduce((a, n) => a + n, 0),
        aggregated: res.aggregated,
        outcome: res.outcome,
        seconds,
      });
      ctx.log(
        `[${privacy}, served] round ${r}/${o.recipe.rounds}: ${res.aggregated} inputs aggregated` +
          (noiseOnly > 0 ? ` (${noiseOnly} noise-only)` : "") +
          `, ${res.outcome}` +
          `${res.outcome === "abandoned" ? ` (${res.reason})` : ""}, ${seconds.toFixed(1)} s` +
          (Object.keys(failures).length > 0 ? `; devices' errors: ${JSON.stringify(failures)}` : ""),
      );
    }
    const served = await servedAccuracy(ctx.evaluator, population, ctx.test);
    const ledger = await populationPrivacy({ baseUrl: ctx.baseUrl, population });
    return {
      privacy,
      seed: 1,
      population,
      devices: devices.length,
      epsilon: ledger.epsilon,
      noiseMultiplier,
      final: served.accuracy,
      uploadBytesPerUpdate: reports > 0 ? bytes / reports : NaN,
      deviceSecondsPerUpdate: reports > 0 ? cpuMicros / 1e6 / reports : NaN,
      roundSeconds: rounds.reduce((a, r) => a + r.seconds, 0) / rounds.length,
      rounds,
    };
  } finally {
    engine.dispose();
  }
}

function errorCode(e: unknown): string {
  return (e as { code?: string }).code ?? (e as Error).name ?? "error";
}
