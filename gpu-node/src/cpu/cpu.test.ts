import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it, vi } from "vitest";
import { normalCdf } from "@fedge/privacy";
import { seededRandomBytes } from "@fedge/privacy/testing";
import { BackendError } from "../errors.ts";
import { NORM_BLOCK, addSquaresToLanes, axpy } from "../math.ts";
import { makeUpdates, referenceRound } from "../../test/helpers.ts";
import { SharedHeap } from "./heap.ts";
import { createSharedMemory, instantiateSimd, simdModuleBytes } from "./simd.ts";
import { createCpuBackend } from "./index.ts";

describe("WebAssembly SIMD kernels", () => {
  it("validate as a module and match the TypedArray reference bit for bit", () => {
    expect(WebAssembly.validate(simdModuleBytes())).toBe(true);
    const k = instantiateSimd(createSharedMemory(4));
    expect(k.memory.buffer).toBeInstanceOf(SharedArrayBuffer);
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
    // axpy4 over rows x, x·3, x/5, −x (each its own buffer): four axpy calls in row order, bit for bit
    const rows = [x, x.map((v) => v * 3), x.map((v) => v / 5), x.map((v) => -v)];
    const rowAt = rows.map((row, r) => {
      const at = base + n + r * n;
      heap.set(row, at);
      return 4 * at;
    });
    const fs = [f, Math.fround(1 / 3), Math.fround(2.5e-3), Math.fround(7)];
    k.axpy4(4 * base, rowAt[0]!, rowAt[1]!, rowAt[2]!, rowAt[3]!, n / 8, fs[0]!, fs[1]!, fs[2]!, fs[3]!);
    rows.forEach((row, r) => axpy(acc, row, fs[r]!));
    expect(heap.subarray(base, base + n)).toEqual(acc);
  });

  it("rejects bad options", () => {
    expect(() => createCpuBackend({ batchSize: 0 })).toThrow(/batchSize/);
    expect(() => createCpuBackend({ tileLength: 1.5 })).toThrow(/tileLength/);
    expect(() => createCpuBackend({ threads: 0 })).toThrow(/threads/);
    expect(() => createCpuBackend({ parallelMinLength: -1 })).toThrow(/parallelMinLength/);
  });
});

describe("SharedHeap", () => {
  it("hands out 64-byte aligned, disjoint regions, reuses and merges freed ones, and grows the memory", () => {
    const h = new SharedHeap(1);
    const a = h.alloc(100);
    const b = h.alloc(64);
    const c = h.alloc(1);
    expect([a % 64, b % 64, c % 64]).toEqual([0, 0, 0]);
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThanOrEqual(a + 128);
    expect(c).toBeGreaterThanOrEqual(b + 64);
    h.release(a);
    h.release(b);
    expect(h.alloc(192)).toBe(a); // a and b merged
    const big = h.alloc(3 * 65536);
    expect(h.memory.buffer.byteLength).toBeGreaterThanOrEqual(big + 3 * 65536);
    h.release(big);
    h.release(12345); // unknown: ignored
    expect(h.alloc(3 * 65536)).toBe(big);
    expect(() => h.alloc(2 ** 32)).toThrow(expect.objectContaining({ name: "BackendError", reason: "too_large" }));
  });
});

/** Lengths around the norm block (one block, a partial second block, tails of 1..7) and tiny ones. */
const lengths = [1, 7, 1001, NORM_BLOCK, NORM_BLOCK + 13, 3 * NORM_BLOCK + 5];

