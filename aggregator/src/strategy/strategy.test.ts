import { describe, expect, it } from "vitest";
import { createBackend, type AccumulatorOptions, type Backend } from "@fedge/gpu-node";
import {
  cryptoRandomBytes,
  getNoiseMultiplier,
  RdpAccountant,
  zigguratConstants,
  type RandomBytes,
} from "@fedge/privacy";
import { l2Norm, privatizeUpdate } from "@fedge/ml";
import { seededRandomBytes } from "@fedge/privacy/testing";
import { createDpCentral, initialClipState, RobustWithDpError } from "./dp-central.ts";
import { createDpLocal } from "./dp-local.ts";
import { createFedAvg } from "./fedavg.ts";
import { createRobust } from "./robust.ts";
import { initialClipStateOf, strategyFromConfig } from "./from-config.ts";
import type { ClientUpdate, RoundContext } from "./strategy.ts";
import { parsePopulationConfig } from "../config.ts";

/**
 * A byte source whose normals are known by hand: every 16 bytes are the words (2^31, 0, 0, 0). The Ziggurat sampler
 * (Marsaglia & Tsang 2000) reads one 64-bit draw per value: (2^31, 0) is the uniform u = 0.5 in the base layer 0 with a
 * positive sign, accepted at once, so z = u·x₀ with x₀ = v/f(r) the base strip's width; (0, 0) is u = 0, so z = 0.
 * Standard normals: (R, 0, R, 0, …).
 */
const zig = zigguratConstants();
const R = (0.5 * zig.v) / Math.exp((-zig.r * zig.r) / 2); // 1.9553789797…
const knownNoise: RandomBytes = (buf) => {
  const words = new Uint32Array(buf.length / 4);
  for (let i = 0; i < words.length; i += 4) words[i] = 0x80000000;
  buf.set(new Uint8Array(words.buffer));
};

async function* stream(
  updates: Float32Array[],
  released?: number[],
  clipBits?: (0 | 1)[],
): AsyncGenerator<ClientUpdate> {
  let k = 0;
  for (const u of updates) {
    const id = k++;
    const clipBit = clipBits?.[id];
    yield clipBit === undefined
      ? { delta: u, release: () => released?.push(id) }
      : { delta: u, clipBit, release: () => released?.push(id) };
  }
}

/** The updates devices with these raw Δs upload in an adaptive round at clip norm `c` (the device code path). */
function fromDevices(raw: Float32Array[], c: number): { updates: Float32Array[]; bits: (0 | 1)[] } {
  const bits: (0 | 1)[] = [];
  const updates = raw.map((d) => {
    const u = d.slice();
    bits.push(
      privatizeUpdate(u, { privacy_mode: "central", clip_norm: c, report_clip_bit: true }, cryptoRandomBytes).clipBit!,
    );
    return u;
  });
  return { updates, bits };
}

const cpu = await createBackend({ prefer: "cpu" });

function ctx(backend: Backend, over: Partial<RoundContext> = {}): RoundContext {
  return {
    round: 1,
    length: 4,
    clip: { clipNorm: 1 },
    backend,
    random: knownNoise,
    batchSize: 2,
    log: () => {},
    ...over,
  };
}

// Three clients, four parameters, C = 1:
//   u1 = (3, 4, 0, 0)   ‖u1‖ = 5  → clipped to (0.6, 0.8, 0, 0)
//   u2 = (0, 0, 0.5, 0) ‖u2‖ = 0.5 → unchanged (the only unclipped one)
//   u3 = (0, 0, 0, 2)   ‖u3‖ = 2  → clipped to (0, 0, 0, 1)
// clipped sum S = (0.6, 0.8, 0.5, 1); noise n = σ·(R, 0, R, 0); out = (S + n) / (q·N).
const tiny = () => [new Float32Array([3, 4, 0, 0]), new Float32Array([0, 0, 0.5, 0]), new Float32Array([0, 0, 0, 2])];

