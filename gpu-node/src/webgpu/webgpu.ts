/**
 * @module
 * The `webgpu` backend: WGSL kernels (`kernels.ts`) through Dawn (`device.ts`), with the same results as the cpu
 * reference (see `backend.ts` for the canonical arithmetic and the stated tolerances). This file opens the device and
 * wires the parts together: `accumulator.ts` (clip + accumulate + noise, streamed in chunks), `optimizer.ts` (server
 * optimizers kept on the device), `quantize.ts` (int8 export), over the shared helpers of `gpu.ts`.
 */
import {
  checkAccumulatorOptions,
  checkOptimizerOptions,
  checkQuantizeInput,
  disposed,
  type AccumulatorOptions,
  type Backend,
  type OptimizerOptions,
  type QuantizedInt8,
  type ServerOptimizer,
} from "../backend.ts";
import { BackendError } from "../errors.ts";
import { WebGpuAccumulator } from "./accumulator.ts";
import { describeAdapter, openDevice } from "./device.ts";
import { Gpu } from "./gpu.ts";
import { WebGpuOptimizer } from "./optimizer.ts";
import { quantizeOnDevice } from "./quantize.ts";

/** Options of {@link openWebGpuBackend}. */
export interface WebGpuBackendOptions {
  /**
   * Updates per dispatch (K rows uploaded and accumulated together).
   * @default 16
   */
  batchSize?: number;
  /**
   * Largest number of elements per chunk (per buffer binding); smaller values force streaming (tests use this).
   * Always capped so that one chunk of a batch fits `maxStorageBufferBindingSize` and one dispatch.
   * @default the largest that fits
   */
  chunkLength?: number;
  /**
   * The adapter to open (`createBackend` passes the one it has already inspected, so it is not requested twice).
   * @default the high-performance adapter from `requestAdapter()`
   */
  adapter?: GPUAdapter;
}

/** Validates the options; returns the batch size (default 16) and chunk length. Shared with `createBackend`. */
export function checkWebGpuOptions(options: WebGpuBackendOptions): { batchSize: number; chunkLength?: number } {
  const batchSize = options.batchSize ?? 16;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 65535) {
    throw new BackendError(
      "invalid_argument",
      `batchSize must be an integer in [1, 65535], got ${String(options.batchSize)}`,
    );
  }
  const chunkLength = options.chunkLength;
  if (chunkLength !== undefined && (!Number.isInteger(chunkLength) || chunkLength < 1)) {
    throw new BackendError("invalid_argument", `chunkLength must be an integer >= 1, got ${String(chunkLength)}`);
  }
  return chunkLength === undefined ? { batchSize } : { batchSize, chunkLength };
}

/** A webgpu `Backend` plus its adapter description. */
export interface WebGpuBackend extends Backend {
  readonly kind: "webgpu";
  /** Adapter info as reported by Dawn. */
  readonly adapterInfo: GPUAdapterInfo;
  /** Creates the accumulator with its concrete type (benchmark hooks). */
  createAccumulator(opts: AccumulatorOptions): Promise<WebGpuAccumulator>;
}

/** Opens the webgpu backend; resolves to null when no adapter exists (never throws for a missing GPU). */
export async function openWebGpuBackend(options: WebGpuBackendOptions = {}): Promise<WebGpuBackend | null> {
  const { batchSize, chunkLength } = checkWebGpuOptions(options);
  const ctx = await openDevice(options.adapter);
  if (!ctx) return null;
  const g = new Gpu(ctx);
  let live = true;
  const alive = (): void => {
    if (!live) throw disposed("backend");
  };
  return {
    kind: "webgpu",
    description: `webgpu (${describeAdapter(ctx.adapterInfo)})`,
    adapterInfo: ctx.adapterInfo,
    async createAccumulator(opts: AccumulatorOptions): Promise<WebGpuAccumulator> {
      alive();
      checkAccumulatorOptions(opts);
      return g.scoped(async () => new WebGpuAccumulator(g, opts, batchSize, chunkLength));
    },
    async createOptimizer(opts: OptimizerOptions): Promise<ServerOptimizer> {
      alive();
      const p = checkOptimizerOptions(opts);
      return g.scoped(async () => new WebGpuOptimizer(g, p, opts.initialWeights, chunkLength));
    },
    async quantizePerChannelInt8(
      weight: Float32Array,
      inFeatures: number,
      outFeatures: number,
    ): Promise<QuantizedInt8> {
      alive();
      checkQuantizeInput(weight, inFeatures, outFeatures);
      return g.scoped(() => quantizeOnDevice(g, weight, inFeatures, outFeatures, chunkLength));
    },
    async dispose(): Promise<void> {
      if (!live) return;
      live = false;
      await ctx.device.queue.onSubmittedWorkDone();
      ctx.device.destroy();
    },
  };
}
