/**
 * @module
 * `fedge simulate` at scale (aggregator/src/simulate): the whole round pipeline (CSPRNG Poisson coins, synthetic
 * client updates generated on the fly, streaming clip + accumulate + noise in the cpu Backend, FedAvg step) with
 * DP-FedAvg in central mode.
 *
 * - throughput: client updates/s and GB/s of update bytes for 10,000 clients × 100,000 params (q = 0.1, ≈1,000
 *   updates per round), against TypedArray.set memcpy of the same bytes measured in the same process;
 * - the round engine alone (updates ready in memory, as when they are pulled from the edge) against the same memcpy;
 * - memory: peak RSS growth during that run against the model size (streaming keeps it O(batch × model));
 * - scale: one round of 100,000 clients × 100,000 params with q = 0.01 (≈1,000 updates), seconds per round, and the
 *   seconds per update against the memcpy of one update.
 * (These runs upload float32, so they measure the aggregator, not the simulated devices' quantization.)
 * - compressed uploads: MNIST (784→32→10, 100 clients, q = 0.5, central z = 0.3, C = 5, 8 rounds) with int8 uploads
 *   (the default: stochastic rounding, norm bound kept after dequantization) against float32 uploads, the same data
 *   seeds and the same seeded noise source per pair, several seeds: upload bytes per update and final accuracy.
 */
import { createBackend, type Backend } from "@fedge/gpu-node";
import { seededRandomBytes } from "@fedge/privacy/testing";
import { parsePopulationConfig, RoundEngine, runSimulation } from "fedge";
import { measure, type BenchMeasure } from "../types.ts";

const PARAMS = 100_000;

/**
 * memcpy GB/s: TypedArray.set of `count` updates of PARAMS floats, read round-robin from 64 distinct sources
 * (25.6 MB, more than the caches hold, like freshly streamed updates) into one destination.
 */
function memcpyGbps(count: number): number {
  const src = Array.from({ length: 64 }, (_, k) => new Float32Array(PARAMS).fill(k));
  const dst = new Float32Array(PARAMS);
  for (let i = 0; i < 200; i++) dst.set(src[i % 64]!); // warm up
  const t0 = performance.now();
  for (let i = 0; i < count; i++) dst.set(src[i % 64]!);
  const s = (performance.now() - t0) / 1000;
  return (count * PARAMS * 4) / s / 1e9;
}

/** The round engine alone (no update generation): `count` updates from 64 pre-made buffers, DP-FedAvg central. */
async function engineOnlyGbps(backend: Backend, count: number): Promise<number> {
  const src = Array.from({ length: 64 }, (_, k) => {
    const u = new Float32Array(PARAMS);
    for (let i = 0; i < PARAMS; i++) u[i] = Math.sin(i * 0.001 + k);
    return u;
  });
  const model = {
    layers: [
      {
        inFeatures: PARAMS - 1,
        outFeatures: 1,
        weight: new Float32Array(PARAMS - 1),
        bias: new Float32Array(1),
        activation: "none" as const,
      },
    ],
  };
  const engine = await RoundEngine.create({
    config: config(count * 10, 0.1),
    backend,
    initialModel: model,
    log: () => {},
  });
  try {
    await engine.openRound("bench");
    const t0 = performance.now();
    await engine.aggregateRound(
      (function* () {
        for (let i = 0; i < count; i++) yield { delta: src[i % 64]! };
      })(),
    );
    const s = (performance.now() - t0) / 1000;
    return (count * PARAMS * 4) / s / 1e9;
  } finally {
    engine.dispose();
  }
}

function config(clients: number, q: number) {
  return parsePopulationConfig({
    model: "bench",
    privacy: { mode: "central", noiseMultiplier: 1, budget: { epsilon: 1e6, delta: 1e-5 } },
    samplingRate: q,
    expectedClients: q * clients,
    clipping: { clipNorm: 100 },
    batchSize: 16,
    updateDtype: "float32",
  });
}

const ACCURACY_SEEDS = [1, 2, 3, 4];

/** Final MNIST accuracy and upload bytes per update of the compressed-upload comparison, one seed. */
async function mnistRun(backend: Backend, updateDtype: "float32" | "int8", seed: number) {
  const s = await runSimulation({
    config: parsePopulationConfig({
      model: "digits",
      privacy: { mode: "central", noiseMultiplier: 0.3, budget: { epsilon: 1e3, delta: 1e-5 } },
      samplingRate: 0.5,
      expectedClients: 50,
      clipping: { clipNorm: 5 },
      client: { learningRate: 0.1, localEpochs: 1, batchSize: 32 },
      updateDtype,
    }),
    backend,
    clients: 100,
    rounds: 8,
    mode: "mnist",
    hidden: [32],
    seed,
    random: seededRandomBytes(1000 + seed),
    deviceRandom: seededRandomBytes(2000 + seed),
    log: () => {},
  });
  return { accuracy: s.finalAccuracy!, bytes: s.uploadBytesPerUpdate };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: number[]) => Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / Math.max(1, xs.length - 1));

