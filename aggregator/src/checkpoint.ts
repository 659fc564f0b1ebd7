/**
 * @module
 * The aggregator's durable state between (and inside) rounds, and its atomic on-disk form.
 *
 * State: the global model (every layer), the server optimizer state (its `weights` are always the trainable slice of
 * the model), the clip state (adaptive clipping), the privacy ledger, the round counter, the round in progress
 * (`current`: id + phase), the serving version and the publish log.
 *
 * Directory layout: `state.json` (everything but the big arrays, with the names and SHA-256 of the blobs) plus the
 * blobs `g<gen>-model.f32`, `g<gen>-m.f32`, `g<gen>-v.f32` (little-endian float32). A save writes the new
 * generation's blobs, then `state.json.tmp`, fsyncs, and renames it over `state.json` (the commit point, atomic on
 * POSIX), then deletes older generations. A crash at any moment leaves either the old or the new checkpoint whole.
 */
import { createHash } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { type MlpParams } from "@fedge/ml";
import type { OptimizerState } from "@fedge/gpu-node";
import { LedgerState } from "@fedge/privacy";
import type { ClipState } from "./strategy/strategy.ts";

/** Phase of the round in progress. `opened`: recorded in the ledger, not aggregated; `aggregated`: the new model is in the checkpoint, publish pending. */
export type RoundPhase = "opened" | "aggregated";

/** JSON-safe summary of an aggregated round (a clip norm of `null` means no clipping). */
export interface RoundSummary {
  round: number;
  roundId: string;
  count: number;
  unclippedCount: number;
  clipNorm: number | null;
  noiseStd: number;
  /** Central mode's noise mechanism. */
  mechanism?: "discrete-gaussian" | "gaussian" | "distributed-discrete-gaussian";
  /** `discrete-gaussian`: how much the grid inflated σ over z_Δ·C (z is unchanged). */
  noiseInflation?: number;
  denominator: number;
  nextClipNorm: number;
  noisyUnclippedFraction?: number;
  /** ε spent after this round at the budget's δ (`null` for a non-DP population). */
  epsilon: number | null;
  delta: number | null;
  warnings: string[];
}

/** The round in progress. */
export interface CurrentRound {
  roundId: string;
  /** Its 1-based number. */
  round: number;
  phase: RoundPhase;
  openedAt: string;
  /** Distributed mode: the round's public rotation seed (base64url of 32 bytes), drawn when it opened. */
  rotationSeed?: string;
  /** Set when phase is `aggregated`. */
  summary?: RoundSummary;
}

/** One publish decision (kept for audit and rollback). */
export interface PublishRecord {
  roundId: string;
  round: number;
  published: boolean;
  /** Version published (when `published`). */
  version?: number | undefined;
  /** Candidate's held-out accuracy, when evaluated (the edge runner: of its int8 export; `fedge simulate`: float32). */
  accuracy?: number | undefined;
  /** Why it was (not) published. */
  reason: string;
  at: string;
}

/** The version the edge serves. */
export interface ServingVersion {
  version: number;
  round: number;
  accuracy?: number | undefined;
  sha256?: string | undefined;
}

export interface Checkpoint {
  version: 1;
  population: string;
  trainable: "all" | "head";
  /** Rounds closed so far (aggregated, or abandoned after opening); the next round is `round + 1`. */
  round: number;
  model: MlpParams;
  optimizer: OptimizerState;
  clip: ClipState;
  /** The privacy ledger (`null` for non-DP populations). */
  ledger: LedgerState | null;
  current: CurrentRound | null;
  serving: ServingVersion | null;
  publishLog: PublishRecord[];
}

/**
 * Why a checkpoint cannot be used:
 * - `corrupt`: it cannot be read (corrupt JSON, a blob with a wrong hash, bad shapes);
 * - `config_mismatch`: it was written for another population config (model, trainable scope, optimizer, DP or not).
 */
export type CheckpointErrorReason = "corrupt" | "config_mismatch";

