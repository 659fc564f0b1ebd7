/**
 * @module
 * The population config: everything the aggregator needs to run rounds for one model/population, validated with zod
 * at the boundary (a JSON file, or CLI flags) and used as a plain typed object inside.
 *
 * Privacy modes:
 * - `central`: DP-FedAvg (McMahan et al. 2018, arXiv 1710.06963 Alg. 1): devices clip to C, the aggregator adds
 *   noise with multiplier z_Δ to the clipped sum and divides by the fixed expected count q·N (§2, "fixed-denominator
 *   estimator"). `privacy.mechanism` picks the noise: `discrete-gaussian` (default; exact integer arithmetic, safe
 *   against Mironov 2012's floating-point attack) or `gaussian` (float noise on the Backend; not floating-point safe).
 * - `local`: devices clip and add their own noise (multiplier z); the server adds none.
 * - `distributed`: the distributed discrete Gaussian (Kairouz, Liu, Steinke 2021, arXiv 2102.06387): devices clip,
 *   rotate, round and add their own discrete Gaussian share; the server receives the sum mod 2^b (secure aggregation;
 *   `fedge simulate` computes that sum in the clear). By default every checked-in device adds a share (a
 *   coin-excluded one with a zero update), charged for zero-out neighbours amplified by the coin; with
 *   `distributed.cohort: "sampled"` only the sampled devices do, charged for add/remove neighbours (the device's
 *   share leaving with it). KLS21's closeness, RDP accountant only.
 * - `none`: no differential privacy (only such populations may use robust aggregation).
 */
import { z } from "zod";
import { readFile } from "node:fs/promises";
import { ModelName } from "@fedge/protocol";

export const ServerOptimizerKind = z.enum(["fedavg", "fedavgm", "fedadam", "fedyogi"]);
export type ServerOptimizerKind = z.infer<typeof ServerOptimizerKind>;

const positive = z.number().finite().positive();
const unit = z.number().min(0).lt(1);

export const AdaptiveClippingConfig = z.strictObject({
  /** Target quantile γ of unclipped updates (Andrew et al. 2021, arXiv 1905.03871 Alg. 1). */
  targetQuantile: z.number().gt(0).lt(1).default(0.5),
  /** Geometric learning rate η_C. */
  learningRate: positive.default(0.2),
  /** σ_b, std of the noise on the unclipped count; default expectedClients / 20 (§3.1). */
  countNoiseStd: positive.optional(),
});
export type AdaptiveClippingConfig = z.infer<typeof AdaptiveClippingConfig>;