export default async function run(): Promise<BenchMeasure[]> {
  const backend = await createBackend({ prefer: "cpu" });
  try {
    // warm-up (JIT, backend memory)
    await runSimulation({
      config: config(1000, 0.1),
      backend,
      clients: 1000,
      rounds: 1,
      mode: "synthetic",
      params: PARAMS,
      seed: 1,
      log: () => {},
    });
    const rssBefore = process.memoryUsage().rss;
    const s = await runSimulation({
      config: config(10_000, 0.1),
      backend,
      clients: 10_000,
      rounds: 3,
      mode: "synthetic",
      params: PARAMS,
      seed: 2,
      log: () => {},
    });
    const maxRss = process.resourceUsage().maxRSS * 1024;
    const copy = memcpyGbps(s.totalUpdates);
    const gbps = s.bytesPerSecond / 1e9;
    const modelBytes = PARAMS * 4;
    const growth = Math.max(s.peakRssBytes, maxRss) - rssBefore;

    const engineGbps = await engineOnlyGbps(backend, 2000);
    const copy2 = memcpyGbps(2000);

    const big = await runSimulation({
      config: config(100_000, 0.01),
      backend,
      clients: 100_000,
      rounds: 1,
      mode: "synthetic",
      params: PARAMS,
      seed: 3,
      log: () => {},
    });
    const perUpdate = big.seconds / big.totalUpdates;
    const copyOne = (PARAMS * 4) / (memcpyGbps(big.totalUpdates) * 1e9);

    const f32: { accuracy: number; bytes: number }[] = [];
    const i8: { accuracy: number; bytes: number }[] = [];
    for (const seed of ACCURACY_SEEDS) {
      f32.push(await mnistRun(backend, "float32", seed));
      i8.push(await mnistRun(backend, "int8", seed));
    }
    const accF = f32.map((r) => 100 * r.accuracy);
    const accI = i8.map((r) => 100 * r.accuracy);
    const diffs = accI.map((a, k) => a - accF[k]!);
    const noiseBand = 2 * (sd(accF) / Math.sqrt(accF.length));
    const pct = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(" ");
    return [
      measure({
        name: "simulate-10k-clients-100k-params-gbps",
        description:
          "fedge simulate, DP-FedAvg central, 10,000 clients × 100,000 params, q = 0.1, 3 rounds: GB/s of update bytes through the whole pipeline (generate + clip + accumulate + noise + step)",
        value: gbps,
        unit: "GB/s",
        baseline_name: "TypedArray.set memcpy of the same bytes",
        baseline: copy,
        better: "higher",
        notes: `${s.totalUpdates} updates in ${s.seconds.toFixed(2)} s = ${s.updatesPerSecond.toFixed(0)} updates/s on the ${s.backend} backend; includes generating each synthetic update`,
      }),
      measure({
        name: "round-engine-stream-aggregate-gbps",
        description:
          "RoundEngine.aggregateRound alone (DP-FedAvg central, cpu Backend): 2,000 ready-made updates × 100,000 params streamed through clip + accumulate + noise + FedAvg step",
        value: engineGbps,
        unit: "GB/s",
        baseline_name: "TypedArray.set memcpy of the same bytes",
        baseline: copy2,
        better: "higher",
      }),
      measure({
        name: "simulate-10k-clients-updates-per-s",
        description: "client updates aggregated per second in the same run",
        value: s.updatesPerSecond,
        unit: "updates/s",
        baseline_name: "updates/s a pure memcpy of each update would allow",
        baseline: (copy * 1e9) / (PARAMS * 4),
        better: "higher",
      }),
      measure({
        name: "simulate-peak-rss-growth-over-model",
        description:
          "peak RSS growth during the 10,000-client run (sampled every 64 updates, and the process max RSS) against the model size",
        value: growth,
        unit: "bytes",
        baseline_name: "model size (100,000 float32)",
        baseline: modelBytes,
        better: "lower",
        notes: `streamed ${((s.totalUpdates * modelBytes) / 2 ** 20).toFixed(0)} MiB of updates; ${s.updateBuffers} update buffers allocated; holding all would be ${s.totalUpdates}× the model`,
      }),
      measure({
        name: "simulate-100k-clients-100k-params-seconds-per-update",
        description:
          "one round with 100,000 clients × 100,000 params, q = 0.01 (100,000 CSPRNG coins, ≈1,000 updates): seconds per aggregated update",
        value: perUpdate,
        unit: "s",
        baseline_name: "memcpy of one update (400 KB)",
        baseline: copyOne,
        better: "lower",
        notes: `${big.totalUpdates} updates, ${big.seconds.toFixed(2)} s per round, peak RSS ${(big.peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
      }),
      measure({
        name: "simulate-upload-bytes-int8-vs-float32",
        description:
          "bytes of one signed update as a device uploads it, int8 (default: stochastic rounding, dequantized norm ≤ C) — MNIST 784→32→10, 25,450 params",
        value: mean(i8.map((r) => r.bytes)),
        unit: "bytes",
        baseline_name: "the same update as float32",
        baseline: mean(f32.map((r) => r.bytes)),
        better: "lower",
        goalRatio: 0.3,
      }),
      {
        ...measure({
          name: "simulate-mnist-accuracy-int8-vs-float32",
          description:
            "final MNIST test accuracy after 8 rounds (100 clients, q = 0.5, central z = 0.3, C = 5), int8 uploads, mean over seeds",
          value: mean(accI),
          unit: "%",
          baseline_name: "float32 uploads, same data seeds and seeded noise source, mean over the same seeds",
          baseline: mean(accF),
          better: "higher",
        }),
        goal: "within noise: |mean difference| ≤ 2 standard errors of the float32 runs",
        goal_met: Math.abs(mean(diffs)) <= Math.max(noiseBand, 0.05),
        notes: `seeds ${ACCURACY_SEEDS.join(", ")}; float32 ${pct(accF)} %, int8 ${pct(accI)} %; paired differences ${pct(diffs)} points (mean ${mean(diffs).toFixed(2)}); 2·SE of float32 across seeds ${noiseBand.toFixed(2)} points. The two runs of a seed share data, init, Poisson coins and the server's DP noise (seeded streams); only the devices' stochastic rounding differs`,
      },
    ];
  } finally {
    await backend.dispose();
  }
}
