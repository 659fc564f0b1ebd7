import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createBackend } from "@fedge/gpu-node";
import { flattenTrainable, type MlpParams } from "@fedge/ml";
import { zigguratConstants, type RandomBytes } from "@fedge/privacy";
import { createAccountant, PrivacyBudgetExceededError } from "@fedge/privacy";
import { seededRandomBytes } from "@fedge/privacy/testing";
import { CheckpointStore } from "./checkpoint.ts";
import { parsePopulationConfig, type PopulationConfigInput } from "./config.ts";
import type { ClientUpdate } from "./strategy/strategy.ts";
import { RoundEngine, RoundStateError } from "./round.ts";

/**
 * Every 16 bytes are the words (2^31, 0, 0, 0): the Ziggurat sampler (Marsaglia & Tsang 2000) reads (2^31, 0) as u = 0.5
 * in its base layer, z = u·x₀ with x₀ = v/f(r), and (0, 0) as z = 0: standard normals (R, 0, R, 0, …).
 */
const zig = zigguratConstants();
const R = (0.5 * zig.v) / Math.exp((-zig.r * zig.r) / 2);
const knownNoise: RandomBytes = (buf) => {
  const words = new Uint32Array(buf.length / 4);
  for (let i = 0; i < words.length; i += 4) words[i] = 0x80000000;
  buf.set(new Uint8Array(words.buffer));
};

const backend = await createBackend({ prefer: "cpu" });
const base: PopulationConfigInput = {
  model: "digits",
  // the float mechanism, so rounds can be computed by hand from known noise (the default is discrete-gaussian)
  privacy: { mode: "central", noiseMultiplier: 1, mechanism: "gaussian", budget: { epsilon: 10, delta: 1e-5 } },
  samplingRate: 0.1,
  expectedClients: 2,
  clipping: { clipNorm: 1 },
  optimizer: { kind: "fedavg", lr: 1 },
};
const config = (over: Partial<PopulationConfigInput> = {}) => parsePopulationConfig({ ...base, ...over });

const model = (): MlpParams => ({
  layers: [
    {
      inFeatures: 3,
      outFeatures: 1,
      weight: new Float32Array([1, 2, 3]),
      bias: new Float32Array([4]),
      activation: "none",
    },
  ],
});
const tiny = () => [new Float32Array([3, 4, 0, 0]), new Float32Array([0, 0, 0.5, 0]), new Float32Array([0, 0, 0, 2])];
function* updates(list = tiny()): Generator<ClientUpdate> {
  for (const delta of list) yield { delta };
}
function* mustNotRead(): Generator<ClientUpdate> {
  throw new Error("updates were consumed again");
}

function epsilonOfSteps(steps: number): number {
  const acc = createAccountant("rdp");
  acc.step({ noiseMultiplier: 1, sampleRate: 0.1 }, steps);
  return acc.getEpsilon(1e-5);
}

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "fedge-round-"));
}

