/**
 * @module
 * `fedge simulate`: the aggregator's round pipeline (round engine → strategy → Backend → optimizer → evaluation →
 * publish gate [→ export]) in one process with N simulated clients and no HTTP. Per round: a CSPRNG Poisson coin
 * per client, each sampled client's update generated/trained on the fly and streamed into the Backend in batches,
 * then dropped, so memory is O(model size) (plus O(N) for the coins' ids of a round), never O(clients × model).
 *
 * Every simulated client runs the device's own code path (@fedge/ml `trainDeviceUpdate` / `privatizeUpdate`, what the
 * SDK's `participate()` runs) on the task the edge would relay (`taskPrivacyFields`): train (mnist) or generate
 * (synthetic) Δ, the clip bit from the unclipped norm when the round asks for it, clip to C on the device, local noise
 * in local mode, and int8 quantization when the population uploads int8 (`updateDtype`, the default; @fedge/ml
 * `compressUpdate`), dequantized as the aggregator dequantizes what it pulls from the edge. The aggregator then sees
 * what it sees from the edge, minus the encoding and signature (tested with the codec), so adaptive clipping here
 * tracks the quantile the way it does through the edge, and the accuracy reported is that of compressed uploads.
 *
 * Distributed rounds whose task states a checked-in cohort (`cohort: "checked-in"`): every simulated device checks in
 * and inputs to the modular sum, the coin-selected ones their trained, encoded Δ, the others a zero update through the
 * same encoder (their noise share alone: the `noise-only` input of a check-in). The strategy divides by the same
 * fixed q·N as central mode.
 */
import { writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Backend } from "@fedge/gpu-node";
import { cryptoRandomBytes, PrivacyBudgetExceededError, type RandomBytes } from "@fedge/privacy";
import { flattenTrainable, type MlpParams } from "@fedge/ml";
import {
  compressUpdate,
  encodeDistributedDeviceUpdate,
  initMlp,
  privatizeUpdate,
  trainDeviceDelta,
  trainDeviceUpdate,
  xoshiroRandomBytes,
  type DistributedDeviceTask,
  type PrivatizeResult,
} from "@fedge/ml";
import { encodedUpdateLength, updateToFloat32 } from "@fedge/protocol";
import type { PopulationConfig } from "../config.ts";
import type { CheckpointStore } from "../checkpoint.ts";
import { RoundEngine } from "../round.ts";
import { evaluateModel, publishGate, type EvalSet, type Evaluation } from "../evaluate.ts";
import { exportModel, type SigningKey } from "../export.ts";
import { loadMnist, type Dataset } from "../data/mnist.ts";
import { shardNonIid } from "../data/shard.ts";
import { taskPrivacyFields } from "../edge/round-task.ts";
import { BufferPool, SyntheticClients, checkedInCohort, poissonSample, streamClientUpdates } from "./clients.ts";
import type { CanarySet } from "../audit/canaries.ts";

