/**
 * One shared suite run against every backend configuration on the same inputs (house rule 3).
 *
 * Stated tolerances (see `backend.ts`):
 * - cpu: bit-identical to the TypedArray reference everywhere, whatever the thread count (threads split the work at
 *   norm-block boundaries and the host adds the block sums in a fixed order).
 * - webgpu: bit-identical when no update is clipped (the clip factor is then the weight, independent of the norm);
 *   when some update is clipped, its factor depends on the device norm, which agrees within a relative 2⁻¹⁹, so the
 *   result agrees within 2⁻¹⁸ of the vector's largest magnitude. Norms: relative 2⁻¹⁹.
 * - Optimizers: |x_cpu − x_gpu| ≤ 1e-5·(|x| + η·steps).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seededRandomBytes } from "@fedge/privacy/testing";
import type { Backend, BackendErrorReason, OptimizerOptions } from "../src/index.ts";
import { BackendError, createCpuBackend } from "../src/index.ts";
import { openWebGpuBackend } from "../src/webgpu/index.ts";
import { quantizePerChannelInt8 } from "../src/math.ts";
import { makeUpdates, referenceRound, relMaxDiff } from "./helpers.ts";

const NORM_TOL = 2 ** -19;
const OUT_TOL = 2 ** -18;

interface Config {
  name: string;
  exactWhenClipped: boolean;
  open: () => Promise<Backend>;
}

const configs: Config[] = [
  { name: "cpu (defaults)", exactWhenClipped: true, open: async () => createCpuBackend() },
  {
    name: "cpu (batch 3, tile 64)",
    exactWhenClipped: true,
    open: async () => createCpuBackend({ batchSize: 3, tileLength: 64 }),
  },
  {
    name: "cpu (batch 5, tile 60: four-row passes, a lone row, an odd vector per tile)",
    exactWhenClipped: true,
    open: async () => createCpuBackend({ batchSize: 5, tileLength: 60 }),
  },
  {
    name: "cpu (3 threads from length 1, batch 2, tile 64)",
    exactWhenClipped: true,
    open: async () => createCpuBackend({ threads: 3, parallelMinLength: 1, batchSize: 2, tileLength: 64 }),
  },
  {
    name: "webgpu (defaults)",
    exactWhenClipped: false,
    open: async () => {
      const b = await openWebGpuBackend();
      if (!b) throw new Error("no WebGPU adapter (run `npm run bootstrap` to install Mesa lavapipe)");
      return b;
    },
  },
  {
    name: "webgpu (batch 3, chunks of 1000)",
    exactWhenClipped: false,
    open: async () => {
      const b = await openWebGpuBackend({ batchSize: 3, chunkLength: 1000 });
      if (!b) throw new Error("no WebGPU adapter");
      return b;
    },
  },
];

/** (length, K, clipNorm, noiseStd): sizes include 1, non-multiples of 256/4096, and several chunks of 1000. */
const shapes: [number, number, number, number][] = [
  [1, 1, 10, 0],
  [1, 5, 0.3, 0.5],
  [7, 2, 1e9, 0],
  [255, 4, 1e9, 1],
  [257, 1, 5, 0],
  [4097, 7, 20, 0.25],
  [2500, 10, 1e9, 0],
  [12345, 8, 50, 2],
];

async function expectBackendError(p: Promise<unknown> | (() => unknown), reason: BackendErrorReason): Promise<void> {
  let err: unknown;
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(BackendError);
  expect((err as BackendError).reason).toBe(reason);
}

