import { describe, expect, it } from "vitest";
import { addModulo, decodeDistributedSum, planDistributedDiscreteGaussian, centredValue } from "@fedge/privacy";
import { seededRandomBytes } from "@fedge/privacy/testing";
import { encodeDistributedDeviceUpdate, type DistributedDeviceTask } from "./distributed-update.ts";

const seed = Uint8Array.from({ length: 32 }, (_, i) => i * 5 + 1);
const seedText = Buffer.from(seed).toString("base64url");
const plan = planDistributedDiscreteGaussian({
  bits: 18,
  length: 100,
  clipNorm: 0.5,
  noiseMultiplier: 1,
  expectedClients: 5,
});
const task: DistributedDeviceTask = {
  privacy_mode: "distributed",
  clip_norm: 0.5,
  distributed: {
    bits: plan.bits,
    scale: plan.scale,
    dimension: plan.paddedLength,
    share_variance: plan.localVariance,
    sensitivity_bound: plan.sensitivityBound,
    rotation_seed: seedText,
  },
};

describe("encodeDistributedDeviceUpdate (the device's step of a distributed round)", () => {
  it("runs the task's mechanism: the server's decoding of five devices' sum is their clipped sum plus the noise", () => {
    const random = seededRandomBytes(3);
    const acc = new Uint32Array(plan.paddedLength);
    const sum = new Float64Array(100);
    for (let c = 0; c < 5; c++) {
      const delta = Float32Array.from({ length: 100 }, (_, i) => Math.sin(i * (c + 1)) * 0.2);
      let n2 = 0;
      for (const v of delta) n2 += v * v;
      const f = Math.min(1, 0.5 / Math.sqrt(n2));
      for (let i = 0; i < 100; i++) sum[i] = sum[i]! + delta[i]! * f;
      const e = encodeDistributedDeviceUpdate(delta, task, random);
      expect(e.unclipped).toBe(f === 1);
      expect(e.encoded.length).toBe(128);
      addModulo(acc, e.encoded, plan.bits);
    }
    const decoded = decodeDistributedSum(acc, { plan, rotationSeed: seed });
    let err2 = 0;
    for (let i = 0; i < 100; i++) err2 += (decoded[i]! - sum[i]!) ** 2;
    // noise std z·C = 0.5 per coordinate (five shares of the expected five)
    expect(Math.sqrt(err2 / 100)).toBeGreaterThan(0.35);
    expect(Math.sqrt(err2 / 100)).toBeLessThan(0.65);
    // a zero Δ still leaves the device noised: its encoding is its noise share, not zeros
    const centred = Array.from(encodeDistributedDeviceUpdate(new Float32Array(100), task, random).encoded, (v) =>
      centredValue(v, plan.bits),
    );
    expect(centred.filter((v) => v !== 0).length).toBeGreaterThan(100);
  });

  it("refuses a task whose numbers do not fit the update, naming the field", () => {
    const d = new Float32Array(100);
    expect(() => encodeDistributedDeviceUpdate(new Float32Array(300), task)).toThrow(/dimension/);
    expect(() => encodeDistributedDeviceUpdate(d, { ...task, distributed: { ...task.distributed, bits: 40 } })).toThrow(
      /bits/,
    );
    expect(() =>
      encodeDistributedDeviceUpdate(d, { ...task, distributed: { ...task.distributed, rotation_seed: "abc" } }),
    ).toThrow(/32 bytes/);
    expect(() =>
      encodeDistributedDeviceUpdate(d, { ...task, distributed: { ...task.distributed, share_variance: 0.1 } }),
    ).toThrow(/share_variance/);
    expect(() => encodeDistributedDeviceUpdate(d, { ...task, clip_norm: 0 })).toThrow(/clip_norm/);
  });
});