/** A checkpoint that cannot be used (see {@link CheckpointErrorReason}). A domain error: no HTTP status. */
export class CheckpointError extends Error {
  readonly reason: CheckpointErrorReason;
  constructor(message: string, options: { reason?: CheckpointErrorReason; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CheckpointError";
    this.reason = options.reason ?? "corrupt";
  }
}

const AdaptiveState = z.object({
  clipNorm: z.number().positive(),
  targetQuantile: z.number(),
  learningRate: z.number(),
  countNoiseStd: z.number(),
});
const Blob = z.object({
  file: z.string().regex(/^g\d+-[a-z]+\.f32$/),
  length: z.number().int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
const StateFile = z.object({
  version: z.literal(1),
  generation: z.number().int().min(1),
  population: z.string().min(1),
  trainable: z.enum(["all", "head"]),
  round: z.number().int().min(0),
  layers: z
    .array(
      z.object({
        inFeatures: z.number().int().positive(),
        outFeatures: z.number().int().positive(),
        activation: z.enum(["relu", "none"]),
      }),
    )
    .min(1),
  optimizer: z.object({ kind: z.enum(["sgd", "adam", "yogi"]), step: z.number().int().min(0) }),
  blobs: z.object({ model: Blob, m: Blob, v: Blob }),
  clip: z.object({ clipNorm: z.number().positive().nullable(), adaptive: AdaptiveState.optional() }),
  ledger: LedgerState.nullable(),
  current: z
    .object({
      roundId: z.string().min(1),
      round: z.number().int().min(1),
      phase: z.enum(["opened", "aggregated"]),
      openedAt: z.string(),
      rotationSeed: z
        .string()
        .regex(/^[A-Za-z0-9_-]{43}$/)
        .optional(),
      summary: z.any().optional(),
    })
    .nullable(),
  serving: z
    .object({
      version: z.number().int().min(1),
      round: z.number().int().min(0),
      accuracy: z.number().optional(),
      sha256: z.string().optional(),
    })
    .nullable(),
  publishLog: z.array(
    z.object({
      roundId: z.string(),
      round: z.number().int(),
      published: z.boolean(),
      version: z.number().int().optional(),
      accuracy: z.number().optional(),
      reason: z.string(),
      at: z.string(),
    }),
  ),
});
type StateFile = z.infer<typeof StateFile>;

const STATE = "state.json";

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

async function writeDurable(path: string, bytes: Uint8Array | string): Promise<void> {
  const fh = await open(path, "w", 0o600);
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // some filesystems refuse fsync on a directory; the rename is still atomic
  }
}

/** Every layer's W then b, in order (the `all` layout). */
function modelVector(model: MlpParams): Float32Array {
  const n = model.layers.reduce((s, l) => s + l.weight.length + l.bias.length, 0);
  const out = new Float32Array(n);
  let o = 0;
  for (const l of model.layers) {
    out.set(l.weight, o);
    o += l.weight.length;
    out.set(l.bias, o);
    o += l.bias.length;
  }
  return out;
}

/** Options of {@link CheckpointStore}. */
export interface CheckpointStoreOptions {
  /** Directory that holds the checkpoint (created on first save, mode 0700). */
  dir: string;
  /**
   * Test hook: called after the blobs are written and before `state.json` is committed (throw to simulate a crash
   * in the middle of a save).
   */
  beforeCommit?: () => void | Promise<void>;
}

/** Reads and atomically writes {@link Checkpoint}s in one directory. */
export class CheckpointStore {
  readonly dir: string;
  private readonly beforeCommit: (() => void | Promise<void>) | undefined;
  private generation = 0;

  constructor(options: CheckpointStoreOptions) {
    if (!options || typeof options.dir !== "string" || options.dir.length === 0) {
      throw new TypeError("CheckpointStore: dir must be a non-empty path");
    }
    this.dir = options.dir;
    this.beforeCommit = options.beforeCommit;
  }

  /** The last committed checkpoint, or `null` if the directory holds none. Throws {@link CheckpointError} if corrupt. */
  async load(): Promise<Checkpoint | null> {
    let text: string;
    try {
      text = await readFile(join(this.dir, STATE), "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
    let s: StateFile;
    try {
      s = StateFile.parse(JSON.parse(text));
    } catch (e) {
      throw new CheckpointError(
        `${join(this.dir, STATE)} is not a valid checkpoint: ${e instanceof Error ? e.message : String(e)}`,
        { cause: e },
      );
    }
    const readBlob = async (b: z.infer<typeof Blob>): Promise<Float32Array> => {
      const bytes = await readFile(join(this.dir, b.file));
      if (bytes.length !== b.length * 4 || sha256(bytes) !== b.sha256) {
        throw new CheckpointError(`checkpoint blob ${b.file} does not match its recorded length/sha256`);
      }
      const out = new Float32Array(b.length);
      f32Bytes(out).set(bytes);
      return out;
    };
    const all = await readBlob(s.blobs.model);
    const expected = s.layers.reduce((n, l) => n + l.inFeatures * l.outFeatures + l.outFeatures, 0);
    if (all.length !== expected)
      throw new CheckpointError(`model blob has ${all.length} values, layers need ${expected}`);
    let o = 0;
    const model: MlpParams = {
      layers: s.layers.map((l) => {
        const weight = all.slice(o, o + l.inFeatures * l.outFeatures);
        o += weight.length;
        const bias = all.slice(o, o + l.outFeatures);
        o += bias.length;
        return { ...l, weight, bias };
      }),
    };
    const trainableIdx = s.trainable === "head" ? [model.layers.length - 1] : model.layers.map((_, i) => i);
    const weights = new Float32Array(
      trainableIdx.reduce((n, i) => n + model.layers[i]!.weight.length + model.layers[i]!.bias.length, 0),
    );
    let w = 0;
    for (const i of trainableIdx) {
      weights.set(model.layers[i]!.weight, w);
      w += model.layers[i]!.weight.length;
      weights.set(model.layers[i]!.bias, w);
      w += model.layers[i]!.bias.length;
    }
    this.generation = Math.max(this.generation, s.generation);
    return {
      version: 1,
      population: s.population,
      trainable: s.trainable,
      round: s.round,
      model,
      optimizer: {
        kind: s.optimizer.kind,
        step: s.optimizer.step,
        weights,
        m: await readBlob(s.blobs.m),
        v: await readBlob(s.blobs.v),
      },
      clip: { clipNorm: s.clip.clipNorm ?? Infinity, ...(s.clip.adaptive ? { adaptive: s.clip.adaptive } : {}) },
      ledger: s.ledger,
      current: s.current ? (s.current as CurrentRound) : null,
      serving: s.serving,
      publishLog: s.publishLog,
    };
  }

  /** Atomically replaces the checkpoint (see the module header). */
  async save(c: Checkpoint): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    if (this.generation === 0) {
      // a fresh store over an existing directory continues its generation numbering
      try {
        const prev = JSON.parse(await readFile(join(this.dir, STATE), "utf8")) as { generation?: unknown };
        if (typeof prev.generation === "number") this.generation = prev.generation;
      } catch {
        // no previous state
      }
    }
    const gen = this.generation + 1;
    const blob = async (name: string, a: Float32Array) => {
      const file = `g${gen}-${name}.f32`;
      const bytes = f32Bytes(a);
      await writeDurable(join(this.dir, file), bytes);
      return { file, length: a.length, sha256: sha256(bytes) };
    };
    const state: StateFile = {
      version: 1,
      generation: gen,
      population: c.population,
      trainable: c.trainable,
      round: c.round,
      layers: c.model.layers.map((l) => ({
        inFeatures: l.inFeatures,
        outFeatures: l.outFeatures,
        activation: l.activation,
      })),
      optimizer: { kind: c.optimizer.kind, step: c.optimizer.step },
      blobs: {
        model: await blob("model", modelVector(c.model)),
        m: await blob("m", c.optimizer.m),
        v: await blob("v", c.optimizer.v),
      },
      clip: {
        clipNorm: Number.isFinite(c.clip.clipNorm) ? c.clip.clipNorm : null,
        ...(c.clip.adaptive ? { adaptive: c.clip.adaptive } : {}),
      },
      ledger: c.ledger,
      current: c.current,
      serving: c.serving,
      publishLog: c.publishLog,
    };
    await this.beforeCommit?.();
    const tmp = join(this.dir, `${STATE}.tmp`);
    await writeDurable(tmp, JSON.stringify(state));
    await rename(tmp, join(this.dir, STATE));
    await syncDir(this.dir);
    this.generation = gen;
    for (const f of await readdir(this.dir)) {
      const m = /^g(\d+)-[a-z]+\.f32$/.exec(f);
      if (m && Number(m[1]) !== gen) await unlink(join(this.dir, f)).catch(() => undefined);
    }
  }
}