export const PopulationConfig = z
  .strictObject({
    /** Model (population) name, a lowercase slug. */
    model: ModelName,
    privacy: z.strictObject({
      mode: z.enum(["central", "local", "distributed", "none"]),
      /**
       * Total noise multiplier z. `central`: the Gaussian mechanism on the clipped sum has std z·C (z_Δ·C when
       * adaptive clipping takes its share); `local`: each device adds N(0, (z·C)²).
       */
      noiseMultiplier: z.number().finite().min(0).default(0),
      /** Accountant fed with (q, z) every round. */
      accountant: z.enum(["rdp", "pld"]).default("rdp"),
      /**
       * Central mode's noise. `discrete-gaussian`: clipped updates on a fixed-point grid, exact integer sum, exact
       * discrete Gaussian noise (`@fedge/privacy` discrete-sum.ts), on the CPU. `gaussian`: float32 clip, sum and
       * Gaussian noise on the gpu-node Backend; faster for huge models but open to floating-point attacks (Mironov
       * 2012), kept for comparison. Both are charged the same z.
       */
      mechanism: z.enum(["discrete-gaussian", "gaussian"]).default("discrete-gaussian"),
      /** Distributed mode's modulus and share counts (`@fedge/privacy` `planDistributedDiscreteGaussian`). */
      distributed: z
        .strictObject({
          /** b: devices' values and their sum live in Z_{2^b}. */
          bits: z.number().int().min(2).max(32).default(20),
          /**
           * n_min: fewest inputs a sum is released with; the charge counts n_min − 1 − ⌊f·n_max⌋ noise shares (not the
           * protected device's own, nor the colluding devices'). n_expected is the expected check-ins,
           * expectedClients / samplingRate, for a `checked-in` cohort, else expectedClients. @default ⌈0.8·n_expected⌉
           */
          minClients: z.number().int().positive().optional(),
          /** n_max: most inputs the modulus holds (see minClients for n_expected). @default 2·n_expected */
          maxClients: z.number().int().positive().optional(),
          /** Accepted probability that the sum wraps around 2^b. */
          overflowProbability: z.number().gt(0).lt(1).default(1e-9),
          /**
           * f ∈ [0, 1/3): the fraction of a round's selected devices that may collude with the server. Their noise
           * shares are not counted and the others' are scaled up to meet the same z. 0 states that the server
           * controls no device (what the secure aggregation's parameters assume too).
           * @default 0
           */
          corruptFraction: z
            .number()
            .min(0)
            .lt(1 / 3)
            .default(0),
          /**
           * Who adds a noise share (`@fedge/protocol` `DistributedNoise.cohort`). `checked-in`: every device that
           * checks in joins the secure aggregation, a coin-excluded one with a zero update and its share, so the round
           * is charged for zero-out neighbours with amplification by sampling; the plan's n_expected is then the
           * expected check-ins, expectedClients / samplingRate, and n_min, n_max count check-ins. `sampled`: only the
           * devices the coin selects add shares (add/remove neighbours, whose variance term no z removes). The cost
           * of `checked-in`: every checked-in device, coin-excluded or not, runs the secure aggregation.
           * @default "checked-in"
           */
          cohort: z.enum(["checked-in", "sampled"]).default("checked-in"),
        })
        .default({ bits: 20, overflowProbability: 1e-9, corruptFraction: 0, cohort: "checked-in" }),
      /** Total (ε, δ) budget of the population; a round that would exceed it is refused. */
      budget: z.strictObject({ epsilon: positive, delta: z.number().gt(0).lt(1) }).optional(),
    }),
    /** Poisson sampling rate q per device per round (0, 1]. */
    samplingRate: z.number().gt(0).max(1),
    /** Expected clients per round q·N: the fixed denominator of DP-FedAvg. */
    expectedClients: positive,
    /** Which parameters devices train: every layer or only the head. */
    trainable: z.enum(["all", "head"]).default("all"),
    clipping: z
      .strictObject({
        /** Initial (or fixed) L2 clip norm C. */
        clipNorm: positive.default(1),
        /** Adaptive clipping options; absent = fixed C. */
        adaptive: AdaptiveClippingConfig.optional(),
      })
      .default({ clipNorm: 1 }),
    optimizer: z
      .strictObject({
        kind: ServerOptimizerKind.default("fedavg"),
        /** Server learning rate η (FedAvg = 1). */
        lr: positive.default(1),
        /** FedAvgM momentum μ. */
        momentum: unit.default(0.9),
        beta1: unit.default(0.9),
        beta2: unit.default(0.99),
        /** Adaptivity τ of FedAdam/FedYogi (Reddi et al. 2020, arXiv 2003.00295 Alg. 2). */
        epsilon: positive.default(1e-3),
      })
      .default({ kind: "fedavg", lr: 1, momentum: 0.9, beta1: 0.9, beta2: 0.99, epsilon: 1e-3 }),
    /** Robust aggregation (non-DP populations only). */
    robust: z
      .strictObject({
        kind: z.enum(["median", "trimmed_mean"]),
        trimFraction: z.number().min(0).lt(0.5).default(0.1),
        /** Most updates a robust round holds in memory at once (robust rules need them all). */
        maxClients: z.number().int().positive().default(10_000),
      })
      .optional(),
    /** Task sent to devices. */
    client: z
      .strictObject({
        learningRate: positive.default(0.1),
        localEpochs: z.number().int().min(1).max(100).default(1),
        batchSize: z.number().int().min(1).max(4096).default(32),
      })
      .default({ learningRate: 0.1, localEpochs: 1, batchSize: 32 }),
    publish: z
      .strictObject({
        /**
         * Refuse to publish when accuracy drops by more than this (absolute, in [0, 1]) vs the serving version; a drop
         * of exactly this much (with 0: a tie) publishes. `fedge aggregate` compares int8 exports (see evaluate.ts).
         */
        maxAccuracyDrop: z.number().min(0).max(1).default(0.02),
      })
      .default({ maxAccuracyDrop: 0.02 }),
    /** Updates handed to the Backend per `add` call. */
    batchSize: z.number().int().min(1).max(4096).default(16),
    /**
     * What devices upload (the round task's `update_dtype`): `int8` (default) is a quarter of the bytes, stochastic
     * rounding whose dequantized norm still meets the round's bound (@fedge/ml `compressUpdate`), so the edge's norm
     * check and the server's re-clip agree and the DP sensitivity holds on what the server adds; `float32` sends Δ as
     * is. `fedge simulate` quantizes its simulated devices the same way.
     */
    updateDtype: z.enum(["float32", "int8"]).default("int8"),
  })
  .superRefine((c, ctx) => {
    if (c.privacy.mode !== "none" && c.robust) {
      ctx.addIssue({
        code: "custom",
        path: ["robust"],
        message: `robust aggregation is not allowed with privacy mode "${c.privacy.mode}" (its sensitivity is not bounded by clipping)`,
      });
    }
    if (c.privacy.mode !== "none" && c.privacy.noiseMultiplier === 0) {
      ctx.addIssue({
        code: "custom",
        path: ["privacy", "noiseMultiplier"],
        message: `noiseMultiplier must be > 0 in privacy mode "${c.privacy.mode}"`,
      });
    }
    if (c.privacy.mode !== "none" && !c.privacy.budget) {
      ctx.addIssue({
        code: "custom",
        path: ["privacy", "budget"],
        message: "a DP population needs a budget {epsilon, delta}",
      });
    }
    if (c.privacy.mode === "distributed") {
      if (c.privacy.accountant !== "rdp") {
        ctx.addIssue({
          code: "custom",
          path: ["privacy", "accountant"],
          message: "distributed mode is accounted with the rdp accountant (KLS21's bound); pld has no analysis of it",
        });
      }
      if (!Number.isInteger(c.expectedClients)) {
        ctx.addIssue({
          code: "custom",
          path: ["expectedClients"],
          message: "distributed mode splits the noise into expectedClients shares: it must be an integer",
        });
      }
      if (c.clipping.adaptive) {
        ctx.addIssue({
          code: "custom",
          path: ["clipping", "adaptive"],
          message: "adaptive clipping needs devices' clip bits, which distributed mode never shows the server",
        });
      }
    }
    if (c.clipping.adaptive && c.privacy.mode === "local") {
      ctx.addIssue({
        code: "custom",
        path: ["clipping", "adaptive"],
        message: "adaptive clipping needs the server's clipped count: not available in local mode",
      });
    }
    if (c.clipping.adaptive && c.privacy.mode === "central") {
      const sigmaB = c.clipping.adaptive.countNoiseStd ?? c.expectedClients / 20;
      if (!(2 * sigmaB > c.privacy.noiseMultiplier)) {
        ctx.addIssue({
          code: "custom",
          path: ["clipping", "adaptive", "countNoiseStd"],
          message: `count noise σ_b=${sigmaB} leaves no noise for the update: need 2σ_b > noiseMultiplier (${c.privacy.noiseMultiplier}); raise countNoiseStd or expectedClients`,
        });
      }
    }
    if (c.expectedClients > 0 && c.samplingRate > 0 && c.expectedClients / c.samplingRate < 1) {
      ctx.addIssue({
        code: "custom",
        path: ["expectedClients"],
        message: "expectedClients / samplingRate (the population size) must be ≥ 1",
      });
    }
  });
