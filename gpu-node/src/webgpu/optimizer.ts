/**
 * @module
 * The webgpu server optimizer: weights and moments stay on the device between rounds, chunked like the accumulator's
 * buffers; one dispatch per chunk and step (the `OPTIMIZER` kernel of `kernels.ts`, float32, within the stated
 * tolerance of the cpu reference's float64).
 */
import {
  checkDelta,
  checkState,
  disposed,
  type OptimizerKind,
  type OptimizerParams,
  type OptimizerState,
  type ServerOptimizer,
} from "../backend.ts";
import { MAX_DISPATCH_ELEMENTS, READBACK, type Gpu } from "./gpu.ts";
import { WORKGROUP } from "./kernels.ts";

/** The kernel's `kind` switch (1, sgd with momentum, is picked in the constructor). */
const KIND_CODE: Record<OptimizerKind, number> = { sgd: 0, adam: 2, yogi: 3 };

interface OptChunk {
  off: number;
  n: number;
  x: GPUBuffer;
  m: GPUBuffer;
  v: GPUBuffer;
  d: GPUBuffer;
  params: GPUBuffer;
  bg: GPUBindGroup;
}

export class WebGpuOptimizer implements ServerOptimizer {
  readonly kind: OptimizerKind;
  readonly length: number;
  private readonly g: Gpu;
  private readonly usesM: boolean;
  private readonly usesV: boolean;
  private readonly chunkLength: number;
  private chunks: OptChunk[] | null;
  private steps = 0;

  constructor(g: Gpu, p: OptimizerParams, initial: Float32Array, chunkLength: number | undefined) {
    this.g = g;
    this.kind = p.kind;
    this.length = initial.length;
    this.usesM = p.kind !== "sgd" || p.momentum > 0;
    this.usesV = p.kind !== "sgd";
    const byBinding = Math.floor(g.ctx.limits.maxStorageBufferBindingSize / 4);
    this.chunkLength = Math.max(1, Math.min(chunkLength ?? Infinity, byBinding, MAX_DISPATCH_ELEMENTS, initial.length));
    const code = p.kind === "sgd" && p.momentum > 0 ? 1 : KIND_CODE[p.kind];
    const uni = new ArrayBuffer(32);
    const u32 = new Uint32Array(uni);
    const f32 = new Float32Array(uni);
    const chunks: OptChunk[] = [];
    for (let off = 0; off < initial.length; off += this.chunkLength) {
      const n = Math.min(this.chunkLength, initial.length - off);
      u32[0] = n;
      u32[1] = code;
      f32.set([p.lr, p.momentum, p.beta1, p.beta2, p.epsilon], 2);
      const x = g.storage(4 * n);
      const m = g.storage(this.usesM ? 4 * n : 4);
      const v = g.storage(this.usesV ? 4 * n : 4);
      const d = g.storage(4 * n);
      const params = g.uniform(uni);
      chunks.push({ off, n, x, m, v, d, params, bg: g.bind(g.p.optimizer, [x, m, v, d, params]) });
    }
    this.chunks = chunks;
    const q = g.device.queue;
    const tau2 = new Float32Array(this.usesV ? this.chunkLength : 0).fill(p.epsilon * p.epsilon);
    for (const c of chunks) {
      q.writeBuffer(c.x, 0, initial, c.off, c.n);
      if (this.usesV) q.writeBuffer(c.v, 0, tau2, 0, c.n);
    }
  }

  private live(): OptChunk[] {
    if (!this.chunks) throw disposed("optimizer");
    return this.chunks;
  }

  private async readAll(pick: (c: OptChunk) => GPUBuffer): Promise<Float32Array> {
    const out = new Float32Array(this.length);
    const staging = this.g.buffer(4 * this.chunkLength, READBACK);
    try {
      for (const c of this.live()) out.set(new Float32Array(await this.g.read(staging, pick(c), 4 * c.n)), c.off);
    } finally {
      staging.destroy();
    }
    return out;
  }

  async step(delta: Float32Array): Promise<Float32Array> {
    const chunks = this.live();
    checkDelta(this.length, delta);
    return this.g.scoped(async () => {
      for (const c of chunks) this.g.device.queue.writeBuffer(c.d, 0, delta, c.off, c.n);
      this.g.dispatch(
        this.g.p.optimizer,
        chunks.map((c) => [c.bg, Math.ceil(c.n / WORKGROUP)]),
      );
      this.steps++;
      return this.readAll((c) => c.x);
    });
  }

  async state(): Promise<OptimizerState> {
    this.live();
    return this.g.scoped(async () => ({
      kind: this.kind,
      step: this.steps,
      weights: await this.readAll((c) => c.x),
      m: this.usesM ? await this.readAll((c) => c.m) : new Float32Array(0),
      v: this.usesV ? await this.readAll((c) => c.v) : new Float32Array(0),
    }));
  }

  async load(state: OptimizerState): Promise<void> {
    const chunks = this.live();
    checkState(this.kind, this.length, state, { m: this.usesM, v: this.usesV });
    await this.g.scoped(async () => {
      const q = this.g.device.queue;
      for (const c of chunks) {
        q.writeBuffer(c.x, 0, state.weights, c.off, c.n);
        if (this.usesM) q.writeBuffer(c.m, 0, state.m, c.off, c.n);
        if (this.usesV) q.writeBuffer(c.v, 0, state.v, c.off, c.n);
      }
      await q.onSubmittedWorkDone();
    });
    this.steps = state.step;
  }

  dispose(): void {
    if (!this.chunks) return;
    for (const c of this.chunks) for (const b of [c.x, c.m, c.v, c.d, c.params]) b.destroy();
    this.chunks = null;
  }
}
