import { describe, expect, it } from "vitest";
import { cryptoRandomBytes } from "@fedge/privacy";
import { clipToNorm, l2Norm } from "./clip.ts";
import { int8PayloadNorm } from "@fedge/protocol";
import {
  checkDevicePrivacyTask,
  compressUpdate,
  privatizeUpdate,
  trainDeviceUpdate,
  type DevicePrivacyTask,
} from "./device-update.ts";
import { initMlp } from "./init.ts";
import { xoshiroRandomBytes } from "./random.ts";
import { trainLocal } from "./train.ts";
import { computeUpdate } from "./update.ts";

/** A vector of `n` values with L2 norm `norm`. */
function withNorm(n: number, norm: number): Float32Array {
  const v = Float32Array.from({ length: n }, (_, i) => ((i % 5) - 2) / 2 + 0.3);
  const k = norm / l2Norm(v);
  return v.map((x) => x * k);
}

const adaptive: DevicePrivacyTask = { privacy_mode: "central", clip_norm: 1, report_clip_bit: true };

describe("privatizeUpdate: the clip bit comes from the unclipped norm", () => {
  it("b = 0 for ‖Δ‖ > C (then clipped to C), b = 1 for ‖Δ‖ ≤ C (unchanged)", () => {
    const big = withNorm(50, 3);
    const r = privatizeUpdate(big, adaptive, cryptoRandomBytes);
    expect(r.clipBit).toBe(0);
    expect(r.norm).toBeCloseTo(3, 5);
    expect(r.clipFactor).toBeCloseTo(1 / 3, 5);
    expect(l2Norm(big)).toBeLessThanOrEqual(1);
    expect(l2Norm(big)).toBeGreaterThan(0.9999);

    const small = withNorm(50, 0.5);
    const copy = small.slice();
    const s = privatizeUpdate(small, adaptive, cryptoRandomBytes);
    expect(s).toMatchObject({ clipBit: 1, clipFactor: 1, noiseStd: 0 });
    expect(small).toEqual(copy);
  });

  it("is exactly what clipToNorm does to the values", () => {
    const v = withNorm(100, 2.5);
    const expected = clipToNorm(v, 1).clipped;
    privatizeUpdate(v, adaptive, cryptoRandomBytes);
    expect(v).toEqual(expected);
  });

  it("reports no bit unless the task asks for it, and never outside central mode", () => {
    expect(privatizeUpdate(withNorm(10, 3), { privacy_mode: "central", clip_norm: 1 }, cryptoRandomBytes).clipBit).toBe(
      undefined,
    );
    const local = { privacy_mode: "local", clip_norm: 1, local_noise_multiplier: 1 } as const;
    expect(privatizeUpdate(withNorm(10, 3), local, cryptoRandomBytes).clipBit).toBeUndefined();
    expect(() => privatizeUpdate(withNorm(10, 3), { ...local, report_clip_bit: true }, cryptoRandomBytes)).toThrow(
      /report_clip_bit is only allowed in central mode/,
    );
    expect(() =>
      privatizeUpdate(withNorm(10, 3), { privacy_mode: "none", report_clip_bit: true }, cryptoRandomBytes),
    ).toThrow(RangeError);
  });
});

describe("privatizeUpdate: local noise and mode none", () => {
  it("local mode adds N(0, (z·C)²) per coordinate after clipping", () => {
    const n = 200_000;
    const v = new Float32Array(n); // ‖0‖ = 0: what remains is the noise
    const r = privatizeUpdate(
      v,
      { privacy_mode: "local", clip_norm: 0.5, local_noise_multiplier: 2 },
      cryptoRandomBytes,
    );
    expect(r.noiseStd).toBe(1);
    let s = 0;
    let s2 = 0;
    for (const x of v) {
      s += x;
      s2 += x * x;
    }
    expect(Math.abs(s / n)).toBeLessThan(0.02);
    expect(Math.sqrt(s2 / n)).toBeCloseTo(1, 1);
  });

  it("local mode refuses z = 0, a missing z and a non-finite z (the update would leave in the clear)", () => {
    for (const z of [0, undefined, Number.NaN, Infinity, -1]) {
      expect(() =>
        privatizeUpdate(
          withNorm(4, 1),
          { privacy_mode: "local", clip_norm: 1, local_noise_multiplier: z },
          cryptoRandomBytes,
        ),
      ).toThrow(/local_noise_multiplier must be a finite number > 0 in local mode/);
    }
  });

  it("mode none without a clip norm sends Δ as trained; with one it clips", () => {
    const v = withNorm(20, 40);
    const copy = v.slice();
    expect(privatizeUpdate(v, { privacy_mode: "none" }, cryptoRandomBytes)).toMatchObject({
      clipFactor: 1,
      clipBit: undefined,
      noiseStd: 0,
    });
    expect(v).toEqual(copy);
    privatizeUpdate(v, { privacy_mode: "none", clip_norm: 1 }, cryptoRandomBytes);
    expect(l2Norm(v)).toBeLessThanOrEqual(1);
  });

  it("refuses distributed mode, central without C, and a non-finite Δ", () => {
    expect(() => checkDevicePrivacyTask({ privacy_mode: "distributed", clip_norm: 1 })).toThrow(
      /encodeDistributedDeviceUpdate/,
    );
    expect(() => checkDevicePrivacyTask({ privacy_mode: "central" })).toThrow(/clip_norm is required/);
    expect(() => checkDevicePrivacyTask({ privacy_mode: "central", clip_norm: 0 })).toThrow(/clip_norm must be/);
    expect(() => privatizeUpdate(Float32Array.of(1, Number.NaN), adaptive, cryptoRandomBytes)).toThrow(RangeError);
    expect(() => privatizeUpdate(Float32Array.of(Infinity), { privacy_mode: "none" }, cryptoRandomBytes)).toThrow(
      /non-finite/,
    );
  });
});