/** A validated population config (defaults filled). */
export type PopulationConfig = z.infer<typeof PopulationConfig>;
/** What a caller may write (defaults optional). */
export type PopulationConfigInput = z.input<typeof PopulationConfig>;

/** A config that failed validation: `issues` name each bad field by its dotted path. A domain error: no HTTP status. */
export class ConfigError extends Error {
  readonly issues: { path: string; message: string }[];
  constructor(issues: { path: string; message: string }[]) {
    super(`invalid population config: ${issues.map((i) => `${i.path || "(root)"}: ${i.message}`).join("; ")}`);
    this.name = "ConfigError";
    this.issues = issues;
  }
}

/** Validates a config object; throws {@link ConfigError} naming every bad field. */
export function parsePopulationConfig(input: unknown): PopulationConfig {
  const r = PopulationConfig.safeParse(input);
  if (!r.success) {
    throw new ConfigError(r.error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message })));
  }
  return r.data;
}

/** Parses JSON text (a config file's contents); bad JSON is a {@link ConfigError} too. */
export function parsePopulationConfigJson(text: string): PopulationConfig {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ConfigError([{ path: "", message: `not JSON: ${e instanceof Error ? e.message : String(e)}` }]);
  }
  return parsePopulationConfig(value);
}

/** Reads and validates a JSON config file. */
export async function loadPopulationConfig(path: string): Promise<PopulationConfig> {
  return parsePopulationConfigJson(await readFile(path, "utf8"));
}

