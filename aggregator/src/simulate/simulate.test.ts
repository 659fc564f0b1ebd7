import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createBackend, createParamShardedBackend, createCpuBackend, type Backend } from "@fedge/gpu-node";
import { NORM_BLOCK } from "@fedge/gpu-node/math";
import { flattenTrainable } from "@fedge/ml";
import { CheckpointStore } from "../checkpoint.ts";
import { seededRandomBytes } from "@fedge/privacy/testing";
import { parsePopulationConfig } from "../config.ts";
import { runCli } from "../cli/cli.ts";
import { BufferPool, poissonSample, streamClientUpdates, SyntheticClients } from "./clients.ts";
import { runSimulation, type SimRoundReport } from "./simulate.ts";
import { initMlp, xoshiroRandomBytes, type MlpParams } from "@fedge/ml";
import { loadMnist } from "../data/mnist.ts";
import { shardNonIid } from "../data/shard.ts";
import { evaluateModel } from "../evaluate.ts";

const backend = await createBackend({ prefer: "cpu" });

describe("Poisson sampling", () => {
  it("flips one independent coin per client", () => {
    const ids = [...poissonSample(10_000, 0.3, seededRandomBytes(5))];
    expect(Math.abs(ids.length - 3000)).toBeLessThan(4 * Math.sqrt(10_000 * 0.3 * 0.7));
    expect(ids.every((id, i) => id >= 0 && id < 10_000 && (i === 0 || id > ids[i - 1]!))).toBe(true);
    expect([...poissonSample(50, 1)]).toHaveLength(50);
    expect(() => [...poissonSample(10, 0)]).toThrow(/sampling rate/);
    expect(() => [...poissonSample(-1, 0.5)]).toThrow(/population/);
  });

  it("synthetic updates are a deterministic function of (client, round)", async () => {
    const a = new SyntheticClients({ length: 100, seed: 9 });
    const b = new SyntheticClients({ length: 100, seed: 9 });
    a.beginRound(new Float32Array(100));
    b.beginRound(new Float32Array(100));
    const u = new Float32Array(100);
    const v = new Float32Array(100);
    a.update(3, 7, u);
    b.update(3, 7, v);
    expect(u).toEqual(v);
    b.update(3, 8, v);
    expect(u).not.toEqual(v);
    // the stream reuses pooled buffers once released
    const pool = new BufferPool(100);
    for await (const x of streamClientUpdates([1, 2, 3, 4], pool, (c, out) => a.update(c, 1, out))) x.release?.();
    expect(pool.allocated).toBe(1);
  });
});