describe("trainDeviceUpdate", () => {
  it("is trainLocal → computeUpdate → privatizeUpdate, with the batch order from trainRandom", () => {
    const params = initMlp([6, 4, 3], { random: xoshiroRandomBytes(4) });
    const data = Float32Array.from({ length: 12 * 6 }, (_, i) => ((i * 37) % 11) / 11);
    const labels = Uint8Array.from({ length: 12 }, (_, i) => i % 3);
    const task = {
      ...adaptive,
      clip_norm: 0.05,
      local_epochs: 2,
      batch_size: 4,
      learning_rate: 0.5,
      trainable: "all" as const,
    };
    const out = trainDeviceUpdate({
      params,
      task,
      data,
      labels,
      random: cryptoRandomBytes,
      trainRandom: xoshiroRandomBytes(9),
    });
    const trained = trainLocal(params, data, labels, {
      epochs: 2,
      batchSize: 4,
      learningRate: 0.5,
      scope: "all",
      random: xoshiroRandomBytes(9),
    });
    const delta = computeUpdate(params, trained.params, "all");
    expect(out.norm).toBe(l2Norm(delta));
    expect(out.clipBit).toBe(l2Norm(delta) <= 0.05 ? 1 : 0);
    expect(out.values).toEqual(clipToNorm(delta, 0.05).clipped);
    expect(out).toMatchObject({ samples: 12, steps: 6, loss: trained.loss });
  });
});

describe("compressUpdate (step 5: int8 with the bound kept after dequantization)", () => {
  it("float32 rounds send the values as they are; int8 rounds stay within C (central) or ‖Δ‖ (local, none)", () => {
    const clipped = withNorm(1000, 1);
    const f = compressUpdate(clipped, { privacy_mode: "central", clip_norm: 1 }, cryptoRandomBytes);
    expect(f).toEqual({ dtype: "float32", values: clipped });
    for (const task of [
      { privacy_mode: "central" as const, clip_norm: 1 },
      { privacy_mode: "none" as const, clip_norm: 1 },
    ]) {
      const q = compressUpdate(clipped, { ...task, update_dtype: "int8" }, cryptoRandomBytes);
      if (q.dtype !== "int8") throw new Error("int8 expected");
      expect(int8PayloadNorm(q)).toBeLessThanOrEqual(1);
    }
    const big = withNorm(1000, 7);
    for (const task of [
      { privacy_mode: "local" as const, clip_norm: 1, local_noise_multiplier: 1 },
      { privacy_mode: "none" as const },
    ]) {
      const q = compressUpdate(big, { ...task, update_dtype: "int8" }, cryptoRandomBytes);
      if (q.dtype !== "int8") throw new Error("int8 expected");
      expect(int8PayloadNorm(q)).toBeLessThanOrEqual(l2Norm(big));
      expect(int8PayloadNorm(q)).toBeGreaterThan(0.99 * l2Norm(big));
    }
  });

  it("refuses an unknown dtype, a bad task and non-finite values", () => {
    const v = withNorm(10, 1);
    const central = { privacy_mode: "central" as const, clip_norm: 1 };
    expect(() => compressUpdate(v, { ...central, update_dtype: "int4" as "int8" }, cryptoRandomBytes)).toThrow(
      /update_dtype/,
    );
    expect(() => compressUpdate(v, { privacy_mode: "local", update_dtype: "int8" }, cryptoRandomBytes)).toThrow(
      RangeError,
    );
    v[3] = Number.NaN;
    expect(() => compressUpdate(v, { ...central, update_dtype: "int8" }, cryptoRandomBytes)).toThrow(/non-finite/);
  });
});