/**
 * Flags accepted by {@link configFromFlags} (for node:util `parseArgs`, all `type: "string"` except booleans), so a
 * CLI command can spread them into its own options table. Flags override the values of a `--config` file.
 */
export const POPULATION_CONFIG_FLAGS = {
  config: { type: "string" },
  model: { type: "string" },
  "privacy-mode": { type: "string" },
  "noise-multiplier": { type: "string" },
  accountant: { type: "string" },
  "noise-mechanism": { type: "string" },
  bits: { type: "string" },
  "min-clients": { type: "string" },
  "max-clients": { type: "string" },
  "corrupt-fraction": { type: "string" },
  cohort: { type: "string" },
  "target-epsilon": { type: "string" },
  delta: { type: "string" },
  "sampling-rate": { type: "string" },
  "expected-clients": { type: "string" },
  trainable: { type: "string" },
  "clip-norm": { type: "string" },
  adaptive: { type: "boolean" },
  "target-quantile": { type: "string" },
  "clip-lr": { type: "string" },
  "count-noise-std": { type: "string" },
  optimizer: { type: "string" },
  "server-lr": { type: "string" },
  momentum: { type: "string" },
  beta1: { type: "string" },
  beta2: { type: "string" },
  tau: { type: "string" },
  robust: { type: "string" },
  "trim-fraction": { type: "string" },
  "client-lr": { type: "string" },
  "local-epochs": { type: "string" },
  "client-batch-size": { type: "string" },
  "max-accuracy-drop": { type: "string" },
  "batch-size": { type: "string" },
  "update-dtype": { type: "string" },
} as const;

type FlagValues = Record<string, string | boolean | undefined>;

function num(flags: FlagValues, name: string, path: string): number | undefined {
  const v = flags[name];
  if (v === undefined || typeof v === "boolean") return undefined;
  const x = Number(v);
  if (v.trim() === "" || !Number.isFinite(x))
    throw new ConfigError([{ path, message: `--${name} must be a number, got ${JSON.stringify(v)}` }]);
  return x;
}

function str(flags: FlagValues, name: string): string | undefined {
  const v = flags[name];
  return typeof v === "string" ? v : undefined;
}

function setIn(target: Record<string, unknown>, path: string[], value: unknown): void {
  if (value === undefined) return;
  let o = target;
  for (const k of path.slice(0, -1)) {
    const next = o[k];
    if (next === undefined || next === null || typeof next !== "object") o[k] = {};
    o = o[k] as Record<string, unknown>;
  }
  o[path[path.length - 1]!] = value;
}

/**
 * Builds a config from CLI flag values (the keys of {@link POPULATION_CONFIG_FLAGS}) over an optional base object
 * (e.g. the parsed `--config` file) and validates it. `defaults` fill fields neither gives (e.g. simulate's q·N).
 */
