/**
 * @module
 * The demo's in-process work in a worker thread, so that it runs while the main thread drives the served run (whose
 * thread mostly waits on the edge): the public-only models of seeds 2…S, then the privacy–utility curve and the
 * non-private ceiling (`runInProcess`). {@link startInProcessWork} starts it; the worker rebuilds the data from the
 * same seeds (`demoData` is deterministic), so only the seed-1 public model and the job list cross the thread boundary.
 */
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { createBackend } from "@fedge/gpu-node";
import type { MlpParams } from "@fedge/ml";
import { int8Accuracy, runInProcess, type InProcessRun } from "./in-process.ts";
import { demoData, pretrainPublic, type FederatedRecipe } from "./setting.ts";

/** One in-process run: the recipe at a target ε (`null`: non-private) for one seed. */
export interface InProcessJob {
  kind: "curve" | "ceiling";
  epsilon: number | null;
  seed: number;
  recipe: FederatedRecipe;
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
  /** The public model of seed 1 (already trained by the main thread). */
  seed1: MlpParams;
  jobs: InProcessJob[];
}

/** What comes back: (a) for seeds 2…S, and every job's run (without its model). */
export interface InProcessResults {
  publicOnly: { seed: number; accuracy: number }[];
  runs: (Omit<InProcessRun, "model"> & { kind: InProcessJob["kind"] })[];
}

type Message = { type: "log"; line: string } | { type: "done"; results: InProcessResults };

/** Does the work of {@link InProcessWork} (in whatever thread calls it). */
export async function doInProcessWork(w: InProcessWork, log: (line: string) => void): Promise<InProcessResults> {
  const data = new Map<number, ReturnType<typeof demoData>>();
  const dataOf = (seed: number) => {
    let d = data.get(seed);
    if (!d) {
      d = demoData({ clients: w.clients, publicSamples: w.publicSamples, labelsPerClient: w.labelsPerClient, seed });
      data.set(seed, d);
    }
    return d;
  };
  const models = new Map<number, MlpParams>([[1, w.seed1]]);
  const publicOnly: InProcessResults["publicOnly"] = [];
  for (let s = 2; s <= w.seeds; s++) {
    const t = performance.now();
    const d = dataOf(s);
    const model = pretrainPublic(d.public, { seed: s, ...(w.pretrainEpochs ? { epochs: w.pretrainEpochs } : {}) });
    models.set(s, model);
    const accuracy = int8Accuracy(model, d.test);
    publicOnly.push({ seed: s, accuracy });
    log(
      `(a) public-only, seed ${s}: ${(accuracy * 100).toFixed(2)}% (in process, ${((performance.now() - t) / 1000).toFixed(0)} s)`,
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
        delta: w.delta,
        seed: job.seed,
      });
      runs.push({ ...run, kind: job.kind });
      log(
        `${job.kind === "ceiling" ? "(d) non-private ceiling" : `(c) ε = ${job.epsilon}`}, seed ${job.seed}: ` +
          `${(run.final * 100).toFixed(2)}% (in process, ${run.seconds.toFixed(0)} s)`,
      );
    }
  } finally {
    await backend.dispose();
  }
  return { publicOnly, runs };
}

/** The running work: its results, and a way to stop it (when the demo fails elsewhere). */
export interface InProcessHandle {
  results: Promise<InProcessResults>;
  terminate(): Promise<void>;
}

/** Starts {@link doInProcessWork} in a worker thread; progress lines go to `log`. */
export function startInProcessWork(w: InProcessWork, log: (line: string) => void): InProcessHandle {
  const worker = new Worker(new URL(import.meta.url), { workerData: w });
  const results = new Promise<InProcessResults>((resolve, reject) => {
    let done = false;
    worker.on("message", (m: Message) => {
      if (m.type === "log") log(m.line);
      else {
        done = true;
        resolve(m.results);
      }
    });
    worker.on("error", reject);
    worker.on("exit", (code) => {
      if (!done) reject(new Error(`the in-process worker exited with code ${code} before it finished`));
    });
  });
  // a failure surfaces when `results` is awaited; until then it must not count as unhandled
  results.catch(() => undefined);
  return {
    results,
    terminate: async () => {
      await worker.terminate();
    },
  };
}

if (!isMainThread && parentPort && (workerData as InProcessWork | undefined)?.jobs) {
  const port = parentPort;
  const results = await doInProcessWork(workerData as InProcessWork, (line) =>
    port.postMessage({ type: "log", line } satisfies Message),
  );
  port.postMessage({ type: "done", results } satisfies Message);
}