describe.each(configs)("Backend conformance: $name", (config) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await config.open();
  });
  afterAll(async () => {
    await backend?.dispose();
  });

  it.each(shapes)(
    "clip + weighted accumulate + noise ÷ denominator matches the reference (n=%i, K=%i, C=%f, σ=%f)",
    async (n, k, c, sigma) => {
      const updates = makeUpdates(n * 31 + k, k, n, [1, 3, 0.5]);
      const weights = updates.map((_, j) => 1 + (j % 3) / 4);
      const ref = referenceRound(updates, weights, c, sigma, 3.5, 99);
      const acc = await backend.createAccumulator({ length: n, clipNorm: c });
      await acc.add(updates, weights);
      const st = acc.stats();
      expect(st.count).toBe(k);
      expect(st.unclippedCount).toBe(ref.unclipped);
      expect(st.weightSum).toBeCloseTo(
        weights.reduce((a, b) => a + b, 0),
        12,
      );
      st.norms.forEach((x, j) => expect(Math.abs(x - ref.norms[j]!)).toBeLessThanOrEqual(NORM_TOL * ref.norms[j]!));
      const out = await acc.finish({ noiseStd: sigma, denominator: 3.5, random: seededRandomBytes(99) });
      if (config.exactWhenClipped || !ref.clippedAny) {
        expect(out).toEqual(ref.out);
        if (config.exactWhenClipped) expect(st.norms).toEqual(ref.norms);
      } else {
        expect(relMaxDiff(out, ref.out)).toBeLessThanOrEqual(OUT_TOL);
      }
    },
  );

  it("splitting a round into several add() calls (K=1 and K>batch) gives the same result", async () => {
    const n = 3001;
    const updates = makeUpdates(5, 9, n, [2]);
    const whole = await backend.createAccumulator({ length: n, clipNorm: 1e9 });
    await whole.add(updates);
    const parts = await backend.createAccumulator({ length: n, clipNorm: 1e9 });
    await parts.add(updates.slice(0, 1));
    await parts.add(updates.slice(1, 8));
    await parts.add([]);
    await parts.add(updates.slice(8));
    expect(parts.stats()).toEqual(whole.stats());
    expect(await parts.finish({ noiseStd: 0, denominator: 9 })).toEqual(
      await whole.finish({ noiseStd: 0, denominator: 9 }),
    );
  });

  it("clips exactly at the boundary: ‖u‖ = C is unclipped, ‖u‖ = 2C is halved", async () => {
    const acc = await backend.createAccumulator({ length: 2, clipNorm: 5 });
    await acc.add([new Float32Array([3, 4]), new Float32Array([6, -8]), new Float32Array([0, 0])]);
    expect(acc.stats()).toEqual({ count: 3, unclippedCount: 2, weightSum: 3, norms: [5, 10, 0] });
    expect([...(await acc.finish({ noiseStd: 0, denominator: 1 }))]).toEqual([6, 0]);
  });

  it("is atomic: a non-finite value anywhere in a call rejects the whole call and changes nothing", async () => {
    const n = 1500;
    const updates = makeUpdates(8, 8, n);
    const acc = await backend.createAccumulator({ length: n, clipNorm: 1e9 });
    await acc.add(updates.slice(0, 2));
    const before = acc.stats();
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 3e38]) {
      const poisoned = updates.slice(2).map((u) => u.slice());
      poisoned[4]![n - 1] = bad; // K > batch for the small-batch configurations: earlier batches ran first
      await expectBackendError(acc.add(poisoned), "non_finite");
      expect(acc.stats()).toEqual(before);
    }
    await acc.add(updates.slice(2));
    const ref = referenceRound(
      updates,
      updates.map(() => 1),
      1e9,
      0,
      8,
      0,
    );
    expect(await acc.finish({ noiseStd: 0, denominator: 8 })).toEqual(ref.out);
  });

  it("rejects bad inputs with typed errors and keeps its state", async () => {
    await expectBackendError(backend.createAccumulator({ length: 0, clipNorm: 1 }), "invalid_argument");
    await expectBackendError(backend.createAccumulator({ length: 2.5, clipNorm: 1 }), "invalid_argument");
    await expectBackendError(backend.createAccumulator({ length: 4, clipNorm: 0 }), "invalid_argument");
    await expectBackendError(backend.createAccumulator({ length: 4, clipNorm: Number.NaN }), "invalid_argument");
    await expectBackendError(backend.createAccumulator({ length: 4, clipNorm: 1, noiseStd: -1 }), "invalid_argument");
    const acc = await backend.createAccumulator({ length: 4, clipNorm: 1 });
    await expectBackendError(acc.add([new Float32Array(3)]), "invalid_shape");
    await expectBackendError(acc.add([new Float64Array(4) as unknown as Float32Array]), "invalid_type");
    await expectBackendError(acc.add([new Float32Array(4)], [-1]), "invalid_argument");
    await expectBackendError(acc.add([new Float32Array(4)], [1, 2]), "invalid_argument");
    await expectBackendError(acc.add([new Float32Array(4)], [Number.NaN]), "invalid_argument");
    expect(acc.stats().count).toBe(0);
    await expectBackendError(acc.finish({ noiseStd: -1, denominator: 1 }), "invalid_argument");
    await expectBackendError(acc.finish({ noiseStd: 0, denominator: 0 }), "invalid_argument");
    await expectBackendError(acc.finish({ noiseStd: Number.POSITIVE_INFINITY, denominator: 1 }), "invalid_argument");
    await acc.add([new Float32Array([1, 0, 0, 0])]);
    expect([...(await acc.finish({ noiseStd: 0, denominator: 2 }))]).toEqual([0.5, 0, 0, 0]);
    await expectBackendError(acc.finish({ noiseStd: 0, denominator: 1 }), "disposed");
    await expectBackendError(acc.add([new Float32Array(4)]), "disposed");
  });

  it.each([{}, { noiseStd: 3 }])(
    "draws noise from crypto.getRandomValues by default with the requested σ (open %o)",
    async (open) => {
      const n = 1 << 16;
      const acc = await backend.createAccumulator({ length: n, clipNorm: 1, ...open });
      const out = await acc.finish({ noiseStd: 3, denominator: 2 });
      let s = 0;
      let s2 = 0;
      for (const x of out) {
        s += 2 * x;
        s2 += 4 * x * x;
      }
      expect(Math.abs(s / n)).toBeLessThan(5 * Math.sqrt(9 / n));
      expect(Math.abs(s2 / n / 9 - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
    },
  );

  it("quantizes per output channel exactly (ties away from zero, zero column, subnormals, many chunks)", async () => {
    // column 0: absmax 127 → scale 1, ties ±2.5 → ±3, ±0.5 → ±1; column 1 all zero → scale 1; column 2 subnormal
    const w = new Float32Array([127, 0, 1e-40, 2.5, 0, -3e-41, -2.5, 0, 0, 0.5, 0, 1e-45, -0.5, 0, 5e-41]);
    const q = await backend.quantizePerChannelInt8(w, 5, 3);
    expect([...q.values.filter((_, i) => i % 3 === 0)]).toEqual([127, 3, -3, 1, -1]);
    expect([...q.values.filter((_, i) => i % 3 === 1)]).toEqual([0, 0, 0, 0, 0]);
    expect(q.scales[0]).toBe(1);
    expect(q.scales[1]).toBe(1);
    expect(q).toEqual(quantizePerChannelInt8(w, 5, 3));
    expect(q.values[2]).toBe(127);
    for (const [rows, cols, seed] of [
      [1, 1, 1],
      [3, 7, 2],
      [301, 13, 3],
      [64, 257, 4],
    ] as const) {
      const [m] = makeUpdates(seed, 1, rows * cols, [seed * 10]);
      m![0] = 0;
      expect(await backend.quantizePerChannelInt8(m!, rows, cols)).toEqual(quantizePerChannelInt8(m!, rows, cols));
    }
    await expectBackendError(backend.quantizePerChannelInt8(new Float32Array(5), 2, 3), "invalid_shape");
    await expectBackendError(backend.quantizePerChannelInt8(new Float32Array(6), 0, 6), "invalid_argument");
    await expectBackendError(backend.quantizePerChannelInt8(new Float32Array([1, Number.NaN]), 1, 2), "non_finite");
  });

  it.each([
    { kind: "sgd", lr: 1 },
    { kind: "sgd", lr: 0.5, momentum: 0.9 },
    { kind: "adam", lr: 0.01, beta1: 0.9, beta2: 0.99, epsilon: 1e-3 },
    { kind: "yogi", lr: 0.01, beta1: 0.8, beta2: 0.95, epsilon: 1e-2 },
  ] as Omit<OptimizerOptions, "initialWeights">[])(
    "server optimizer $kind (lr $lr, momentum $momentum) follows Reddi et al. 2020 Alg. 2",
    async (o) => {
      // hand-written reference formulas, float64 (arXiv 2003.00295 Alg. 2; arXiv 1909.06335 for momentum)
      const n = 2501;
      const [x0, ...deltas] = makeUpdates(77, 5, n, [1, 0.1, 0.2, 0.05, 0.3]);
      const x = Float64Array.from(x0!);
      const m = new Float64Array(n);
      const tau = o.epsilon ?? 1e-3;
      const v = new Float64Array(n).fill(tau * tau);
      const opt = await backend.createOptimizer({ ...o, initialWeights: x0! });
      let got: Float32Array = new Float32Array(0);
      for (const d of deltas) {
        for (let i = 0; i < n; i++) {
          const di = d[i]!;
          if (o.kind === "sgd") {
            m[i] = (o.momentum ?? 0) * m[i]! + di;
            x[i] = x[i]! + o.lr * m[i]!;
          } else {
            const b1 = o.beta1!;
            const b2 = o.beta2!;
            m[i] = b1 * m[i]! + (1 - b1) * di;
            v[i] =
              o.kind === "adam"
                ? b2 * v[i]! + (1 - b2) * di * di
                : v[i]! - (1 - b2) * di * di * Math.sign(v[i]! - di * di);
            x[i] = x[i]! + (o.lr * m[i]!) / (Math.sqrt(v[i]!) + tau);
          }
        }
        got = await opt.step(d);
      }
      for (let i = 0; i < n; i++)
        expect(Math.abs(got[i]! - x[i]!)).toBeLessThanOrEqual(1e-5 * (Math.abs(x[i]!) + o.lr * 4));
      // checkpoint round trip: a fresh optimizer loaded with the state continues identically
      const state = await opt.state();
      expect(state.step).toBe(4);
      expect(state.weights).toEqual(got);
      const twin = await backend.createOptimizer({ ...o, initialWeights: new Float32Array(n) });
      await twin.load(state);
      expect(await twin.step(deltas[0]!)).toEqual(await opt.step(deltas[0]!));
      await expectBackendError(opt.step(new Float32Array(n - 1)), "invalid_shape");
      const nan = deltas[0]!.slice();
      nan[3] = Number.NaN;
      await expectBackendError(opt.step(nan), "non_finite");
      await expectBackendError(twin.load({ ...state, kind: o.kind === "sgd" ? "adam" : "sgd" }), "invalid_argument");
      await expectBackendError(twin.load({ ...state, weights: new Float32Array(3) }), "invalid_shape");
      expect((await twin.state()).step).toBe(5);
      opt.dispose();
      twin.dispose();
      await expectBackendError(opt.step(deltas[0]!), "disposed");
    },
  );

  it("rejects bad optimizer options", async () => {
    const w = new Float32Array(4);
    await expectBackendError(
      backend.createOptimizer({ kind: "adagrad" as "sgd", lr: 1, initialWeights: w }),
      "invalid_argument",
    );
    await expectBackendError(backend.createOptimizer({ kind: "sgd", lr: 0, initialWeights: w }), "invalid_argument");
    await expectBackendError(
      backend.createOptimizer({ kind: "sgd", lr: 1, momentum: 1, initialWeights: w }),
      "invalid_argument",
    );
    await expectBackendError(
      backend.createOptimizer({ kind: "adam", lr: 1, epsilon: 0, initialWeights: w }),
      "invalid_argument",
    );
    await expectBackendError(
      backend.createOptimizer({ kind: "adam", lr: 1, initialWeights: new Float32Array(0) }),
      "invalid_argument",
    );
    await expectBackendError(
      backend.createOptimizer({ kind: "adam", lr: 1, initialWeights: new Float32Array([Number.NaN]) }),
      "non_finite",
    );
  });
});

describe("cpu and webgpu agree on the same inputs (larger than one chunk, clipped)", () => {
  it("gives the same round result within the stated tolerance and the same statistics", async () => {
    const gpu = await openWebGpuBackend({ chunkLength: 4096 * 3 + 5 });
    expect(gpu).not.toBeNull();
    const cpu = createCpuBackend();
    const n = 50_001;
    const updates = makeUpdates(3, 20, n, [0.01, 0.02, 0.05]);
    const results = [];
    for (const b of [cpu, gpu!]) {
      const acc = await b.createAccumulator({ length: n, clipNorm: 3 });
      await acc.add(updates);
      results.push({
        stats: acc.stats(),
        out: await acc.finish({ noiseStd: 0.1, denominator: 20, random: seededRandomBytes(4) }),
      });
    }
    expect(results[1]!.stats.unclippedCount).toBe(results[0]!.stats.unclippedCount);
    expect(results[0]!.stats.unclippedCount).toBeGreaterThan(0);
    expect(results[0]!.stats.unclippedCount).toBeLessThan(20);
    expect(relMaxDiff(results[1]!.out, results[0]!.out)).toBeLessThanOrEqual(OUT_TOL);
    await gpu!.dispose();
  });
});
