/**
 * @module
 * What the accumulator, optimizer and quantizer of one webgpu backend share: the opened device, its compiled
 * pipelines (one per kernel of `kernels.ts`, compiled once per backend), the spare-buffer pool, and small helpers to
 * encode a pass, read a buffer back and turn device errors into exceptions.
 */
import { BackendError } from "../errors.ts";
import { BufferPool } from "./buffer-pool.ts";
import { MAP_READ, Usage, type GpuContext } from "./device.ts";
import { ABSMAX, ACCUMULATE, FINISH, NORM_PARTIALS, OPTIMIZER, QUANTIZE, WORKGROUP } from "./kernels.ts";

/** Most elements one 1-D dispatch of `WORKGROUP` invocations can cover (65,535 workgroups per dimension). */
export const MAX_DISPATCH_ELEMENTS = 65535 * WORKGROUP;
/** Usage of every per-parameter buffer (bound as storage, written from the host, copied out). */
export const STORAGE = Usage.STORAGE | Usage.COPY_DST | Usage.COPY_SRC;
/** Usage of a staging buffer the host maps to read results. */
export const READBACK = MAP_READ | Usage.COPY_DST;

interface Pipelines {
  norm: GPUComputePipeline;
  accumulate: GPUComputePipeline;
  finish: GPUComputePipeline;
  optimizer: GPUComputePipeline;
  absmax: GPUComputePipeline;
  quantize: GPUComputePipeline;
}

/** Device helpers of one backend. */
export class Gpu {
  readonly ctx: GpuContext;
  readonly device: GPUDevice;
  readonly p: Pipelines;
  readonly pool: BufferPool;

  constructor(ctx: GpuContext) {
    this.ctx = ctx;
    this.device = ctx.device;
    const make = (code: string): GPUComputePipeline =>
      this.device.createComputePipeline({
        layout: "auto",
        compute: { module: this.device.createShaderModule({ code }), entryPoint: "main" },
      });
    this.p = {
      norm: make(NORM_PARTIALS),
      accumulate: make(ACCUMULATE),
      finish: make(FINISH),
      optimizer: make(OPTIMIZER),
      absmax: make(ABSMAX),
      quantize: make(QUANTIZE),
    };
    this.pool = new BufferPool((bytes, usage) => this.buffer(bytes, usage));
  }

  /** A new buffer of at least `bytes`, rounded up to whole words and to the 16 bytes a uniform needs. */
  buffer(bytes: number, usage: number): GPUBuffer {
    return this.device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 4) * 4), usage });
  }

  storage(bytes: number): GPUBuffer {
    return this.buffer(bytes, STORAGE);
  }

  uniform(words: ArrayBuffer): GPUBuffer {
    const b = this.buffer(words.byteLength, Usage.UNIFORM | Usage.COPY_DST);
    this.device.queue.writeBuffer(b, 0, words);
    return b;
  }

  bind(pipeline: GPUComputePipeline, buffers: GPUBuffer[]): GPUBindGroup {
    return this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
  }

  /** Encodes one pass of dispatches (bind group, workgroups x, y) and submits it; `then` appends copies. */
  dispatch(
    pipeline: GPUComputePipeline,
    jobs: [GPUBindGroup, number, number?][],
    then?: (enc: GPUCommandEncoder) => void,
  ): void {
    const enc = this.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    for (const [bg, x, y] of jobs) {
      pass.setBindGroup(0, bg);
      pass.dispatchWorkgroups(x, y ?? 1);
    }
    pass.end();
    then?.(enc);
    this.device.queue.submit([enc.finish()]);
  }

  /** Copies `bytes` of `src` through a staging buffer to the host. */
  async read(staging: GPUBuffer, src: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(src, 0, staging, 0, bytes);
    this.device.queue.submit([enc.finish()]);
    await staging.mapAsync(MAP_READ, 0, bytes);
    const out = staging.getMappedRange(0, bytes).slice(0);
    staging.unmap();
    return out;
  }

  /**
   * Runs `fn` inside validation and out-of-memory error scopes (WebGPU reports those asynchronously, not as
   * exceptions); device errors become `BackendError("device_error")`.
   */
  async scoped<T>(fn: () => Promise<T>): Promise<T> {
    this.device.pushErrorScope("out-of-memory");
    this.device.pushErrorScope("validation");
    let result: T | undefined;
    let failure: unknown;
    let failed = false;
    try {
      result = await fn();
    } catch (e) {
      failure = e;
      failed = true;
    }
    const validation = await this.device.popErrorScope();
    const oom = await this.device.popErrorScope();
    if (failed) throw failure;
    const err = validation ?? oom;
    if (err) throw new BackendError("device_error", `webgpu device error: ${err.message}`);
    return result as T;
  }
}
