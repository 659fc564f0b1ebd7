/**
 * @module
 * Entry of a cpu-backend worker thread (started by `threads.ts`): instantiates the SIMD module over the backend's
 * shared memory and runs the jobs it receives (`tasks.ts`: it claims pieces until none is left), answering `{ id }`
 * when done or `{ id, error }`.
 */
import { parentPort, workerData } from "node:worker_threads";
import { instantiateSimd } from "./simd.ts";
import { runJob, type Job } from "./tasks.ts";

interface Init {
  memory: WebAssembly.Memory;
  module: WebAssembly.Module;
}

const init = workerData as Init;
const kernels = instantiateSimd(init.memory, init.module);
const port = parentPort!;
port.on("message", (m: { id: number; job: Job }) => {
  try {
    runJob(kernels, m.job);
    port.postMessage({ id: m.id });
  } catch (e) {
    port.postMessage({ id: m.id, error: e instanceof Error ? e.message : String(e) });
  }
});