/** Options of {@link runSimulation}. */
export interface SimulateOptions {
  /** Population config; `samplingRate` is q and `expectedClients` should be q·clients. */
  config: PopulationConfig;
  backend: Backend;
  /** Population size N. */
  clients: number;
  /** Rounds to run (from the checkpoint's round, if resuming). */
  rounds: number;
  /** `synthetic` (update = f(client, round)) or `mnist` (real local training). */
  mode: "synthetic" | "mnist";
  /** synthetic: parameters per update (≥ 2). @default 100000 */
  params?: number;
  /** mnist: hidden layer widths. @default [] (softmax regression 784→10) */
  hidden?: number[];
  /** mnist: distinct digits per client (10 ≈ IID, 2 = pathological non-IID). @default 10 */
  labelsPerClient?: number;
  /**
   * mnist: the caller's own data instead of the MNIST split: one shard per client (`clients` must equal
   * `shards.length`) and the held-out set each round is evaluated on (e.g. the demo's devices and its test digits, or
   * a tuning split). `hidden` and `labelsPerClient` are then unused.
   * @default the MNIST train split sharded by `labelsPerClient`, evaluated on the test split
   */
  data?: { shards: Dataset[]; heldOut: EvalSet };
  /**
   * Which rounds are evaluated on the held-out set (and gated by it): every round, or only the last of `rounds` (a
   * caller that wants the final accuracy only saves one evaluation a round; rounds not evaluated are published).
   * @default "every-round"
   */
  evaluate?: "every-round" | "last-round";
  /**
   * mnist: the model of round 0 (e.g. one pretrained on public data).
   * @default a fresh `initMlp([784, ...hidden, 10])` from `seed + 1`
   */
  initialModel?: MlpParams;
  /**
   * Seed of the simulated data and model init (NOT of privacy noise or sampling, which use `random`).
   * @default a CSPRNG draw
   */
  seed?: number;
  /**
   * CSPRNG for sampling coins and server noise (tests may inject a seeded stream).
   * @default cryptoRandomBytes
   */
  random?: RandomBytes;
  /**
   * CSPRNG of the simulated devices (local noise, stochastic rounding of int8 uploads), a separate stream so that a
   * comparison of upload dtypes can keep the server's coins and noise identical.
   * @default random
   */
  deviceRandom?: RandomBytes;
  /** Checkpoint store (resume support); @default in memory */
  store?: CheckpointStore;
  /** Export each published version (int8 ONNX + signed manifest) into this folder (needs `signingKey`). */
  exportDir?: string;
  signingKey?: SigningKey;
  /** Called with each round's report and the model it produced. */
  onRound?: (report: SimRoundReport, model: MlpParams) => void;
  /** Warnings sink. @default console.warn */
  log?: (message: string) => void;
  /**
   * Canary clients of a privacy audit (`audit/`), added to the population as clients `clients … clients + k − 1`:
   * each is sampled by the same Poisson coin and reports its direction scaled to the round's clip norm through the
   * same device pipeline (`privatizeUpdate`). In mode `none` (no clip norm) they scale to `clipping.clipNorm`.
   * @default none
   */
  canaries?: CanarySet;
}

export interface SimRoundReport {
  round: number;
  roundId: string;
  /** Devices the coin selected (they trained). */
  sampled: number;
  /** Distributed, checked-in cohort: devices that input a zero update and their noise share (0 otherwise). */
  noiseOnly: number;
  /** Inputs the aggregate holds (sampled devices, plus the noise-only inputs of a checked-in cohort). */
  count: number;
  /** Updates with ‖Δ‖ ≤ C: with adaptive clipping, the devices' reported clip bits (Σ b_i). */
  unclippedCount: number;
  /** Updates the devices clipped before upload (‖Δ‖ > C on the device). */
  deviceClipped: number;
  clipNorm: number | null;
  nextClipNorm: number;
  noiseStd: number;
  epsilon: number | null;
  delta: number | null;
  /** mnist: held-out accuracy/loss of the new model. */
  accuracy?: number;
  loss?: number;
  /** synthetic: ‖w − θ*‖ / ‖θ*‖. */
  distance?: number;
  published: boolean;
  publishReason: string;
  seconds: number;
  updatesPerSecond: number;
  /** Update bytes streamed into the Backend per second. */
  bytesPerSecond: number;
  /** Mean size of one signed update as a device would upload it this round (`updateDtype`, ids of this round). */
  uploadBytesPerUpdate: number;
  /**
   * Mean seconds of one device's step this round, on this thread: train, clip and int8-compress (central, local), or
   * train and encode for secure aggregation (distributed); the aggregator's dequantization is not counted.
   */
  deviceSecondsPerUpdate: number;
  /** Mean seconds of one noise-only input (a zero update encoded with its share); 0 without such inputs. */
  deviceSecondsPerNoiseOnly: number;
  rssBytes: number;
  warnings: string[];
}

export interface SimSummary {
  mode: "synthetic" | "mnist";
  clients: number;
  params: number;
  roundsRun: number;
  totalUpdates: number;
  seconds: number;
  updatesPerSecond: number;
  bytesPerSecond: number;
  /** Largest RSS seen (sampled every 64 updates and after each round). */
  peakRssBytes: number;
  /** What the simulated devices uploaded (`updateDtype`). */
  updateDtype: "float32" | "int8";
  /** Mean size of one signed update as uploaded (0 when no update was sent). */
  uploadBytesPerUpdate: number;
  /** Update buffers the simulator ever allocated (≈ the engine's batch size: memory O(batch × model)). */
  updateBuffers: number;
  finalAccuracy?: number;
  finalDistance?: number;
  epsilon: number | null;
  delta: number | null;
  /**
   * A DP population's ε at δ against the edge, which sees who takes part (`RoundEngine.privacySpentAgainstEdge`);
   * null when a central round gives no bound against it. Absent without DP.
   */
  epsilonAgainstEdge?: number | null;
  stoppedBy?: string;
  backend: string;
}