describe("DP-FedAvg (central)", () => {
  it("gaussian (float) mechanism matches the hand-computed round: clip, sum, σ = z·C noise, fixed denominator q·N", async () => {
    const s = createDpCentral(createFedAvg(), {
      noiseMultiplier: 2,
      samplingRate: 0.5,
      expectedClients: 2,
      mechanism: "gaussian",
    });
    const released: number[] = [];
    const r = await s.aggregateFit(ctx(cpu), stream(tiny(), released));
    // σ = 2·1 = 2, noise = (2R, 0, 2R, 0), denominator 2 (not the 3 that arrived)
    const expected = [(0.6 + 2 * R) / 2, 0.8 / 2, (0.5 + 2 * R) / 2, 1 / 2];
    expect(r.delta).not.toBeNull();
    for (let i = 0; i < 4; i++) expect(r.delta![i]).toBeCloseTo(expected[i]!, 6);
    expect(r).toMatchObject({ count: 3, unclippedCount: 1, clipNorm: 1, noiseStd: 2, denominator: 2 });
    expect(released.sort()).toEqual([0, 1, 2]);
    expect(s.privacyCharge()).toEqual({ noiseMultiplier: 2, samplingRate: 0.5 });
    expect(s.configureFit({ round: 1, clip: { clipNorm: 1 } })).toEqual({ privacyMode: "central", clipNorm: 1 });
  });

  it("scales the noise with C (σ = z·C) and the clipping with C", async () => {
    const s = createDpCentral(createFedAvg(), {
      noiseMultiplier: 1,
      samplingRate: 0.5,
      expectedClients: 4,
      mechanism: "gaussian",
    });
    const r = await s.aggregateFit(ctx(cpu, { clip: { clipNorm: 2 } }), stream(tiny()));
    // C = 2: u1 → (1.2, 1.6, 0, 0), u2 and u3 unclipped; σ = 2 → noise (2R, 0, 2R, 0); ÷ 4
    const expected = [(1.2 + 2 * R) / 4, 1.6 / 4, (0.5 + 2 * R) / 4, 2 / 4];
    for (let i = 0; i < 4; i++) expect(r.delta![i]).toBeCloseTo(expected[i]!, 6);
    expect(r.unclippedCount).toBe(2);
  });

  it("adaptive clipping: the sum gets z_Δ·C, the count gets σ_b, C moves geometrically (Andrew et al. Alg. 1)", async () => {
    const s = createDpCentral(createFedAvg(), {
      noiseMultiplier: 1,
      samplingRate: 0.5,
      expectedClients: 2,
      mechanism: "gaussian",
    });
    const clip = initialClipState(1, 2, { targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: 2 });
    expect(s.configureFit({ round: 1, clip })).toEqual({ privacyMode: "central", clipNorm: 1, reportClipBit: true });
    const devices = fromDevices(tiny(), 1);
    expect(devices.bits).toEqual([0, 1, 0]); // ‖u1‖ = 5, ‖u2‖ = 0.5, ‖u3‖ = 2 before the devices clipped
    const r = await s.aggregateFit(ctx(cpu, { clip }), stream(devices.updates, undefined, devices.bits));
    expect(r.unclippedCount).toBe(1);
    const zDelta = (1 - 1 / 16) ** -0.5; // z⁻² − (2σ_b)⁻² = 1 − 1/16
    expect(r.noiseStd).toBeCloseTo(zDelta, 12);
    const expected = [(0.6 + zDelta * R) / 2, 0.4, (0.5 + zDelta * R) / 2, 0.5];
    for (let i = 0; i < 4; i++) expect(r.delta![i]).toBeCloseTo(expected[i]!, 6);
    // centred count: b̃ = (Σ(b_i − ½) + σ_b·R) / m + ½ = (1 − 3/2 + 2R) / 2 + ½ ; C' = 1·exp(−0.2·(b̃ − 0.5))
    const b = (1 - 1.5 + 2 * R) / 2 + 0.5;
    expect(r.noisyUnclippedFraction).toBeCloseTo(b, 12);
    expect(r.nextClip.clipNorm).toBeCloseTo(Math.exp(-0.2 * (b - 0.5)), 12);
    expect(r.nextClip.adaptive?.clipNorm).toBe(r.nextClip.clipNorm);
  });

  it.each(["discrete-gaussian", "gaussian"] as const)(
    "adaptive clipping with the demo's settings (%s): the sum and the count together are exactly the charged z",
    async (mechanism) => {
      // demo defaults (demo/src/demo.ts): N = 1000, q = 0.3, 12 rounds, ε = 4, δ = 1e-5, σ_b = max(q·N/20, z), C = 1
      const q = 0.3;
      const m = 300;
      const delta = 1e-5;
      const z = getNoiseMultiplier({ targetEpsilon: 4, targetDelta: delta, sampleRate: q, steps: 12 }).noiseMultiplier;
      const sigmaB = Math.max(m / 20, z);
      const s = createDpCentral(createFedAvg(), { noiseMultiplier: z, samplingRate: q, expectedClients: m, mechanism });
      const clip = initialClipState(1, m, { targetQuantile: 0.3, learningRate: 0.05, countNoiseStd: sigmaB });
      const length = 8;
      const base = Array.from({ length: 40 }, (_, k) =>
        Float32Array.from({ length }, (_, i) => ((k * 7 + i) % 5) * 0.1),
      );
      // every base update is within C (its device reports b = 1); the server re-clips what it receives
      const run = (extra: Float32Array[], extraBits: (0 | 1)[]) =>
        s.aggregateFit(
          { round: 1, length, clip, backend: cpu, random: seededRandomBytes(3) },
          stream([...base, ...extra], undefined, [...base.map(() => 1 as const), ...extraBits]),
        );
      const d = await run([], []);
      const withClipped = await run([Float32Array.from({ length }, () => 10)], [0]); // b = 0, clipped to ‖·‖ = C
      const withUnclipped = await run([Float32Array.from({ length }, () => 0.01)], [1]); // b = 1
      // Neighbouring datasets, same noise bytes: the released difference is the added record's contribution.
      let sumSq = 0;
      for (let i = 0; i < length; i++) sumSq += ((withClipped.delta![i]! - d.delta![i]!) * m) ** 2;
      const measured = Math.sqrt(sumSq); // ≈ C (one clipped record)
      // the mechanism's declared sensitivity: C for the float path, Δ₂ = C·inflation on the grid (rounding adds ≤ γ√d/2)
      const sumSensitivity = mechanism === "gaussian" ? 1 : d.noiseInflation!;
      expect(measured).toBeLessThanOrEqual(sumSensitivity + 1e-5); // float32 outputs
      const countSensitivity = Math.max(
        Math.abs(withClipped.noisyUnclippedFraction! - d.noisyUnclippedFraction!) * m,
        Math.abs(withUnclipped.noisyUnclippedFraction! - d.noisyUnclippedFraction!) * m,
      );
      expect(Math.abs(measured - 1)).toBeLessThan(mechanism === "gaussian" ? 1e-5 : sumSensitivity - 1 + 1e-5);
      expect(countSensitivity).toBeCloseTo(0.5, 9);
      // Two Gaussian mechanisms compose to one with z⁻² = (Δ_sum/σ_sum)² + (Δ_count/σ_b)².
      const zEffective = ((sumSensitivity / d.noiseStd) ** 2 + (countSensitivity / sigmaB) ** 2) ** -0.5;
      const charged = s.privacyCharge()!.noiseMultiplier;
      expect(charged).toBe(z);
      expect(zEffective / charged).toBeCloseTo(1, 4);
      const epsilonAt = (noiseMultiplier: number) => {
        const acc = new RdpAccountant();
        acc.step({ noiseMultiplier, sampleRate: q }, 12);
        return acc.getEpsilon(delta);
      };
      expect(epsilonAt(zEffective)).toBeCloseTo(epsilonAt(charged), 3);
      expect(epsilonAt(zEffective)).toBeLessThanOrEqual(4 + 1e-3);
    },
  );

  it("adaptive clipping converges to the target quantile of synthetic norms, from device-clipped updates", async () => {
    // norms uniform on (0, 10]: the median is 5; 200 clients per round, CSPRNG noise (σ_b = 10). Every device clips to
    // the round's C before upload and reports b = 1[‖Δ‖ ≤ C] of its unclipped Δ, as the SDK does.
    const s = createDpCentral(createFedAvg(), { noiseMultiplier: 1, samplingRate: 1, expectedClients: 200 });
    let clip = initialClipState(0.5, 200, { targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: 10 });
    const raw = Array.from({ length: 200 }, (_, k) => new Float32Array([((k + 1) / 200) * 10, 0, 0, 0]));
    for (let t = 0; t < 60; t++) {
      const { updates, bits } = fromDevices(raw, clip.clipNorm);
      // what arrives is clipped: the server alone would count every update as unclipped and only ever shrink C
      expect(updates.every((u) => l2Norm(u) <= clip.clipNorm)).toBe(true);
      const r = await s.aggregateFit(
        { round: t + 1, length: 4, clip, backend: cpu, batchSize: 64 },
        stream(updates, undefined, bits),
      );
      expect(r.unclippedCount).toBe(bits.filter((b) => b === 1).length);
      clip = r.nextClip;
    }
    expect(clip.clipNorm).toBeGreaterThan(4);
    expect(clip.clipNorm).toBeLessThan(6);
  });

  it("adaptive clipping counts the reported bits, not what the server measures; an update without a bit fails", async () => {
    const s = createDpCentral(createFedAvg(), { noiseMultiplier: 1, samplingRate: 0.5, expectedClients: 2 });
    const clip = initialClipState(1, 2, { targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: 2 });
    // three updates already within C, all reported clipped on the device (b = 0): the count is 0, C grows
    const within = [new Float32Array([0.1, 0, 0, 0]), new Float32Array([0, 0.2, 0, 0]), new Float32Array(4)];
    const zero = { ...ctx(cpu, { clip }), random: seededRandomBytes(3) };
    const r = await s.aggregateFit(zero, stream(within, undefined, [0, 0, 0]));
    expect(r.unclippedCount).toBe(0);
    const released: number[] = [];
    await expect(s.aggregateFit(ctx(cpu, { clip }), stream(within, released, [1, 1]))).rejects.toMatchObject({
      reason: "missing_clip_bit",
      message: expect.stringMatching(/clip bits, but update 2 reports none/),
    });
    expect(released.sort()).toEqual([0, 1, 2]);
  });

  it("still releases noise (and the fixed denominator) when no update arrives", async () => {
    const s = createDpCentral(createFedAvg(), {
      noiseMultiplier: 1,
      samplingRate: 0.5,
      expectedClients: 2,
      mechanism: "gaussian",
    });
    const r = await s.aggregateFit(ctx(cpu), stream([]));
    expect(r.count).toBe(0);
    // Float32 noise: compare within float32 resolution.
    [R / 2, 0, R / 2, 0].forEach((want, i) => expect(r.delta![i]).toBeCloseTo(want, 6));
  });

  it("opens the accumulator with σ when the noise comes from crypto (drawn while updates stream in), never with an injected source", async () => {
    const opened: AccumulatorOptions[] = [];
    const recording: Backend = Object.assign(Object.create(cpu) as Backend, {
      createAccumulator: (o: AccumulatorOptions) => {
        opened.push(o);
        return cpu.createAccumulator(o);
      },
    });
    const s = createDpCentral(createFedAvg(), {
      noiseMultiplier: 2,
      samplingRate: 0.5,
      expectedClients: 2,
      mechanism: "gaussian",
    });
    const n = 1 << 18; // long enough for the cpu backend's worker threads (parallelMinLength)
    const zeros = [new Float32Array(n), new Float32Array(n)];
    const { random: _injected, ...withCrypto } = ctx(recording, { length: n });
    const r = await s.aggregateFit(withCrypto, stream(zeros));
    expect(opened[0]).toMatchObject({ length: n, clipNorm: 1, noiseStd: 2 });
    // the released delta is the noise alone, σ/denominator = 2/2 = 1 per coordinate
    let s1 = 0;
    let s2 = 0;
    for (const v of r.delta!) {
      s1 += v;
      s2 += v * v;
    }
    expect(Math.abs(s1 / n)).toBeLessThan(5 / Math.sqrt(n));
    expect(Math.abs(s2 / n - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
    await s.aggregateFit(ctx(recording, { length: n }), stream(zeros));
    expect(opened[1]).not.toHaveProperty("noiseStd");
  });

  it("rejects bad parameters with typed errors", () => {
    expect(() =>
      createDpCentral(createFedAvg(), { noiseMultiplier: 0, samplingRate: 0.5, expectedClients: 2 }),
    ).toThrow(/noiseMultiplier/);
    expect(() =>
      createDpCentral(createFedAvg(), { noiseMultiplier: 1, samplingRate: 1.5, expectedClients: 2 }),
    ).toThrow(/samplingRate/);
    expect(() =>
      createDpCentral(createFedAvg(), { noiseMultiplier: 1, samplingRate: 0.5, expectedClients: -1 }),
    ).toThrow(/expectedClients/);
  });

  it("refuses a bad update (invalid_shape / non_finite) with either mechanism", async () => {
    // the exact sum raises UpdateRejectedError (a reason); the Backend path raises its own typed error (a code)
    const why = (e: { reason?: string; code?: string }) => e.reason ?? e.code;
    for (const mechanism of ["discrete-gaussian", "gaussian"] as const) {
      const s = createDpCentral(createFedAvg(), {
        noiseMultiplier: 1,
        samplingRate: 0.5,
        expectedClients: 2,
        mechanism,
      });
      const c = ctx(cpu, { random: seededRandomBytes(1) });
      await expect(s.aggregateFit(c, stream([new Float32Array(3)]))).rejects.toSatisfy(
        (e: { reason?: string; code?: string }) => why(e) === "invalid_shape",
      );
      await expect(s.aggregateFit(c, stream([Float32Array.of(0, Number.NaN, 0, 0)]))).rejects.toSatisfy(
        (e: { reason?: string; code?: string }) => why(e) === "non_finite",
      );
    }
  });

  it("discrete-gaussian (the default): the clipped sum on a grid, exact integer noise, σ = z·Δ₂ ≤ 1.001·z·C", async () => {
    const s = createDpCentral(createFedAvg(), { noiseMultiplier: 2, samplingRate: 0.5, expectedClients: 2 });
    const released: number[] = [];
    const r = await s.aggregateFit(ctx(cpu, { random: seededRandomBytes(5) }), stream(tiny(), released));
    // the same noise bytes with nothing added isolate the noise: out − noise = clipped sum / q·N
    const noise = await s.aggregateFit(ctx(cpu, { random: seededRandomBytes(5) }), stream([]));
    const expected = [0.6 / 2, 0.8 / 2, 0.5 / 2, 1 / 2];
    for (let i = 0; i < 4; i++) expect(r.delta![i]! - noise.delta![i]!).toBeCloseTo(expected[i]!, 3);
    expect(r).toMatchObject({
      count: 3,
      unclippedCount: 1,
      clipNorm: 1,
      denominator: 2,
      mechanism: "discrete-gaussian",
    });
    expect(r.noiseInflation).toBeGreaterThan(1);
    expect(r.noiseInflation).toBeLessThanOrEqual(1.001);
    expect(r.noiseStd).toBeCloseTo(2 * r.noiseInflation!, 6);
    expect(released.sort()).toEqual([0, 1, 2]);
    expect(s.privacyCharge()).toEqual({ noiseMultiplier: 2, samplingRate: 0.5 }); // the grid does not change z
    // adaptive clipping's count is released with discrete noise too
    const a = createDpCentral(createFedAvg(), { noiseMultiplier: 1, samplingRate: 0.5, expectedClients: 2 });
    const clip = initialClipState(1, 2, { targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: 2 });
    const ra = await a.aggregateFit(
      ctx(cpu, { clip, random: seededRandomBytes(6) }),
      stream(tiny(), undefined, [0, 1, 0]), // the devices' bits: ‖u‖ = 5, 0.5, 2 against C = 1
    );
    const b = ra.noisyUnclippedFraction!;
    // b̃ = (2·Σ(b_i − ½) + Y)/(2m) + ½ with Y an integer: 2m·(b̃ − ½) + 1 is an integer
    expect(Math.abs(4 * (b - 0.5) + 1 - Math.round(4 * (b - 0.5) + 1))).toBeLessThan(1e-9);
    expect(ra.nextClip.clipNorm).toBeCloseTo(Math.exp(-0.2 * (b - 0.5)), 12);
  });
});

describe("local DP", () => {
  it("adds no server noise: the output is the plain mean of the (already noised) updates", async () => {
    const s = createDpLocal(createFedAvg(), { noiseMultiplier: 1.5 });
    const ups = tiny();
    const r = await s.aggregateFit(ctx(cpu), stream(ups));
    // no clipping either: (3, 4, 0.5, 2) / 3
    expect(Array.from(r.delta!)).toEqual(
      Array.from(new Float32Array([3, 4, 0.5, 2]).map((x) => Math.fround(x * Math.fround(1 / 3)))),
    );
    expect(r.noiseStd).toBe(0);
    expect(s.privacyCharge()).toEqual({ noiseMultiplier: 1.5, samplingRate: 1 });
    expect(s.configureFit({ round: 1, clip: { clipNorm: 1 } })).toEqual({
      privacyMode: "local",
      clipNorm: 1,
      localNoiseMultiplier: 1.5,
    });
  });
});

describe("FedAvg and robust strategies", () => {
  it("FedAvg weights by example counts and returns null when nothing arrives", async () => {
    const s = createFedAvg();
    async function* two(): AsyncGenerator<ClientUpdate> {
      yield { delta: new Float32Array([1, 0, 0, 0]), numExamples: 3 };
      yield { delta: new Float32Array([0, 4, 0, 0]), numExamples: 1 };
    }
    const r = await s.aggregateFit(ctx(cpu), two());
    expect(Array.from(r.delta!)).toEqual([0.75, 1, 0, 0]);
    expect(r.weightSum).toBe(4);
    const empty = await s.aggregateFit(ctx(cpu), stream([]));
    expect(empty.delta).toBeNull();
    expect(empty.warnings[0]).toMatch(/no update/);
  });

  it("median and trimmed mean work for non-DP populations", async () => {
    const ups = [new Float32Array([1, 1, 1, 1]), new Float32Array([2, 2, 2, 2]), new Float32Array([100, -100, 3, 3])];
    const med = await createRobust({ kind: "median" }).aggregateFit(ctx(cpu), stream(ups));
    expect(Array.from(med.delta!)).toEqual([2, 1, 2, 2]);
    const tm = await createRobust({ kind: "trimmed_mean", trimFraction: 0.34 }).aggregateFit(ctx(cpu), stream(ups));
    expect(Array.from(tm.delta!)).toEqual([2, 1, 2, 2]);
  });

  it("robust strategies are refused for DP populations", () => {
    expect(() =>
      createDpCentral(createRobust({ kind: "median" }), { noiseMultiplier: 1, samplingRate: 0.1, expectedClients: 10 }),
    ).toThrow(RobustWithDpError);
    expect(() => createDpLocal(createRobust({ kind: "trimmed_mean" }), { noiseMultiplier: 1 })).toThrow(
      RobustWithDpError,
    );
  });

  it("a robust round refuses more updates than maxClients", async () => {
    const ups = [new Float32Array(4), new Float32Array(4)];
    await expect(
      createRobust({ kind: "median", maxClients: 1 }).aggregateFit(ctx(cpu), stream(ups)),
    ).rejects.toMatchObject({ name: "UpdateRejectedError", reason: "too_many_updates" });
  });
});

describe("webgpu backend (Dawn on lavapipe)", () => {
  it("agrees with the cpu backend on a DP round", async () => {
    const gpu = await createBackend({ prefer: "webgpu", env: {} });
    try {
      const length = 5000;
      const ups = Array.from({ length: 20 }, (_, k) => {
        const r = seededRandomBytes(100 + k);
        const w = new Uint32Array(length);
        r(new Uint8Array(w.buffer));
        return Float32Array.from(w, (x) => (x / 2 ** 32 - 0.5) * (1 + (k % 5)));
      });
      const s = createDpCentral(createFedAvg(), {
        noiseMultiplier: 0.7,
        samplingRate: 0.1,
        expectedClients: 18,
        mechanism: "gaussian", // the Backend's float path; central mode's default runs on the CPU
      });
      const clip = initialClipState(20, 18, { countNoiseStd: 2 });
      const bits = ups.map((u) => (l2Norm(u) <= 20 ? 1 : 0) as 0 | 1);
      const run = (backend: Backend) =>
        s.aggregateFit(
          { round: 1, length, clip, backend, random: seededRandomBytes(7), batchSize: 8 },
          stream(ups, undefined, bits),
        );
      const a = await run(cpu);
      const b = await run(gpu);
      expect(b.count).toBe(a.count);
      expect(b.unclippedCount).toBe(a.unclippedCount);
      expect(b.nextClip.clipNorm).toBeCloseTo(a.nextClip.clipNorm, 10);
      let maxDiff = 0;
      for (let i = 0; i < length; i++)
        maxDiff = Math.max(maxDiff, Math.abs(a.delta![i]! - b.delta![i]!) / Math.max(1, Math.abs(a.delta![i]!)));
      expect(maxDiff).toBeLessThan(1e-5);
    } finally {
      await gpu.dispose();
    }
  });
});

describe("strategyFromConfig", () => {
  const base = { model: "m", samplingRate: 0.1, expectedClients: 100 };
  const budget = { epsilon: 8, delta: 1e-5 };
  it("composes the strategy a config asks for", () => {
    const central = parsePopulationConfig({
      ...base,
      privacy: { mode: "central", noiseMultiplier: 1, budget },
      clipping: { clipNorm: 2, adaptive: {} },
    });
    expect(strategyFromConfig(central).name).toBe("dp-central(fedavg)");
    expect(initialClipStateOf(central)).toEqual({
      clipNorm: 2,
      adaptive: { clipNorm: 2, targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: 5 },
    });
    const local = parsePopulationConfig({ ...base, privacy: { mode: "local", noiseMultiplier: 1, budget } });
    expect(strategyFromConfig(local).name).toBe("dp-local(fedavg)");
    const robust = parsePopulationConfig({ ...base, privacy: { mode: "none" }, robust: { kind: "median" } });
    expect(strategyFromConfig(robust).name).toBe("median");
    expect(strategyFromConfig(parsePopulationConfig({ ...base, privacy: { mode: "none" } })).name).toBe("fedavg");
  });
});
