import { describe, expect, it } from "vitest";
import { seededRandomBytes } from "../samplers/testing.ts";
import { decodeDistributedSum } from "./decode.ts";
import { encodeDistributedUpdate } from "./encode.ts";
import { addModulo, centredValue } from "./modular.ts";
import { planDistributedDiscreteGaussian } from "./plan.ts";
import { rotationSigns, unrotate } from "./rotation.ts";

const seed = Uint8Array.from({ length: 32 }, (_, i) => 3 * i + 1);

function randomUpdate(d: number, norm: number, s: number): Float32Array {
  const r = seededRandomBytes(s);
  const w = new Uint32Array(d);
  r(new Uint8Array(w.buffer));
  const u = Float32Array.from(w, (x) => x / 2 ** 32 - 0.5);
  let n2 = 0;
  for (const x of u) n2 += x * x;
  return u.map((x) => (x * norm) / Math.sqrt(n2));
}

describe("distributed discrete Gaussian: device encoder and server decoder", () => {
  it("no-noise mode: the centred modular sum IS the plain integer sum of the rounded inputs, exactly", () => {
    const plan = planDistributedDiscreteGaussian({
      bits: 16,
      length: 300,
      clipNorm: 1,
      noiseMultiplier: 1,
      expectedClients: 8,
    });
    const random = seededRandomBytes(11);
    const acc = new Uint32Array(plan.paddedLength);
    const plain = new Float64Array(plan.paddedLength);
    const clippedSum = new Float64Array(300);
    for (let c = 0; c < 8; c++) {
      const u = randomUpdate(300, 0.5 + c * 0.3, c); // some above C = 1: clipped on the device
      const e = encodeDistributedUpdate(u, { plan, rotationSeed: seed, random, withoutNoise: true });
      expect(e.unclipped).toBe(c < 2);
      addModulo(acc, e.encoded, plan.bits);
      for (let i = 0; i < plain.length; i++) plain[i] = plain[i]! + e.rounded[i]!;
      for (let i = 0; i < 300; i++) clippedSum[i] = clippedSum[i]! + u[i]! * e.clipFactor;
    }
    for (let i = 0; i < plain.length; i++) expect(centredValue(acc[i]!, plan.bits)).toBe(plain[i]);
    const decoded = decodeDistributedSum(acc, { plan, rotationSeed: seed });
    const expected = unrotate(
      plain.map((v) => v / plan.scale),
      rotationSigns(seed, plan.paddedLength),
    );
    for (let i = 0; i < 300; i++) expect(decoded[i]).toBe(Math.fround(expected[i]!));
    // ...and that is the clipped sum up to the rounding (≤ √(8·d')/γ in norm, d' = 512).
    let err2 = 0;
    for (let i = 0; i < 300; i++) err2 += (decoded[i]! - clippedSum[i]!) ** 2;
    expect(Math.sqrt(err2)).toBeLessThan(Math.sqrt(8 * 512) / plan.scale);
  });

  it("with noise, the decoded sum is the clipped sum plus noise of std z·C (n_expected shares)", () => {
    const n = 10;
    const plan = planDistributedDiscreteGaussian({
      bits: 20,
      length: 2000,
      clipNorm: 0.5,
      noiseMultiplier: 0.8,
      expectedClients: n,
    });
    const random = seededRandomBytes(21);
    const acc = new Uint32Array(plan.paddedLength);
    const clippedSum = new Float64Array(2000);
    const signs = rotationSigns(seed, plan.paddedLength);
    for (let c = 0; c < n; c++) {
      const u = randomUpdate(2000, 0.4, 100 + c);
      addModulo(acc, encodeDistributedUpdate(u, { plan, rotationSeed: seed, random, signs }).encoded, plan.bits);
      for (let i = 0; i < 2000; i++) clippedSum[i] = clippedSum[i]! + u[i]!;
    }
    const decoded = decodeDistributedSum(acc, { plan, rotationSeed: seed, signs });
    let err2 = 0;
    for (let i = 0; i < 2000; i++) err2 += (decoded[i]! - clippedSum[i]!) ** 2;
    const std = Math.sqrt(err2 / 2000);
    expect(std).toBeGreaterThan(0.8 * 0.5 * 0.93);
    expect(std).toBeLessThan(0.8 * 0.5 * 1.07);
  });

  it("the sum of maxClients aligned updates of norm C (the worst case) does not wrap at a small bit width", () => {
    const plan = planDistributedDiscreteGaussian({
      bits: 14,
      length: 64,
      clipNorm: 1,
      noiseMultiplier: 0.5,
      expectedClients: 20,
      maxClients: 40,
    });
    const random = seededRandomBytes(5);
    const u = new Float32Array(64).fill(1 / 8); // norm 1, all devices alike: ‖Σx‖ = n·C
    for (let rep = 0; rep < 5; rep++) {
      const acc = new Uint32Array(plan.paddedLength);
      for (let c = 0; c < 40; c++)
        addModulo(acc, encodeDistributedUpdate(u, { plan, rotationSeed: seed, random }).encoded, plan.bits);
      const decoded = decodeDistributedSum(acc, { plan, rotationSeed: seed });
      // no wrap: every coordinate is 40/8 = 5 up to noise of std z·C·√2 (40 of 20 expected shares) and rounding
      for (const v of decoded) expect(Math.abs(v - 5)).toBeLessThan(6 * 0.5 * Math.SQRT2 + 1);
    }
    // Four times the planned scale wraps: the plan's γ is what keeps the sum inside 2^14.
    const tooFine = { ...plan, scale: plan.scale * 4, sensitivityBound: plan.sensitivityBound * 16 };
    const acc = new Uint32Array(plan.paddedLength);
    for (let c = 0; c < 40; c++) {
      addModulo(
        acc,
        encodeDistributedUpdate(u, { plan: tooFine, rotationSeed: seed, random, withoutNoise: true }).encoded,
        14,
      );
    }
    const wrapped = decodeDistributedSum(acc, { plan: tooFine, rotationSeed: seed });
    expect(Math.max(...wrapped.map((v) => Math.abs(v - 5)))).toBeGreaterThan(1);
  });

  it("refuses bad input without partial output", () => {
    const plan = planDistributedDiscreteGaussian({
      bits: 16,
      length: 10,
      clipNorm: 1,
      noiseMultiplier: 1,
      expectedClients: 4,
    });
    expect(() => encodeDistributedUpdate(new Float32Array(9), { plan, rotationSeed: seed })).toThrow(RangeError);
    expect(() => encodeDistributedUpdate(new Float32Array(10).fill(Number.NaN), { plan, rotationSeed: seed })).toThrow(
      RangeError,
    );
    expect(() => encodeDistributedUpdate(new Float32Array(10), { plan, rotationSeed: new Uint8Array(8) })).toThrow(
      RangeError,
    );
    expect(() => decodeDistributedSum(new Uint32Array(8), { plan, rotationSeed: seed })).toThrow(RangeError);
    expect(() => decodeDistributedSum(new Uint32Array(16).fill(2 ** 16), { plan, rotationSeed: seed })).toThrow(
      /residue/,
    );
    expect(() => addModulo(new Uint32Array(16), new Uint32Array(16).fill(2 ** 16), 16)).toThrow(/residue/);
  });
});
