/**
 * @module
 * The demo's in-process work in a worker thread, so that it runs while the main thread starts the edge and drives the
 * served run (that thread mostly waits on the edge): the public-only models of every seed (seed 1's is handed to the
 * main thread as soon as it is trained: the served run starts from it), then the privacy–utility curve and the
 * non-private ceiling (`runInProcess`). {@link startInProcessWork} starts it; the worker rebuilds the data from the
 * same seeds (`demoData` is deterministic), so only the job list and the seed-1 model cross the thread boundary.
 */
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { createBackend } from "@fedge/gpu-node";
import type { MlpParams } from "@fedge/ml";
import { int8Accuracy, runInProcess, type InProcessRun } from "./in-process.ts";
import { demoData, pretrainPublic, type FederatedRecipe } from "./setting.ts";

/** One in-process run: the recipe at a target ε (`null`: non-private) for one seed. */
export interface InProcessJob {
  /** curve, ceiling, or one side of the central-vs-distributed comparison (`--privacy distributed`). */
  kind: "curve" | "ceiling" | "modes";
  epsilon: number | null;
  /** DP mechanism of a private job. @default "central" */
  privacy?: "central" | "distributed";
  seed: number;
  recipe: FederatedRecipe;
  /** Measure every round (the accuracy-by-round plot), not only the last. */
  everyRound?: boolean;
}

/** What the worker is given. */
export interface InProcessWork {
  clients: number;
  publicSamples: number;
  labelsPerClient: number;
  delta: number;
  seeds: number;
  /** Epochs of public pretraining (undefined: the recipe's). */
  pretrainEpochs?: number;
  jobs: InProcessJob[];
}

/** What comes back: (a) for every seed, and every job's run (without its model). */
export interface InProcessResults {
  publicOnly: { seed: number; accuracy: number }[];
  runs: (Omit<InProcessRun, "model"> & { kind: InProcessJob["kind"] })[];
}

type Message =
  { type: "log"; line: string } | { type: "seed1"; model: MlpParams } | { type: "done"; results: InProcessResults };

/**
 * Does the work of {@link InProcessWork} (in whatever thread calls it); `onSeed1` gets seed 1's public model as soon as
 * it is trained.
 */
export async function doInProcessWork(
  w: InProcessWork,
  log: (line: string) => void,
  onSeed1: (model: MlpParams) => void = () => undefined,
): Promise<InProcessResults> {
  const data = new Map<number, ReturnType<typeof demoData>>();
  const dataOf = (seed: number) => {
    let d = data.get(seed);
    if (!d) {
      d = demoData({ clients: w.clients, publicSamples: w.publicSamples, labelsPerClient: w.labelsPerClient, seed });
      data.set(seed, d);
    }
    return d;
  };
  const models = new Map<number, MlpParams>();
  const publicOnly: InProcessResults["publicOnly"] = [];
  for (let s = 1; s <= w.seeds; s++) {
    const t = performance.now();
    const d = dataOf(s);
    const model = pretrainPublic(d.public, { seed: s, ...(w.pretrainEpochs ? { epochs: w.pretrainEpochs } : {}) });
    models.set(s, model);
    const accuracy = int8Accuracy(model, d.test);
    publicOnly.push({ seed: s, accuracy });
    if (s === 1) onSeed1(model);
    log(
      `(a) public-only, seed ${s}: ${(accuracy * 100).toFixed(2)}% (int8 weights, ${((performance.now() - t) / 1000).toFixed(0)} s to pretrain)`,
    );
  }
  const backend = await createBackend({ prefer: "cpu", log: () => undefined });
  const runs: InProcessResults["runs"] = [];
  try {
    for (const job of w.jobs) {
      const d = dataOf(job.seed);
      const { model: _model, ...run } = await runInProcess({
        backend,
        devices: d.devices,
        heldOut: d.test,
        initial: models.get(job.seed)!,
        recipe: job.recipe,
        epsilon: job.epsilon,
        ...(job.privacy ? { privacy: job.privacy } : {}),
        delta: w.delta,
        seed: job.seed,
        everyRound: job.everyRound ?? false,
      });
      runs.push({ ...run, kind: job.kind });
      log(
        `${jobLabel(job)}, seed ${job.seed}: ` +
          `${(run.final * 100).toFixed(2)}% (in process, ${run.seconds.toFixed(0)} s)`,
      );
    }
  } finally {
    await backend.dispose();
  }
  return { publicOnly, runs };
}

function jobLabel(job: InProcessJob): string {
  if (job.kind === "ceiling") return "(d) non-private ceiling";
  if (job.kind === "modes")
    return `(e) ${job.privacy ?? "central"}, fixed C = ${job.recipe.clip.initial}, ε = ${job.epsilon}`;
  return `(c) ε = ${job.epsilon}`;
}

/** The running work: seed 1's public model, the results, and a way to stop it (when the demo fails elsewhere). */
export interface InProcessHandle {
  seed1: Promise<MlpParams>;
  results: Promise<InProcessResults>;
  terminate(): Promise<void>;
}

/** Starts {@link doInProcessWork} in a worker thread; progress lines go to `log`. */
export function startInProcessWork(w: InProcessWork, log: (line: string) => void): InProcessHandle {
  const worker = new Worker(new URL(import.meta.url), { workerData: w });
  let gotSeed1: (m: MlpParams) => void = () => undefined;
  let failSeed1: (e: unknown) => void = () => undefined;
  const seed1 = new Promise<MlpParams>((resolve, reject) => {
    gotSeed1 = resolve;
    failSeed1 = reject;
  });
  const results = new Promise<InProcessResults>((resolve, reject) => {
    let done = false;
    const fail = (e: unknown) => {
      failSeed1(e);
      reject(e);
    };
    worker.on("message", (m: Message) => {
      if (m.type === "log") log(m.line);
      else if (m.type === "seed1") gotSeed1(m.model);
      else {
        done = true;
        resolve(m.results);
      }
    });
    worker.on("error", fail);
    worker.on("exit", (code) => {
      if (!done) fail(new Error(`the in-process worker exited with code ${code} before it finished`));
    });
  });
  // a failure surfaces when awaited; until then it must not count as unhandled
  seed1.catch(() => undefined);
  results.catch(() => undefined);
  return {
    seed1,
    results,
    terminate: async () => {
      await worker.terminate();
    },
  };
}

if (!isMainThread && parentPort && (workerData as InProcessWork | undefined)?.jobs) {
  const port = parentPort;
  const results = await doInProcessWork(
    workerData as InProcessWork,
    (line) => port.postMessage({ type: "log", line } satisfies Message),
    (model) => port.postMessage({ type: "seed1", model } satisfies Message),
  );
  port.postMessage({ type: "done", results } satisfies Message);
}