describe("cpu threads and zero-copy updates", () => {
  it.each([1, 2, 3])(
    "give bit-identical results to the reference with %i thread(s), staged and copied updates mixed",
    async (threads) => {
      const backend = createCpuBackend({ threads, parallelMinLength: 1, batchSize: 3, tileLength: 1000 });
      try {
        for (const n of lengths) {
          const k = 8;
          const updates = makeUpdates(n + threads, k, n, [1, 0.01, 3]);
          const weights = updates.map((_, j) => 1 + (j % 4) / 8);
          const clip = Math.sqrt(n) * 0.3;
          const ref = referenceRound(updates, weights, clip, 0.7, 5, 11);
          // every other update in shared memory (read in place), the rest copied into slots
          const rows = updates.map((u, j) => {
            if (j % 2 === 1) return u;
            const s = backend.allocateUpdate(n);
            s.set(u);
            return s;
          });
          const acc = await backend.createAccumulator({ length: n, clipNorm: clip });
          await acc.add(rows.slice(0, 5), weights.slice(0, 5));
          await acc.add(rows.slice(5), weights.slice(5));
          const st = acc.stats();
          expect(st.norms).toEqual(ref.norms);
          expect(st.unclippedCount).toBe(ref.unclipped);
          const out = await acc.finish({ noiseStd: 0.7, denominator: 5, random: seededRandomBytes(11) });
          expect(out).toEqual(ref.out);
          expect(out.buffer).toBeInstanceOf(ArrayBuffer); // a copy, not a view of the shared memory
          rows.forEach((r, j) => j % 2 === 0 && backend.releaseUpdate(r));
        }
      } finally {
        await backend.dispose();
      }
    },
  );

  it("adds concurrent add() calls in call order and draws parallel crypto noise with the requested σ", async () => {
    const backend = createCpuBackend({ threads: 2, parallelMinLength: 1 });
    const n = 2 * NORM_BLOCK + 3;
    const updates = makeUpdates(9, 6, n, [0.5]);
    const ones = updates.map(() => 1);
    const ref = referenceRound(updates, ones, 1e9, 0, 1, 0);
    const acc = await backend.createAccumulator({ length: n, clipNorm: 1e9 });
    await Promise.all(updates.map((u) => acc.add([u])));
    const copy = await backend.createAccumulator({ length: n, clipNorm: 1e9 });
    await copy.add(updates);
    expect(acc.stats()).toEqual(copy.stats());
    expect(await acc.finish({ noiseStd: 0, denominator: 1 })).toEqual(ref.out);
    const noisy = await copy.finish({ noiseStd: 2, denominator: 1 });
    let s2 = 0;
    for (let i = 0; i < n; i++) s2 += (noisy[i]! - ref.out[i]!) ** 2;
    expect(Math.abs(s2 / n / 4 - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
    await backend.dispose();
  });

  /** KS statistic of `d` against N(0, σ²). */
  const ks = (d: Float64Array, sigma: number): number => {
    const sorted = Float64Array.from(d).sort();
    let D = 0;
    for (let i = 0; i < sorted.length; i++) {
      const f = normalCdf(sorted[i]! / sigma);
      D = Math.max(D, (i + 1) / sorted.length - f, f - i / sorted.length);
    }
    return D;
  };
  /** KS critical value at α = 0.001. */
  const ksCritical = (n: number): number => 1.9495 / Math.sqrt(n);

  it.each([
    { name: "noiseStd: 2 at open (float32 noise drawn ahead)", open: { noiseStd: 2 } },
    { name: "expectNoise (float64 normals drawn ahead)", open: { expectNoise: true } },
    { name: "σ given at finish only (drawn by every thread after the sum)", open: {} },
  ])("default-source noise, $name: N(0, σ²) by KS and moments, results otherwise exact", async ({ open }) => {
    const backend = createCpuBackend({ threads: 2, parallelMinLength: 1, batchSize: 2 });
    const n = 3 * NORM_BLOCK + 7;
    const updates = makeUpdates(21, 5, n, [0.5, 2]);
    const ones = updates.map(() => 1);
    const clip = 200;
    const run = async (finish: { noiseStd: number; random?: (b: Uint8Array) => void }) => {
      const acc = await backend.createAccumulator({ length: n, clipNorm: clip, ...open });
      await acc.add(updates);
      return acc.finish({ ...finish, denominator: 3 });
    };
    // σ = 0 and an injected source do not use early draws: exact reference results
    expect(await run({ noiseStd: 0 })).toEqual(referenceRound(updates, ones, clip, 0, 3, 0).out);
    expect(await run({ noiseStd: 1.5, random: seededRandomBytes(5) })).toEqual(
      referenceRound(updates, ones, clip, 1.5, 3, 5).out,
    );
    // the default source: the noise is N(0, σ²) and nothing else changed (noisy·3 − clean·3 is the noise)
    const clean = referenceRound(updates, ones, clip, 0, 3, 0).out;
    const noiseOf = (noisy: Float32Array): Float64Array => Float64Array.from(noisy, (v, i) => 3 * (v - clean[i]!));
    const d = noiseOf(await run({ noiseStd: 2 }));
    let s1 = 0;
    let s2 = 0;
    for (const v of d) {
      s1 += v;
      s2 += v * v;
    }
    expect(Math.abs(s1 / n)).toBeLessThan(5 * Math.sqrt(4 / n));
    expect(Math.abs(s2 / n / 4 - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
    expect(ks(d, 2)).toBeLessThan(ksCritical(n));
    expect(ks(d, 2 * 1.05)).toBeGreaterThan(ksCritical(n)); // the test can tell a 5% wrong σ
    // a finish with another σ than the one given at open draws afresh with its own σ
    const other = noiseOf(await run({ noiseStd: 0.5 }));
    expect(ks(other, 0.5)).toBeLessThan(ksCritical(n));
    expect(ks(other, 2)).toBeGreaterThan(ksCritical(n));
    // disposed without finishing: the background job is cancelled and its memory freed
    const dropped = await backend.createAccumulator({ length: n, clipNorm: clip, ...open });
    dropped.dispose();
    await backend.dispose();
  });

  it("draws the default noise from crypto.getRandomValues (early draws included), about 8 bytes per parameter", async () => {
    const spy = vi.spyOn(crypto, "getRandomValues");
    const pulled = (): number => spy.mock.calls.reduce((sum, [b]) => sum + (b as Uint8Array).byteLength, 0);
    try {
      const n = 2 * NORM_BLOCK + 5;
      // one thread: every draw is made here, where the spy sees it
      const one = createCpuBackend({ threads: 1 });
      const acc = await one.createAccumulator({ length: n, clipNorm: 1, noiseStd: 1 });
      await acc.finish({ noiseStd: 1, denominator: 1 });
      expect(pulled()).toBeGreaterThanOrEqual(8 * n);
      expect(pulled()).toBeLessThan(8 * n * 1.02 + 8 * 65536);
      await one.dispose();
      // two threads, noise drawn ahead: the main thread draws the pieces the worker has not claimed by finish
      spy.mockClear();
      const two = createCpuBackend({ threads: 2, parallelMinLength: 1 });
      const early = await two.createAccumulator({ length: 16 * NORM_BLOCK, clipNorm: 1, noiseStd: 1 });
      await early.finish({ noiseStd: 1, denominator: 1 });
      expect(pulled()).toBeGreaterThan(0);
      await two.dispose();
    } finally {
      spy.mockRestore();
    }
  });

  it("rejects a bad noiseStd or expectNoise at open", async () => {
    const backend = createCpuBackend();
    for (const bad of [{ noiseStd: -1 }, { noiseStd: Number.NaN }, { noiseStd: Infinity }, { noiseStd: "1" }]) {
      await expect(
        backend.createAccumulator({ length: 4, clipNorm: 1, ...(bad as unknown as { noiseStd: number }) }),
      ).rejects.toMatchObject({ reason: "invalid_argument", message: expect.stringMatching(/noiseStd/) });
    }
    await expect(
      backend.createAccumulator({ length: 4, clipNorm: 1, expectNoise: "yes" as unknown as boolean }),
    ).rejects.toMatchObject({ reason: "invalid_argument" });
    await backend.dispose();
  });

  it("an accumulator outlives its backend's worker threads (the main thread takes over)", async () => {
    const backend = createCpuBackend({ threads: 2, parallelMinLength: 1 });
    const n = NORM_BLOCK + 9;
    const updates = makeUpdates(31, 4, n);
    const acc = await backend.createAccumulator({ length: n, clipNorm: 1e9 });
    await acc.add(updates.slice(0, 2));
    await backend.dispose();
    await acc.add(updates.slice(2));
    const ref = referenceRound(updates, [1, 1, 1, 1], 1e9, 0, 4, 0);
    expect(await acc.finish({ noiseStd: 0, denominator: 4 })).toEqual(ref.out);
  });

  it("rejects bad zero-copy calls and keeps working after a failed add", async () => {
    const backend = createCpuBackend({ threads: 2, parallelMinLength: 1, batchSize: 2 });
    expect(() => backend.allocateUpdate(0)).toThrow(/length/);
    expect(() => backend.allocateUpdate(1.5)).toThrow(BackendError);
    expect(() => backend.allocateUpdate(1.5)).toThrow(expect.objectContaining({ reason: "invalid_argument" }));
    expect(() => backend.releaseUpdate(new Float32Array(3))).toThrow(/not allocated/);
    const u = backend.allocateUpdate(5);
    expect([...u]).toEqual([0, 0, 0, 0, 0]);
    backend.releaseUpdate(u);
    expect(() => backend.releaseUpdate(u)).toThrow(/already released/);
    const acc = await backend.createAccumulator({ length: 4, clipNorm: 10 });
    const good = backend.allocateUpdate(4);
    good.set([1, 2, 3, 4]);
    const bad = backend.allocateUpdate(4);
    bad.set([1, Number.NaN, 0, 0]);
    await expect(acc.add([good, good, good, bad])).rejects.toMatchObject({ reason: "non_finite" });
    expect(acc.stats().count).toBe(0);
    await acc.add([good]);
    expect([...(await acc.finish({ noiseStd: 0, denominator: 1 }))]).toEqual([1, 2, 3, 4]);
    await backend.dispose();
    expect(() => backend.allocateUpdate(4)).toThrow(expect.objectContaining({ reason: "disposed" }));
  });
});

describe("cpu worker threads and process exit", () => {
  const child = fileURLToPath(new URL("../../test/fixtures/child.ts", import.meta.url));
  it("a process exits cleanly (code 0, promptly) with worker threads, disposed or not", () => {
    const runChild = (threads: string, dispose: string) => {
      const r = spawnSync(process.execPath, [child], {
        env: { ...process.env, FEDGE_BACKEND: "cpu", FEDGE_TEST_THREADS: threads, FEDGE_TEST_DISPOSE: dispose },
        encoding: "utf8",
        timeout: 60_000,
      });
      expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: "" });
      return JSON.parse(r.stdout.trim().split("\n").pop()!) as { kind: string; first: number; threads: number };
    };
    const one = runChild("1", "1");
    expect(one).toMatchObject({ kind: "cpu", threads: 1 });
    for (const dispose of ["1", "0"]) {
      const t = Date.now();
      expect(runChild("2", dispose)).toMatchObject({ kind: "cpu", first: one.first, threads: 2 });
      expect(Date.now() - t).toBeLessThan(30_000);
    }
  });
});
