import { afterAll, describe, expect, it } from "vitest";
import { seededRandomBytes } from "@fedge/privacy/testing";
import type { Backend } from "../backend.ts";
import { BackendError } from "../errors.ts";
import { createCpuBackend } from "../cpu/index.ts";
import { NORM_BLOCK } from "../math.ts";
import { createParamShardedBackend, planParamSlices } from "./param-sharded.ts";

const single = createCpuBackend({ threads: 1 });
const sharded = (k: number) =>
  createParamShardedBackend({ shards: Array.from({ length: k }, () => createCpuBackend({ threads: 1 })) });
const opened: Backend[] = [single];
afterAll(() => Promise.all(opened.map((b) => b.dispose())));

/** Deterministic pseudo-random updates (xorshift), scaled to a few norms around C. */
function updates(length: number, count: number, seed: number): Float32Array[] {
  let x = seed >>> 0 || 1;
  return Array.from({ length: count }, (_, k) => {
    const u = new Float32Array(length);
    for (let i = 0; i < length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      u[i] = ((x >>> 8) / 2 ** 24 - 0.5) * (1 + (k % 4));
    }
    return u;
  });
}

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("hex");

/** One DP round (clip, weights, noise from a seeded stream, fixed denominator) on `backend`. */
async function round(backend: Backend, us: Float32Array[], clipNorm: number) {
  const acc = await backend.createAccumulator({ length: us[0]!.length, clipNorm });
  await acc.add(us.slice(0, 5), [1, 0.5, 2, 1, 1]);
  await acc.add(us.slice(5));
  const stats = acc.stats();
  const out = await acc.finish({ noiseStd: 0.3, denominator: 7, random: seededRandomBytes(99) });
  return { stats, out };
}

describe("planParamSlices", () => {
  it("cuts whole norm blocks when there are at least K of them, else multiples of 8, never an empty slice", () => {
    for (const [length, k] of [
      [4 * NORM_BLOCK + 5, 3],
      [3 * NORM_BLOCK, 3],
      [10 * NORM_BLOCK + 1, 4],
      [5000, 3],
      [17, 4],
      [4, 4],
    ] as const) {
      const slices = planParamSlices(length, k);
      expect(slices).toHaveLength(k);
      expect(slices[0]!.start).toBe(0);
      expect(slices[k - 1]!.end).toBe(length);
      for (let i = 0; i < k; i++) {
        expect(slices[i]!.end).toBeGreaterThan(slices[i]!.start);
        if (i > 0) expect(slices[i]!.start).toBe(slices[i - 1]!.end);
        if (i < k - 1 && Math.ceil(length / NORM_BLOCK) >= k) expect(slices[i]!.end % NORM_BLOCK).toBe(0);
      }
    }
    expect(() => planParamSlices(3, 4)).toThrow(BackendError);
    expect(() => planParamSlices(10, 0)).toThrow(BackendError);
  });
});

describe("createParamShardedBackend", () => {
  it("gives bit-identical norms, clip counts and noisy sums when slices fall on norm blocks", async () => {
    const length = 3 * NORM_BLOCK + 777;
    const us = updates(length, 12, 7);
    const clipNorm = 150; // some updates above, some below
    const want = await round(single, us, clipNorm);
    expect(want.stats.unclippedCount).toBeGreaterThan(0);
    expect(want.stats.unclippedCount).toBeLessThan(12);
    for (const k of [2, 3, 4]) {
      const b = sharded(k);
      opened.push(b);
      const got = await round(b, us, clipNorm);
      expect(got.stats).toEqual(want.stats);
      expect(bits(got.out)).toBe(bits(want.out));
    }
  });

  it("is equal within float tolerance when the model has fewer blocks than slices", async () => {
    const us = updates(5000, 10, 3);
    const want = await round(single, us, 40);
    const b = sharded(3);
    opened.push(b);
    const got = await round(b, us, 40);
    expect(got.stats.count).toBe(want.stats.count);
    got.stats.norms.forEach((n, i) => expect(n).toBeCloseTo(want.stats.norms[i]!, 9));
    for (let i = 0; i < got.out.length; i++) {
      expect(Math.abs(got.out[i]! - want.out[i]!)).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(want.out[i]!)));
    }
  });

  it("refuses a non-finite update atomically, with the single backend's error", async () => {
    const b = sharded(2);
    opened.push(b);
    const us = updates(2 * NORM_BLOCK, 3, 5);
    us[2]![NORM_BLOCK + 3] = Number.NaN;
    const acc = await b.createAccumulator({ length: 2 * NORM_BLOCK, clipNorm: 1 });
    await expect(acc.add(us)).rejects.toMatchObject({ reason: "non_finite" });
    expect(acc.stats().count).toBe(0);
    await expect(acc.add([new Float32Array(3)])).rejects.toBeInstanceOf(BackendError);
    acc.dispose();
  });

  it("runs the server optimizer per slice with the single optimizer's weights and state", async () => {
    const length = 2 * NORM_BLOCK + 11;
    const [w0, d1, d2] = updates(length, 3, 13) as [Float32Array, Float32Array, Float32Array];
    const opts = { kind: "adam" as const, lr: 0.05, initialWeights: w0 };
    const a = await single.createOptimizer(opts);
    const b = sharded(2);
    opened.push(b);
    const s = await b.createOptimizer(opts);
    for (const d of [d1, d2]) expect(bits(await s.step(d))).toBe(bits(await a.step(d)));
    const want = await a.state();
    const got = await s.state();
    expect([got.kind, got.step, bits(got.weights), bits(got.m), bits(got.v)]).toEqual([
      want.kind,
      want.step,
      bits(want.weights),
      bits(want.m),
      bits(want.v),
    ]);
    const fresh = await b.createOptimizer(opts);
    await fresh.load(want);
    expect(bits(await fresh.step(d1))).toBe(bits(await a.step(d1)));
    await expect(fresh.load({ ...want, weights: new Float32Array(3) })).rejects.toMatchObject({
      reason: "invalid_shape",
    });
  });
});