describe("RoundEngine", () => {
  it("runs a DP-FedAvg round: ledger spend at open, hand-computed update, FedAvg step", async () => {
    const engine = await RoundEngine.create({
      config: config(),
      backend,
      initialModel: model(),
      random: knownNoise,
      log: () => {},
    });
    const opened = await engine.openRound("r1");
    expect(opened).toMatchObject({
      round: 1,
      resumed: false,
      phase: "opened",
      instructions: { privacyMode: "central", clipNorm: 1 },
    });
    expect(opened.epsilon).toBeCloseTo(epsilonOfSteps(1), 10);
    const summary = await engine.aggregateRound(updates());
    expect(summary).toMatchObject({
      round: 1,
      roundId: "r1",
      count: 3,
      unclippedCount: 1,
      clipNorm: 1,
      noiseStd: 1,
      denominator: 2,
    });
    const delta = [(0.6 + R) / 2, 0.4, (0.5 + R) / 2, 0.5];
    const w = flattenTrainable(engine.model, "all");
    [1, 2, 3, 4].forEach((x0, i) => expect(w[i]).toBeCloseTo(x0 + delta[i]!, 5));
    await engine.completeRound({ published: true, version: 1, reason: "first", accuracy: 0.5 });
    expect(engine.checkpoint.serving).toEqual({ version: 1, round: 1, accuracy: 0.5 });
    expect(engine.checkpoint.current).toBeNull();
    await expect(engine.openRound("r1")).rejects.toMatchObject({
      name: "RoundStateError",
      reason: "round_already_run",
    });
  });

  it("refuses a round over budget and changes nothing", async () => {
    const dir = await tempDir();
    const store = new CheckpointStore({ dir });
    const engine = await RoundEngine.create({
      config: config({
        privacy: { mode: "central", noiseMultiplier: 1, mechanism: "gaussian", budget: { epsilon: 0.1, delta: 1e-5 } },
      }),
      backend,
      store,
      initialModel: model(),
    });
    const before = await readFile(join(dir, "state.json"), "utf8");
    const refused = await engine.openRound("r1").catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(PrivacyBudgetExceededError);
    expect(refused).toMatchObject({ reason: "budget_exceeded", roundId: "r1" });
    expect(refused).not.toHaveProperty("status");
    expect(await readFile(join(dir, "state.json"), "utf8")).toBe(before);
    expect(engine.checkpoint.current).toBeNull();
    expect(engine.checkpoint.ledger!.rounds).toEqual([]);
  });

  it("refuses a second round while one is in progress, and bad round ids", async () => {
    const engine = await RoundEngine.create({ config: config(), backend, initialModel: model() });
    await engine.openRound("r1");
    await expect(engine.openRound("r2")).rejects.toMatchObject({ reason: "round_in_progress" });
    await expect(engine.openRound("r2")).rejects.toBeInstanceOf(RoundStateError);
    await expect(engine.openRound("bad id!")).rejects.toBeInstanceOf(RangeError);
    await expect(engine.completeRound({ published: false, reason: "x" })).rejects.toMatchObject({
      reason: "not_aggregated",
    });
    await engine.abandonRound("no devices");
    expect((await engine.openRound("r2")).round).toBe(2);
    expect(engine.privacySpent()!.epsilon).toBeCloseTo(epsilonOfSteps(2), 10); // the abandoned round stays spent
  });

  it("crash after the ledger record and after aggregation: ε counted once, model never lost", async () => {
    const dir = await tempDir();
    const crash = (where: string) => () => {
      throw new Error(`crash ${where}`);
    };
    // 1. crash right after the round was opened (ledger recorded, no noise drawn yet)
    const e1 = await RoundEngine.create({
      config: config(),
      backend,
      store: new CheckpointStore({ dir }),
      initialModel: model(),
      random: knownNoise,
      hooks: { afterOpen: crash("after open") },
    });
    await expect(e1.openRound("r1")).rejects.toThrow("crash after open");
    // 2. restart: the same round id resumes without a second ledger entry; crash after aggregation (before publish)
    let savedWeights: Float32Array | undefined;
    const e2 = await RoundEngine.create({
      config: config(),
      backend,
      store: new CheckpointStore({ dir }),
      random: knownNoise,
      hooks: {
        afterAggregate: (c) => {
          savedWeights = flattenTrainable(c.model, "all");
          throw new Error("crash before publish");
        },
      },
    });
    const reopened = await e2.openRound("r1");
    expect(reopened).toMatchObject({ resumed: true, phase: "opened", round: 1 });
    expect(e2.checkpoint.ledger!.rounds.map((r) => r.roundId)).toEqual(["r1"]);
    await expect(e2.aggregateRound(updates())).rejects.toThrow("crash before publish");
    // 3. restart again: the aggregated model is there; aggregating again neither reads updates nor draws noise
    const e3 = await RoundEngine.create({
      config: config(),
      backend,
      store: new CheckpointStore({ dir }),
      random: knownNoise,
    });
    expect(await e3.openRound("r1")).toMatchObject({ resumed: true, phase: "aggregated" });
    const summary = await e3.aggregateRound(mustNotRead());
    expect(summary.count).toBe(3);
    expect(flattenTrainable(e3.model, "all")).toEqual(savedWeights);
    await e3.completeRound({ published: true, version: 1, reason: "resumed" });
    expect(e3.checkpoint.ledger!.rounds).toHaveLength(1);
    expect(e3.privacySpent()!.epsilon).toBeCloseTo(epsilonOfSteps(1), 10);
    // 4. the next round spends exactly one more step
    await e3.openRound("r2");
    expect(e3.privacySpent()!.epsilon).toBeCloseTo(epsilonOfSteps(2), 10);
  });

  it("distributed: a round resumed after a crash hands devices the same rotation seed; the ledger holds its shares", async () => {
    const dir = await tempDir();
    const distributed = config({
      privacy: { mode: "distributed", noiseMultiplier: 1, budget: { epsilon: 100, delta: 1e-5 } },
      expectedClients: 2,
    });
    const e1 = await RoundEngine.create({
      config: distributed,
      backend,
      store: new CheckpointStore({ dir }),
      initialModel: model(),
      random: seededRandomBytes(1),
      hooks: {
        afterOpen: () => {
          throw new Error("crash after open");
        },
      },
    });
    await expect(e1.openRound("r1")).rejects.toThrow("crash after open");
    const e2 = await RoundEngine.create({
      config: distributed,
      backend,
      store: new CheckpointStore({ dir }),
      random: seededRandomBytes(2), // another stream: a fresh draw would give another seed
    });
    const first = e2.checkpoint.current!.rotationSeed!;
    expect(first).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const reopened = await e2.openRound("r1");
    expect(reopened.resumed).toBe(true);
    expect(reopened.instructions.distributed!.rotation_seed).toBe(first);
    expect(reopened.instructions.distributed!.dimension).toBe(4);
    const [charged] = e2.checkpoint.ledger!.rounds;
    expect(charged!.mode).toBe("distributed");
    // the released sum's threshold less the protected device's own share, and the default cohort (every checked-in
    // device adds a share) as the task states it
    expect(reopened.instructions.distributed!.cohort).toBe("checked-in");
    expect(charged!.distributed).toEqual({
      dimension: 4,
      clients: reopened.instructions.distributed!.noise_shares - 1,
      localVariance: reopened.instructions.distributed!.share_variance,
      sensitivityBound: reopened.instructions.distributed!.sensitivity_bound,
      cohort: "checked-in",
    });
  });

  it("optimizer state survives a restart (FedAdam): same weights as an uninterrupted run", async () => {
    const cfg = config({ optimizer: { kind: "fedadam", lr: 0.1 } });
    const straight = await RoundEngine.create({ config: cfg, backend, initialModel: model(), random: knownNoise });
    for (const id of ["a", "b"]) {
      await straight.openRound(id);
      await straight.aggregateRound(updates());
      await straight.completeRound({ published: false, reason: "test" });
    }
    const dir = await tempDir();
    const first = await RoundEngine.create({
      config: cfg,
      backend,
      store: new CheckpointStore({ dir }),
      initialModel: model(),
      random: knownNoise,
    });
    await first.openRound("a");
    await first.aggregateRound(updates());
    await first.completeRound({ published: false, reason: "test" });
    first.dispose();
    const second = await RoundEngine.create({
      config: cfg,
      backend,
      store: new CheckpointStore({ dir }),
      random: knownNoise,
    });
    await second.openRound("b");
    await second.aggregateRound(updates());
    expect(flattenTrainable(second.model, "all")).toEqual(flattenTrainable(straight.model, "all"));
    expect(second.checkpoint.optimizer.step).toBe(2);
  });

  it("refuses a checkpoint whose config disagrees, and a start without model or checkpoint", async () => {
    const dir = await tempDir();
    await RoundEngine.create({ config: config(), backend, store: new CheckpointStore({ dir }), initialModel: model() });
    await expect(
      RoundEngine.create({ config: config({ model: "other" }), backend, store: new CheckpointStore({ dir }) }),
    ).rejects.toMatchObject({ name: "CheckpointError", reason: "config_mismatch" });
    await expect(RoundEngine.create({ config: config(), backend })).rejects.toThrow(TypeError);
  });

  it("non-DP populations keep no ledger; rollback records the serving version", async () => {
    const engine = await RoundEngine.create({
      config: config({ privacy: { mode: "none" } }),
      backend,
      initialModel: model(),
      log: () => {},
    });
    const o = await engine.openRound("r1");
    expect(o.epsilon).toBeNull();
    await engine.aggregateRound(updates([new Float32Array([1, 1, 1, 1])]));
    expect(Array.from(flattenTrainable(engine.model, "all"))).toEqual([2, 3, 4, 5]);
    await engine.completeRound({ published: true, version: 1, reason: "v1", accuracy: 0.8 });
    await engine.openRound("r2");
    await engine.aggregateRound(updates([]));
    await engine.completeRound({ published: true, version: 2, reason: "v2", accuracy: 0.7 });
    await engine.recordRollback(1, "v2 regressed");
    expect(engine.checkpoint.serving).toEqual({ version: 1, round: 1, accuracy: 0.8 });
    await expect(engine.recordRollback(9, "?")).rejects.toMatchObject({ reason: "version_not_published" });
  });
});

