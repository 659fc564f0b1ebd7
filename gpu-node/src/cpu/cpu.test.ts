import { describe, expect, it } from "vitest";
import { addSquaresToLanes, axpy } from "../math/index.ts";
import { instantiateSimd, simdModuleBytes } from "./simd.ts";
import { createCpuBackend } from "./index.ts";

describe("WebAssembly SIMD kernels", () => {
  it("validate as a module and match the TypedArray reference bit for bit", () => {
    expect(WebAssembly.validate(simdModuleBytes())).toBe(true);
    const k = instantiateSimd(4);
    const n = 4096 + 8;
    const heap = new Float32Array(k.memory.buffer);
    const x = new Float32Array(n).map((_, i) => Math.fround(Math.cos(i * 0.37) * (1 + (i % 17))));
    heap.set(x, 16);
    const lanes = new Float64Array(k.memory.buffer, 0, 8);
    lanes.fill(0.5);
    k.sumsq8(64, n / 8, 0);
    const ref = new Float64Array(8).fill(0.5);
    addSquaresToLanes(x, ref);
    expect([...lanes]).toEqual([...ref]);
    const acc = new Float32Array(n).map((_, i) => Math.fround(i / 7));
    const base = 16 + n;
    heap.set(acc, base);
    const f = Math.fround(-0.731);
    k.axpy(4 * base, 64, n / 4, f);
    axpy(acc, x, f);
    expect(heap.subarray(base, base + n)).toEqual(acc);
  });

  it("rejects bad options", () => {
    expect(() => createCpuBackend({ batchSize: 0 })).toThrow(/batchSize/);
    expect(() => createCpuBackend({ tileLength: 1.5 })).toThrow(/tileLength/);
  });
});
