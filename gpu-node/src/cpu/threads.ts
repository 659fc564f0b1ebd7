/**
 * @module
 * The worker threads of a cpu backend (node:worker_threads). Each worker runs `worker.ts` over the backend's shared
 * memory; {@link ThreadPool.run} sends a job to each worker and resolves when all have answered.
 *
 * Process exit: a worker is `unref()`ed while idle, so a backend that was never disposed does not keep the process
 * alive, and `ref()`ed while it has work in flight, so an awaited `add()` cannot be cut short by the process exiting.
 * `terminate()` (called by `Backend.dispose()`) stops the workers; pending runs then reject with `BackendError("disposed")`.
 */
import { Worker } from "node:worker_threads";
import { BackendError } from "../errors.ts";
import type { Job } from "./tasks.ts";

/**
 * The worker's entry: `worker.ts` beside this file when run from source (type stripping), `cpu-worker.js` beside the
 * chunk in the published build (scripts/pack.ts builds `src/cpu/worker.ts` as that entry).
 */
const WORKER_URL = import.meta.url.endsWith(".ts")
  ? new URL("./worker.ts", import.meta.url)
  : new URL("./cpu-worker.js", import.meta.url);

interface Pending {
  resolve: () => void;
  reject: (e: Error) => void;
}

class PoolWorker {
  readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private failure: Error | null = null;

  constructor(memory: WebAssembly.Memory, module: WebAssembly.Module) {
    this.worker = new Worker(WORKER_URL, { workerData: { memory, module } });
    this.worker.unref();
    this.worker.on("message", (m: { id: number; error?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) this.worker.unref();
      if (m.error === undefined) p.resolve();
      else p.reject(new BackendError("worker_failed", `cpu worker failed: ${m.error}`));
    });
    this.worker.on("error", (e) => this.fail(new BackendError("worker_failed", `cpu worker crashed: ${e.message}`)));
    this.worker.on("exit", (code) => this.fail(new BackendError("worker_failed", `cpu worker exited (code ${code})`)));
  }

  get failed(): boolean {
    return this.failure !== null;
  }

  fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }

  run(job: Job): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, job });
    });
  }
}

export class ThreadPool {
  private readonly workers: PoolWorker[];

  /** Starts `size` workers over `memory` (they finish loading in the background; the first run waits for them). */
  constructor(size: number, memory: WebAssembly.Memory, module: WebAssembly.Module) {
    this.workers = Array.from({ length: size }, () => new PoolWorker(memory, module));
  }

  get size(): number {
    return this.workers.length;
  }

  /** Whether a worker crashed, exited or was terminated (its runs reject; the pool should not be used any more). */
  get broken(): boolean {
    return this.workers.some((w) => w.failed);
  }

  /**
   * Sends `jobs[i]` to worker i; resolves when every worker has answered. Rejects only once every worker has
   * answered or failed, so no worker is still running the job when the caller unwinds.
   */
  async run(jobs: Job[]): Promise<void> {
    const settled = await Promise.allSettled(jobs.map((job, i) => this.workers[i]!.run(job)));
    for (const s of settled) if (s.status === "rejected") throw s.reason;
  }

  /** Stops every worker; pending and later runs reject. */
  async terminate(): Promise<void> {
    const gone = new BackendError("disposed", "backend was already disposed");
    await Promise.all(
      this.workers.map(async (w) => {
        w.fail(gone);
        await w.worker.terminate();
      }),
    );
  }
}
