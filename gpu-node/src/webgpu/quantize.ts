/**
 * @module
 * Per-output-channel int8 quantization on the device, exact like the cpu reference: one pass of the `ABSMAX` kernel
 * over row chunks, the scales computed on the host (a division, which WGSL does not round correctly), then one
 * `QUANTIZE` pass that packs four int8 per u32 word. Chunks hold whole rows, a multiple of 4 of them, so every chunk
 * but the last packs whole words.
 */
import type { QuantizedInt8 } from "../backend.ts";
import { BackendError } from "../errors.ts";
import { quantScale } from "../math.ts";
import { Usage } from "./device.ts";
import { MAX_DISPATCH_ELEMENTS, READBACK, type Gpu } from "./gpu.ts";
import { WORKGROUP } from "./kernels.ts";

/** Quantizes row-major `[rows][cols]` `weight` (already validated) on the device. */
export async function quantizeOnDevice(
  g: Gpu,
  weight: Float32Array,
  rows: number,
  cols: number,
  chunkLength: number | undefined,
): Promise<QuantizedInt8> {
  const byBinding = Math.floor(g.ctx.limits.maxStorageBufferBindingSize / 4);
  const maxElems = Math.min(chunkLength ?? Infinity, byBinding, MAX_DISPATCH_ELEMENTS * 4);
  // rows per chunk: a multiple of 4 (so every chunk but the last packs whole u32 words), at least 4
  const rowsPerChunk = Math.max(4, Math.floor(maxElems / cols / 4) * 4);
  if (rowsPerChunk * cols > byBinding) {
    throw new BackendError("too_large", `outFeatures ${cols} is too large for one storage binding of this device`);
  }
  const chunkElems = Math.min(rowsPerChunk, rows) * cols;
  const bits = new Uint32Array(weight.buffer, weight.byteOffset, weight.length);
  const wBuf = g.storage(4 * chunkElems);
  const amax = g.storage(4 * cols);
  const scalesBuf = g.storage(4 * cols);
  const outBuf = g.storage(4 * Math.ceil(chunkElems / 4));
  const uniform = g.buffer(16, Usage.UNIFORM | Usage.COPY_DST);
  const staging = g.buffer(Math.max(4 * cols, 4 * Math.ceil(chunkElems / 4)), READBACK);
  const q = g.device.queue;
  try {
    const absBG = g.bind(g.p.absmax, [wBuf, amax, uniform]);
    for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) {
      const rc = Math.min(rowsPerChunk, rows - r0);
      q.writeBuffer(wBuf, 0, bits, r0 * cols, rc * cols);
      q.writeBuffer(uniform, 0, new Uint32Array([rc, cols, rc * cols, 0]));
      g.dispatch(g.p.absmax, [[absBG, Math.ceil(cols / 64)]]);
    }
    const absmax = new Float32Array(await g.read(staging, amax, 4 * cols));
    const scales = new Float32Array(cols);
    for (let j = 0; j < cols; j++) scales[j] = quantScale(absmax[j]!);
    q.writeBuffer(scalesBuf, 0, scales);
    const values = new Int8Array(weight.length);
    const qBG = g.bind(g.p.quantize, [wBuf, scalesBuf, outBuf, uniform]);
    for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) {
      const rc = Math.min(rowsPerChunk, rows - r0);
      const n = rc * cols;
      q.writeBuffer(wBuf, 0, bits, r0 * cols, n);
      q.writeBuffer(uniform, 0, new Uint32Array([rc, cols, n, 0]));
      const words = Math.ceil(n / 4);
      g.dispatch(g.p.quantize, [[qBG, Math.ceil(words / WORKGROUP)]]);
      const packed = new Int8Array(await g.read(staging, outBuf, 4 * words));
      values.set(packed.subarray(0, n), r0 * cols);
    }
    return { values, scales };
  } finally {
    for (const b of [wBuf, amax, scalesBuf, outBuf, uniform, staging]) b.destroy();
  }
}