describe("fedge simulate", () => {
  it("streams: memory stays O(model) for many clients (synthetic, 3,000 updates × 50,000 params)", async () => {
    const config = parsePopulationConfig({
      model: "synth",
      privacy: { mode: "none" },
      samplingRate: 1,
      expectedClients: 1500,
      batchSize: 16,
    });
    const reports: SimRoundReport[] = [];
    // warm up allocations (backend, first buffers) before measuring
    await runSimulation({ config, backend, clients: 50, rounds: 1, mode: "synthetic", params: 50_000, seed: 1 });
    const before = process.memoryUsage().rss;
    const s = await runSimulation({
      config,
      backend,
      clients: 1500,
      rounds: 2,
      mode: "synthetic",
      params: 50_000,
      seed: 1,
      onRound: (r) => reports.push(r),
      log: () => {},
    });
    const growth = s.peakRssBytes - before;
    expect(s.totalUpdates).toBe(3000); // 600 MB of update bytes went through
    expect(s.updateBuffers).toBeLessThanOrEqual(17);
    expect(growth).toBeLessThan(80 * 2 ** 20); // vs 600 MB if the updates were held
    expect(reports[1]!.distance!).toBeLessThan(reports[0]!.distance!);
  });

  it("MNIST: accuracy improves over a few DP-FedAvg rounds", async () => {
    const config = parsePopulationConfig({
      model: "digits",
      privacy: { mode: "central", noiseMultiplier: 0.3, budget: { epsilon: 100, delta: 1e-5 } },
      samplingRate: 0.5,
      expectedClients: 50,
      clipping: { clipNorm: 5 },
      client: { learningRate: 0.1, localEpochs: 1, batchSize: 16 },
    });
    const reports: SimRoundReport[] = [];
    const s = await runSimulation({
      config,
      backend,
      clients: 100,
      rounds: 3,
      mode: "mnist",
      seed: 1,
      onRound: (r) => reports.push(r),
      log: () => {},
    });
    expect(s.roundsRun).toBe(3);
    expect(reports[0]!.accuracy!).toBeGreaterThan(0.2); // from ≈ 0.1 at random init
    expect(reports[2]!.accuracy!).toBeGreaterThan(reports[0]!.accuracy! + 0.1);
    expect(reports[2]!.epsilon!).toBeGreaterThan(reports[0]!.epsilon!);
    expect(reports.every((r) => r.published)).toBe(true);
  });

  it("MNIST on the caller's data: its shards, its held-out set and its initial model; onRound sees each model", async () => {
    const { train, test } = loadMnist();
    const shards = shardNonIid(
      { x: train.x.subarray(0, 600 * 784), y: train.y.subarray(0, 600), n: 600 },
      { clients: 30, labelsPerClient: 2, random: xoshiroRandomBytes(3) },
    );
    const heldOut = { x: test.x.subarray(0, 200 * 784), y: test.y.subarray(0, 200), n: 200 };
    const initialModel = initMlp([784, 10], { random: xoshiroRandomBytes(9) });
    const config = parsePopulationConfig({
      model: "digits-own",
      privacy: { mode: "none" },
      samplingRate: 1,
      expectedClients: 30,
      client: { learningRate: 0.1, localEpochs: 1, batchSize: 8 },
    });
    const models: MlpParams[] = [];
    const reports: SimRoundReport[] = [];
    await runSimulation({
      config,
      backend,
      clients: 30,
      rounds: 2,
      mode: "mnist",
      seed: 1,
      data: { shards, heldOut },
      initialModel,
      onRound: (r, m) => {
        reports.push(r);
        models.push(m);
      },
      log: () => {},
    });
    expect(reports.map((r) => r.count)).toEqual([30, 30]);
    // the reported accuracy is the returned model's, on the caller's held-out set
    expect(reports[1]!.accuracy).toBeCloseTo(evaluateModel(models[1]!, heldOut).accuracy, 12);
    expect(reports[1]!.accuracy!).toBeGreaterThan(evaluateModel(initialModel, heldOut).accuracy + 0.2);
    await expect(
      runSimulation({
        config,
        backend,
        clients: 31,
        rounds: 1,
        mode: "mnist",
        data: { shards, heldOut },
        log: () => {},
      }),
    ).rejects.toThrow(/30 shards for 31 clients/);
  });

  it("adaptive clipping through the device code path: C converges to the γ-quantile of the unclipped norms", async () => {
    // Every simulated device runs the SDK's pipeline (@fedge/ml privatizeUpdate): it clips to C before "upload" and
    // reports b = 1[‖Δ‖ ≤ C] of its unclipped Δ. The server optimizer's step is negligible (lr 1e-9), so the global model,
    // and with it the devices' norm distribution, stays put: ‖Δ_c‖ ≈ a_c·‖θ*‖ with a_c uniform on [0.5, 1.5).
    const params = 100;
    const clients = 400;
    const gamma = 0.7;
    const seed = 11;
    const config = parsePopulationConfig({
      model: "synth-adaptive",
      privacy: { mode: "central", noiseMultiplier: 1, budget: { epsilon: 1e6, delta: 1e-5 } },
      samplingRate: 1,
      expectedClients: clients,
      clipping: { clipNorm: 0.5, adaptive: { targetQuantile: gamma, learningRate: 0.5 } },
      optimizer: { kind: "fedavg", lr: 1e-9 },
    });
    const reports: SimRoundReport[] = [];
    await runSimulation({
      config,
      backend,
      clients,
      rounds: 24,
      mode: "synthetic",
      params,
      seed,
      onRound: (r) => reports.push(r),
      log: () => {},
    });
    // The γ-quantile of the norms the devices compute (same seed, the initial all-zero model), over all rounds.
    const sim = new SyntheticClients({ length: params, seed });
    sim.beginRound(new Float32Array(params));
    const out = new Float32Array(params);
    const norms: number[] = [];
    for (let t = 1; t <= 24; t++)
      for (let c = 0; c < clients; c++) {
        sim.update(c, t, out);
        norms.push(Math.hypot(...out));
      }
    norms.sort((a, b) => a - b);
    const quantile = norms[Math.floor(gamma * norms.length)]!;
    expect(quantile).toBeGreaterThan(10 * 0.5); // far above the initial C = 0.5

    for (const r of reports) {
      expect(r.count).toBe(clients);
      // the bits come from the devices: each device either clipped (b = 0) or reported b = 1
      expect(r.deviceClipped + r.unclippedCount).toBe(r.count);
    }
    expect(reports[0]!.deviceClipped).toBe(clients); // C = 0.5 clips everyone at first …
    expect(reports[0]!.nextClipNorm).toBeGreaterThan(0.5); // … so C grows (a server-side count would only shrink it)
    // Rounds 17–24: C and the fraction of devices under it hover around the quantile and γ (count noise σ_b/m = 0.05).
    const last = reports.slice(-8);
    const meanC = last.reduce((a, r) => a + r.clipNorm!, 0) / last.length;
    const meanFraction = last.reduce((a, r) => a + r.unclippedCount / r.count, 0) / last.length;
    expect(meanC).toBeGreaterThan(quantile * 0.94);
    expect(meanC).toBeLessThan(quantile * 1.06);
    expect(Math.abs(meanFraction - gamma)).toBeLessThan(0.06);
    for (const r of last) expect(Math.abs(r.clipNorm! / quantile - 1)).toBeLessThan(0.2);
  });

  it("stops when the privacy budget is spent", async () => {
    const config = parsePopulationConfig({
      model: "synth",
      privacy: { mode: "central", noiseMultiplier: 1, budget: { epsilon: 1.5, delta: 1e-5 } },
      samplingRate: 0.5,
      expectedClients: 10,
      clipping: { clipNorm: 1 },
    });
    const s = await runSimulation({
      config,
      backend,
      clients: 20,
      rounds: 50,
      mode: "synthetic",
      params: 10,
      seed: 2,
      log: () => {},
    });
    expect(s.roundsRun).toBeLessThan(50);
    expect(s.stoppedBy).toMatch(/budget exceeded/);
    expect(s.epsilon!).toBeLessThanOrEqual(1.5);
  });

  it("--param-shards: aggregating K parameter slices gives the single backend's model bit for bit", async () => {
    const config = parsePopulationConfig({
      model: "synth-sharded",
      privacy: { mode: "central", noiseMultiplier: 0.8, budget: { epsilon: 1e6, delta: 1e-5 } },
      samplingRate: 0.3,
      expectedClients: 12,
      clipping: { clipNorm: 40, adaptive: { targetQuantile: 0.5, countNoiseStd: 2 } },
      optimizer: { kind: "fedadam", lr: 0.1 },
    });
    const dir = await mkdtemp(join(tmpdir(), "fedge-shards-"));
    try {
      const run = async (name: string, b: Backend) => {
        const reports: SimRoundReport[] = [];
        const store = new CheckpointStore({ dir: join(dir, name) });
        await runSimulation({
          config,
          backend: b,
          clients: 40,
          rounds: 3,
          mode: "synthetic",
          params: 2 * NORM_BLOCK + 500, // 3 norm blocks: slices on block boundaries
          seed: 5,
          random: seededRandomBytes(77),
          deviceRandom: seededRandomBytes(78),
          store,
          onRound: (r) => reports.push(r),
          log: () => {},
        });
        const cp = (await store.load())!;
        return { reports, weights: flattenTrainable(cp.model, "all"), clip: cp.clip.clipNorm };
      };
      const one = await run("one", backend);
      const shards = createParamShardedBackend({ shards: [1, 2, 3].map(() => createCpuBackend({ threads: 1 })) });
      try {
        const three = await run("three", shards);
        const strip = (r: SimRoundReport) => [r.count, r.unclippedCount, r.clipNorm, r.nextClipNorm, r.distance];
        expect(three.reports.map(strip)).toEqual(one.reports.map(strip));
        expect(three.clip).toBe(one.clip);
        expect(Buffer.from(three.weights.buffer).equals(Buffer.from(one.weights.buffer))).toBe(true);
      } finally {
        await shards.dispose();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("CLI prints a JSON line per round and a summary; bad flags are usage errors", async () => {
    let out = "";
    let err = "";
    const io = { stdout: (t: string) => (out += t), stderr: (t: string) => (err += t) };
    const code = await runCli(
      [
        "simulate",
        "--clients",
        "200",
        "--params",
        "1000",
        "--rounds",
        "2",
        "--sampling-rate",
        "0.1",
        "--backend",
        "cpu",
        "--seed",
        "4",
      ],
      io,
    );
    expect(code).toBe(0);
    const lines = out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; epsilon: number });
    expect(lines.map((l) => l.type)).toEqual(["round", "round", "summary"]);
    expect(lines[2]!.epsilon).toBeGreaterThan(0);
    expect(await runCli(["simulate", "--clients", "0"], io)).toBe(2);
    expect(await runCli(["simulate", "--sampling-rate", "2", "--backend", "cpu"], io)).toBe(2);
    expect(err).toMatch(/samplingRate/);
    expect(await runCli(["simulate", "--robust", "median", "--backend", "cpu"], io)).toBe(2);
    expect(err).toMatch(/robust/);
    out = "";
    const sharded = ["simulate", "--clients", "50", "--params", "1000", "--rounds", "1", "--backend", "cpu"];
    expect(await runCli([...sharded, "--param-shards", "2"], io)).toBe(0);
    expect(JSON.parse(out.trim().split("\n").at(-1)!)).toMatchObject({ type: "summary", paramShards: 2 });
    expect(await runCli([...sharded, "--param-shards", "0"], io)).toBe(2);
  });
});
