import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  ConfigError,
  configFromFlags,
  loadPopulationConfig,
  optimizerOptionsOf,
  parsePopulationConfig,
  parsePopulationConfigJson,
} from "./config.ts";
import { strategyFromConfig } from "./strategy/from-config.ts";

const good = {
  model: "digits",
  privacy: { mode: "central", noiseMultiplier: 1.1, budget: { epsilon: 8, delta: 1e-5 } },
  samplingRate: 0.01,
  expectedClients: 100,
};

function issuesOf(input: unknown): string[] {
  try {
    parsePopulationConfig(input);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect(e).not.toHaveProperty("status");
    return (e as ConfigError).issues.map((i) => i.path);
  }
  throw new Error("expected a ConfigError");
}

describe("population config", () => {
  it("fills defaults", () => {
    const c = parsePopulationConfig(good);
    expect(c.optimizer).toEqual({ kind: "fedavg", lr: 1, momentum: 0.9, beta1: 0.9, beta2: 0.99, epsilon: 1e-3 });
    expect(c.clipping).toEqual({ clipNorm: 1 });
    expect(c.privacy.accountant).toBe("rdp");
    expect(c.publish.maxAccuracyDrop).toBe(0.02);
    expect(optimizerOptionsOf(c).kind).toBe("sgd");
    expect(optimizerOptionsOf({ ...c, optimizer: { ...c.optimizer, kind: "fedavgm" } }).momentum).toBe(0.9);
    expect(optimizerOptionsOf({ ...c, optimizer: { ...c.optimizer, kind: "fedyogi" } }).kind).toBe("yogi");
  });

  it("names the bad field", () => {
    expect(issuesOf({ ...good, samplingRate: 2 })).toEqual(["samplingRate"]);
    expect(issuesOf({ ...good, model: "Bad Name" })).toEqual(["model"]);
    expect(issuesOf({ ...good, privacy: { ...good.privacy, noiseMultiplier: -1 } })).toEqual([
      "privacy.noiseMultiplier",
    ]);
    expect(issuesOf({ ...good, privacy: { ...good.privacy, budget: { epsilon: 8, delta: 2 } } })).toEqual([
      "privacy.budget.delta",
    ]);
    expect(issuesOf({ ...good, optimizer: { kind: "sgd-ish" } })).toEqual(["optimizer.kind"]);
    expect(issuesOf({ ...good, clipping: { clipNorm: 0 } })).toEqual(["clipping.clipNorm"]);
    expect(issuesOf({ ...good, extra: 1 })).toEqual([""]); // strict: unknown key at the root
    expect(issuesOf({ ...good, robust: { kind: "median" } })).toEqual(["robust"]);
    expect(issuesOf({ ...good, privacy: { mode: "central", noiseMultiplier: 1 } })).toEqual(["privacy.budget"]);
    // distributed mode: RDP only (KLS21's bound), no adaptive clipping (no clip bits reach the server), n integer
    const distributed = { mode: "distributed", noiseMultiplier: 1, budget: good.privacy.budget };
    expect(parsePopulationConfig({ ...good, privacy: distributed }).privacy.distributed).toEqual({
      bits: 20,
      overflowProbability: 1e-9,
      corruptFraction: 0, // stated: the server controls no device
      cohort: "checked-in", // every checked-in device adds its share: zero-out, amplified
    });
    // the strategy plans it over the expected check-ins, M / q = 1,000 here; a sampled cohort over M
    const strategy = (cohort?: string) =>
      strategyFromConfig(
        parsePopulationConfig({
          ...good,
          samplingRate: 0.05,
          expectedClients: 50,
          privacy: { ...distributed, ...(cohort ? { distributed: { cohort } } : {}) },
        }),
      ).configureFit({ round: 1, clip: { clipNorm: 1 }, length: 10, rotationSeed: new Uint8Array(32) }).distributed!;
    expect(strategy()).toMatchObject({ cohort: "checked-in", noise_shares: 800 });
    expect(strategy("sampled")).not.toHaveProperty("cohort");
    expect(strategy("sampled").noise_shares).toBe(40);
    expect(strategy().share_variance).toBeLessThan(strategy("sampled").share_variance / 10);
    expect(issuesOf({ ...good, privacy: { ...distributed, distributed: { cohort: "everyone" } } })).toEqual([
      "privacy.distributed.cohort",
    ]);
    // a colluding fraction in SecAgg+'s regime [0, 1/3)
    for (const f of [-0.01, 1 / 3, 0.5]) {
      expect(issuesOf({ ...good, privacy: { ...distributed, distributed: { corruptFraction: f } } })).toEqual([
        "privacy.distributed.corruptFraction",
      ]);
    }
    expect(
      parsePopulationConfig({ ...good, privacy: { ...distributed, distributed: { corruptFraction: 0.2 } } }).privacy
        .distributed.corruptFraction,
    ).toBe(0.2);
    expect(issuesOf({ ...good, privacy: { ...distributed, accountant: "pld" } })).toEqual(["privacy.accountant"]);
    expect(issuesOf({ ...good, privacy: distributed, clipping: { clipNorm: 1, adaptive: {} } })).toEqual([
      "clipping.adaptive",
    ]);
    expect(issuesOf({ ...good, privacy: { ...distributed, distributed: { bits: 33 } } })).toEqual([
      "privacy.distributed.bits",
    ]);
    expect(issuesOf({ ...good, clipping: { clipNorm: 1, adaptive: { countNoiseStd: 0.1 } } })).toEqual([
      "clipping.adaptive.countNoiseStd",
    ]);
    expect(
      issuesOf({ ...good, privacy: { ...good.privacy, mode: "local" }, clipping: { clipNorm: 1, adaptive: {} } }),
    ).toEqual(["clipping.adaptive"]);
  });

  it("allows robust aggregation without DP", () => {
    const c = parsePopulationConfig({
      model: "m",
      privacy: { mode: "none" },
      samplingRate: 0.1,
      expectedClients: 10,
      robust: { kind: "trimmed_mean" },
    });
    expect(c.robust).toEqual({ kind: "trimmed_mean", trimFraction: 0.1, maxClients: 10_000 });
  });

  it("loads from a JSON file and rejects bad JSON", async () => {
    const dir = await mkdtemp(join(tmpdir(), "fedge-config-"));
    const file = join(dir, "p.json");
    await writeFile(file, JSON.stringify(good));
    expect((await loadPopulationConfig(file)).model).toBe("digits");
    expect(() => parsePopulationConfigJson("{nope")).toThrow(ConfigError);
  });

  it("builds from flags over a base, and names bad flags", () => {
    const c = configFromFlags(
      {
        "sampling-rate": "0.02",
        "clip-norm": "0.5",
        adaptive: true,
        "target-quantile": "0.7",
        optimizer: "fedadam",
        "server-lr": "0.01",
      },
      good,
    );
    expect(c.samplingRate).toBe(0.02);
    expect(c.clipping).toEqual({ clipNorm: 0.5, adaptive: { targetQuantile: 0.7, learningRate: 0.2 } });
    expect(c.optimizer.kind).toBe("fedadam");
    expect(() => configFromFlags({ "clip-norm": "abc" }, good)).toThrow(
      /clipping\.clipNorm.*--clip-norm must be a number/,
    );
    expect(() => configFromFlags({ "privacy-mode": "everything" }, good)).toThrow(/privacy\.mode/);
  });
});