export function configFromFlags(flags: FlagValues, base: Record<string, unknown> = {}): PopulationConfig {
  const c = structuredClone(base) as Record<string, unknown>;
  setIn(c, ["model"], str(flags, "model"));
  setIn(c, ["privacy", "mode"], str(flags, "privacy-mode"));
  setIn(c, ["privacy", "noiseMultiplier"], num(flags, "noise-multiplier", "privacy.noiseMultiplier"));
  setIn(c, ["privacy", "accountant"], str(flags, "accountant"));
  setIn(c, ["privacy", "mechanism"], str(flags, "noise-mechanism"));
  setIn(c, ["privacy", "distributed", "bits"], num(flags, "bits", "privacy.distributed.bits"));
  setIn(c, ["privacy", "distributed", "minClients"], num(flags, "min-clients", "privacy.distributed.minClients"));
  setIn(c, ["privacy", "distributed", "maxClients"], num(flags, "max-clients", "privacy.distributed.maxClients"));
  setIn(
    c,
    ["privacy", "distributed", "corruptFraction"],
    num(flags, "corrupt-fraction", "privacy.distributed.corruptFraction"),
  );
  setIn(c, ["privacy", "distributed", "cohort"], str(flags, "cohort"));
  setIn(c, ["privacy", "budget", "epsilon"], num(flags, "target-epsilon", "privacy.budget.epsilon"));
  setIn(c, ["privacy", "budget", "delta"], num(flags, "delta", "privacy.budget.delta"));
  setIn(c, ["samplingRate"], num(flags, "sampling-rate", "samplingRate"));
  setIn(c, ["expectedClients"], num(flags, "expected-clients", "expectedClients"));
  setIn(c, ["trainable"], str(flags, "trainable"));
  setIn(c, ["clipping", "clipNorm"], num(flags, "clip-norm", "clipping.clipNorm"));
  const adaptive =
    flags.adaptive === true || ["target-quantile", "clip-lr", "count-noise-std"].some((k) => flags[k] !== undefined);
  if (adaptive) {
    setIn(c, ["clipping", "adaptive"], (c.clipping as Record<string, unknown> | undefined)?.adaptive ?? {});
    setIn(
      c,
      ["clipping", "adaptive", "targetQuantile"],
      num(flags, "target-quantile", "clipping.adaptive.targetQuantile"),
    );
    setIn(c, ["clipping", "adaptive", "learningRate"], num(flags, "clip-lr", "clipping.adaptive.learningRate"));
    setIn(
      c,
      ["clipping", "adaptive", "countNoiseStd"],
      num(flags, "count-noise-std", "clipping.adaptive.countNoiseStd"),
    );
  }
  setIn(c, ["optimizer", "kind"], str(flags, "optimizer"));
  setIn(c, ["optimizer", "lr"], num(flags, "server-lr", "optimizer.lr"));
  setIn(c, ["optimizer", "momentum"], num(flags, "momentum", "optimizer.momentum"));
  setIn(c, ["optimizer", "beta1"], num(flags, "beta1", "optimizer.beta1"));
  setIn(c, ["optimizer", "beta2"], num(flags, "beta2", "optimizer.beta2"));
  setIn(c, ["optimizer", "epsilon"], num(flags, "tau", "optimizer.epsilon"));
  setIn(c, ["robust", "kind"], str(flags, "robust"));
  setIn(c, ["robust", "trimFraction"], num(flags, "trim-fraction", "robust.trimFraction"));
  setIn(c, ["client", "learningRate"], num(flags, "client-lr", "client.learningRate"));
  setIn(c, ["client", "localEpochs"], num(flags, "local-epochs", "client.localEpochs"));
  setIn(c, ["client", "batchSize"], num(flags, "client-batch-size", "client.batchSize"));
  setIn(c, ["publish", "maxAccuracyDrop"], num(flags, "max-accuracy-drop", "publish.maxAccuracyDrop"));
  setIn(c, ["batchSize"], num(flags, "batch-size", "batchSize"));
  setIn(c, ["updateDtype"], str(flags, "update-dtype"));
  return parsePopulationConfig(c);
}

/** The Backend optimizer options for a config's server optimizer (FedAvg = SGD η, FedAvgM = SGD with momentum). */
export function optimizerOptionsOf(c: PopulationConfig): {
  kind: "sgd" | "adam" | "yogi";
  lr: number;
  momentum: number;
  beta1: number;
  beta2: number;
  epsilon: number;
} {
  const o = c.optimizer;
  const kind = o.kind === "fedadam" ? "adam" : o.kind === "fedyogi" ? "yogi" : "sgd";
  return {
    kind,
    lr: o.lr,
    momentum: o.kind === "fedavgm" ? o.momentum : 0,
    beta1: o.beta1,
    beta2: o.beta2,
    epsilon: o.epsilon,
  };
}