describe("RoundEngine, central mode's default mechanism", () => {
  it("aggregates with the exact discrete Gaussian sum and reports its grid inflation; the ledger is charged z", async () => {
    const cfg = parsePopulationConfig({
      ...base,
      privacy: { mode: "central", noiseMultiplier: 1, budget: { epsilon: 10, delta: 1e-5 } },
    });
    expect(cfg.privacy.mechanism).toBe("discrete-gaussian");
    const engine = await RoundEngine.create({
      config: cfg,
      backend,
      initialModel: model(),
      random: seededRandomBytes(11),
      log: () => {},
    });
    const opened = await engine.openRound("d1");
    expect(opened.epsilon).toBeCloseTo(epsilonOfSteps(1), 10);
    const summary = await engine.aggregateRound(updates());
    expect(summary).toMatchObject({ count: 3, unclippedCount: 1, clipNorm: 1, denominator: 2 });
    expect(summary.mechanism).toBe("discrete-gaussian");
    expect(summary.noiseInflation).toBeGreaterThan(1);
    expect(summary.noiseInflation).toBeLessThanOrEqual(1.001);
    expect(summary.noiseStd).toBeCloseTo(summary.noiseInflation!, 5); // z·C·inflation with z = C = 1 (σ² rounded up)
    await engine.completeRound({ published: false, reason: "test" });
    const second = await engine.openRound("d2");
    expect(second.epsilon).toBeCloseTo(epsilonOfSteps(2), 10);
  });
});