function randomSeed(): number {
  const w = new Uint32Array(1);
  crypto.getRandomValues(w);
  return w[0]!;
}

/** A one-layer "model" with exactly `params` trainable values ((params−1) inputs, 1 output, + 1 bias). */
export function syntheticModel(params: number): MlpParams {
  if (!Number.isInteger(params) || params < 2) throw new RangeError(`params must be an integer >= 2, got ${params}`);
  return {
    layers: [
      {
        inFeatures: params - 1,
        outFeatures: 1,
        weight: new Float32Array(params - 1),
        bias: new Float32Array(1),
        activation: "none",
      },
    ],
  };
}

/** Runs the simulation (see the module header); returns the summary. Stops early when the privacy budget is spent. */
export async function runSimulation(o: SimulateOptions): Promise<SimSummary> {
  const { config, backend } = o;
  if (!Number.isSafeInteger(o.clients) || o.clients < 1)
    throw new RangeError(`clients must be an integer >= 1, got ${o.clients}`);
  if (!Number.isSafeInteger(o.rounds) || o.rounds < 0)
    throw new RangeError(`rounds must be an integer >= 0, got ${o.rounds}`);
  const seed = (o.seed ?? randomSeed()) >>> 0;
  const random = o.random ?? cryptoRandomBytes;
  const deviceRandom = o.deviceRandom ?? random;
  const log = o.log ?? ((m: string) => console.warn(m));

  let initialModel: MlpParams;
  let heldOut: EvalSet | undefined;
  let shards: Dataset[] = [];
  let synthetic: SyntheticClients | undefined;
  if (o.mode === "synthetic") {
    initialModel = syntheticModel(o.params ?? 100_000);
  } else if (o.data) {
    if (o.data.shards.length !== o.clients)
      throw new RangeError(`data.shards holds ${o.data.shards.length} shards for ${o.clients} clients`);
    heldOut = o.data.heldOut;
    shards = o.data.shards;
    initialModel = o.initialModel ?? initMlp([784, ...(o.hidden ?? []), 10], { random: xoshiroRandomBytes(seed + 1) });
  } else {
    const { train, test } = loadMnist();
    heldOut = test;
    shards = shardNonIid(train, {
      clients: o.clients,
      labelsPerClient: o.labelsPerClient ?? 10,
      random: xoshiroRandomBytes(seed),
    });
    initialModel = o.initialModel ?? initMlp([784, ...(o.hidden ?? []), 10], { random: xoshiroRandomBytes(seed + 1) });
  }
  const engine = await RoundEngine.create({
    config,
    backend,
    initialModel,
    random,
    log,
    ...(o.store ? { store: o.store } : {}),
  });
  const length = engine.updateLength;
  if (o.canaries && o.canaries.length !== length)
    throw new RangeError(`canaries have ${o.canaries.length} values, the model ${length}`);
  const population = o.clients + (o.canaries?.count ?? 0);
  if (o.mode === "synthetic") synthetic = new SyntheticClients({ length, seed });
  const pool = new BufferPool(length);
  const scope = config.trainable;
  const t0 = performance.now();
  let totalUpdates = 0;
  let totalUploadBytes = 0;
  let peakRss = process.memoryUsage().rss;
  let roundsRun = 0;
  let stoppedBy: string | undefined;
  let last: SimRoundReport | undefined;
  let servingAccuracy = engine.checkpoint.serving?.accuracy;

  try {
    for (let r = 0; r < o.rounds; r++) {
      const round = engine.checkpoint.current?.round ?? engine.checkpoint.round + 1;
      const roundId = engine.checkpoint.current?.roundId ?? `sim-${round}`;
      let opened;
      try {
        opened = await engine.openRound(roundId);
      } catch (e) {
        if (e instanceof PrivacyBudgetExceededError) {
          stoppedBy = e.message;
          break;
        }
        throw e;
      }
      const start = performance.now();
      const global = engine.model;
      const weights = flattenTrainable(global, scope);
      synthetic?.beginRound(weights);
      // The device task the edge would relay for these instructions (privacy fields) and the population config.
      const task = {
        ...taskPrivacyFields(opened.instructions),
        local_epochs: config.client.localEpochs,
        batch_size: config.client.batchSize,
        learning_rate: config.client.learningRate,
        trainable: scope,
        update_dtype: config.updateDtype,
      };
      let streamed = 0;
      let noiseOnly = 0;
      let deviceClipped = 0;
      let roundUploadBytes = 0;
      let roundDeviceMs = 0;
      let roundNoiseOnlyMs = 0;
      const coins = poissonSample(population, config.samplingRate, random);
      // A checked-in cohort: every device inputs, the coins say whose update goes in.
      const cohort =
        task.privacy_mode === "distributed" && task.distributed?.cohort === "checked-in"
          ? checkedInCohort(population, coins)
          : undefined;
      const produce = (c: number, out: Float32Array): { clipFactor: number; encoded?: Uint32Array } => {
        const t = performance.now();
        if (cohort && !cohort.selected.has(c)) {
          // noise-only: a zero update through the device's encoder, i.e. its noise share (no training)
          out.fill(0);
          const e = encodeDistributedDeviceUpdate(out, task as DistributedDeviceTask, deviceRandom);
          noiseOnly++;
          roundNoiseOnlyMs += performance.now() - t;
          roundUploadBytes += e.encoded.byteLength;
          return { clipFactor: e.clipFactor, encoded: e.encoded };
        }
        // Distributed mode: the device's upload is its encoding for secure aggregation (4 bytes a coordinate).
        if (task.privacy_mode === "distributed") {
          const e = distributedDevice(c, out);
          roundDeviceMs += performance.now() - t;
          roundUploadBytes += e.encoded.byteLength;
          return e;
        }
        const r = device(c, out);
        if (r.clipFactor < 1) deviceClipped++;
        // What the device uploads (step 5 of the device pipeline), and what the aggregator dequantizes from it.
        const payload = compressUpdate(out, task, deviceRandom);
        roundDeviceMs += performance.now() - t;
        if (payload.dtype === "int8") out.set(updateToFloat32({ payload }));
        roundUploadBytes += encodedUpdateLength({
          roundId,
          deviceId: `sim-${c}`,
          shape: [length],
          dtype: payload.dtype,
        });
        return r;
      };
      const trainRandomOf = (c: number) =>
        xoshiroRandomBytes((seed ^ Math.imul(c + 1, 0x9e3779b1) ^ Math.imul(round, 0x85ebca6b)) >>> 0);
      // Distributed mode: the device trains (or generates) Δ, encodes it for secure aggregation and sends only that;
      // its Δ is wiped from the shared buffer so nothing but the encoding reaches the server's side.
      const distributedDevice = (c: number, out: Float32Array): { clipFactor: number; encoded: Uint32Array } => {
        if (synthetic) synthetic.update(c, round, out);
        else {
          const shard = shards[c]!;
          const d = trainDeviceDelta({
            params: global,
            task,
            data: shard.x,
            labels: shard.y,
            random: deviceRandom,
            trainRandom: trainRandomOf(c),
          });
          out.set(d.values);
        }
        const e = encodeDistributedDeviceUpdate(out, task as DistributedDeviceTask, deviceRandom);
        out.fill(0);
        return { clipFactor: e.clipFactor, encoded: e.encoded };
      };
      const device = (c: number, out: Float32Array): PrivatizeResult => {
        if (c >= o.clients) {
          o.canaries!.update(c - o.clients, task.clip_norm ?? config.clipping.clipNorm, out);
          return privatizeUpdate(out, task, deviceRandom);
        }
        if (synthetic) {
          synthetic.update(c, round, out);
          return privatizeUpdate(out, task, deviceRandom);
        }
        const shard = shards[c]!;
        const u = trainDeviceUpdate({
          params: global,
          task,
          data: shard.x,
          labels: shard.y,
          random: deviceRandom,
          trainRandom: trainRandomOf(c),
        });
        out.set(u.values);
        return u;
      };
      const updates = streamClientUpdates(cohort ? cohort.devices : coins, pool, produce, () => {
        // sample the RSS inside the round too (every 64 updates), not only between rounds
        if ((streamed++ & 63) === 0) peakRss = Math.max(peakRss, process.memoryUsage().rss);
      });
      const summary = await engine.aggregateRound(updates);
      const sampled = streamed - noiseOnly;
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      let evaluation: Evaluation | undefined;
      if (heldOut && (o.evaluate !== "last-round" || r === o.rounds - 1))
        evaluation = evaluateModel(engine.model, heldOut);
      const decision = publishGate({
        ...(evaluation ? { candidate: evaluation } : {}),
        ...(servingAccuracy !== undefined ? { servingAccuracy } : {}),
        maxAccuracyDrop: config.publish.maxAccuracyDrop,
      });
      const version = (engine.checkpoint.serving?.version ?? 0) + 1;
      let sha256: string | undefined;
      if (decision.publish && o.exportDir) {
        if (!o.signingKey) throw new RangeError("exportDir needs a signingKey");
        const spent = engine.privacySpent();
        const exported = await exportModel({
          model: engine.model,
          name: config.model,
          version,
          backend,
          signingKey: o.signingKey,
          ...(spent ? { privacy: spent } : {}),
        });
        await mkdir(o.exportDir, { recursive: true });
        await writeFile(join(o.exportDir, `${config.model}-v${version}.onnx`), exported.onnx);
        await writeFile(
          join(o.exportDir, `${config.model}-v${version}.manifest.json`),
          JSON.stringify(exported.manifest, null, 2) + "\n",
        );
        sha256 = exported.manifest.sha256;
      }
      await engine.completeRound({
        published: decision.publish,
        reason: decision.reason,
        ...(decision.publish ? { version } : {}),
        ...(evaluation ? { accuracy: evaluation.accuracy } : {}),
        ...(sha256 ? { sha256 } : {}),
      });
      if (decision.publish && evaluation) servingAccuracy = evaluation.accuracy;
      const seconds = (performance.now() - start) / 1000;
      totalUpdates += summary.count;
      totalUploadBytes += roundUploadBytes;
      roundsRun++;
      last = {
        round: summary.round,
        roundId: summary.roundId,
        sampled,
        noiseOnly,
        count: summary.count,
        unclippedCount: summary.unclippedCount,
        deviceClipped,
        clipNorm: summary.clipNorm,
        nextClipNorm: summary.nextClipNorm,
        noiseStd: summary.noiseStd,
        epsilon: summary.epsilon,
        delta: summary.delta,
        ...(evaluation ? { accuracy: evaluation.accuracy, loss: evaluation.loss } : {}),
        ...(synthetic ? { distance: synthetic.relativeDistance(flattenTrainable(engine.model, scope)) } : {}),
        published: decision.publish,
        publishReason: decision.reason,
        seconds,
        updatesPerSecond: summary.count / seconds,
        bytesPerSecond: (summary.count * length * 4) / seconds,
        uploadBytesPerUpdate: summary.count > 0 ? roundUploadBytes / summary.count : 0,
        deviceSecondsPerUpdate: sampled > 0 ? roundDeviceMs / 1000 / sampled : 0,
        deviceSecondsPerNoiseOnly: noiseOnly > 0 ? roundNoiseOnlyMs / 1000 / noiseOnly : 0,
        rssBytes: process.memoryUsage().rss,
        warnings: summary.warnings,
      };
      o.onRound?.(last, engine.model);
    }
  } finally {
    engine.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;
  const spent = engine.privacySpent();
  const againstEdge = engine.privacySpentAgainstEdge();
  return {
    mode: o.mode,
    clients: o.clients,
    params: length,
    roundsRun,
    totalUpdates,
    seconds,
    updatesPerSecond: totalUpdates / seconds,
    bytesPerSecond: (totalUpdates * length * 4) / seconds,
    peakRssBytes: peakRss,
    updateDtype: config.updateDtype,
    uploadBytesPerUpdate: totalUpdates > 0 ? totalUploadBytes / totalUpdates : 0,
    updateBuffers: pool.allocated,
    ...(last?.accuracy !== undefined ? { finalAccuracy: last.accuracy } : {}),
    ...(last?.distance !== undefined ? { finalDistance: last.distance } : {}),
    epsilon: spent?.epsilon ?? null,
    delta: spent?.delta ?? null,
    ...(againstEdge !== null ? { epsilonAgainstEdge: Number.isFinite(againstEdge) ? againstEdge : null } : {}),
    ...(stoppedBy ? { stoppedBy } : {}),
    backend: backend.kind,
  };
}
