import { buildMlpOnnx, flattenTrainable, trainableLength, type MlpParams } from "@fedge/ml";
import { decodeUpdate, decodeVerifiedUpdate, int8PayloadNorm, toBase64Url, type RoundTask } from "@fedge/protocol";
import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import { FedgeClientError, InvalidInputError } from "./core/errors.ts";
import { initMlp, l2Norm, xoshiroRandomBytes } from "@fedge/ml";
import { buildUpdate } from "./build-update.ts";

const keys = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(3));
const params: MlpParams = initMlp([6, 5, 3], { random: xoshiroRandomBytes(1) });
const modelBytes = buildMlpOnnx(params, { quantization: "none" });
const n = 40;
const rnd = xoshiroRandomBytes(2);
const data = new Float32Array(n * 6);
{
  const b = new Uint8Array(data.length);
  rnd(b);
  b.forEach((v, i) => (data[i] = v / 255));
}
const labels = new Uint8Array(n).map((_, i) => i % 3);
const nonce = new Uint8Array(16).map((_, i) => i + 1);

const task = (over: Partial<RoundTask> = {}): RoundTask => ({
  round_id: "toy_1",
  model: "toy",
  model_version: 1,
  clip_norm: 0.05,
  learning_rate: 0.5,
  local_epochs: 2,
  batch_size: 8,
  privacy_mode: "central",
  trainable: "all",
  update_length: trainableLength(params, "all"),
  nonce: toBase64Url(nonce),
  deadline: "2099-01-01T00:00:00Z",
  ...over,
});

const build = (t: RoundTask, extra: Partial<Parameters<typeof buildUpdate>[0]> = {}) =>
  buildUpdate({
    task: t,
    modelBytes,
    data,
    labels,
    deviceId: "dev_toy12345",
    secretKey: keys.secretKey,
    random: xoshiroRandomBytes(9),
    ...extra,
  });

describe("buildUpdate", () => {
  it("trains, clips to C, encodes and signs an update the codec accepts", async () => {
    const { bytes, stats } = await build(task());
    const d = await decodeVerifiedUpdate(bytes, keys.publicKey);
    expect(d.roundId).toBe("toy_1");
    expect(d.deviceId).toBe("dev_toy12345");
    expect([...d.nonce]).toEqual([...nonce]);
    expect(d.shape).toEqual([trainableLength(params, "all")]);
    expect(d.payload.dtype).toBe("float32");
    const values = d.payload.values as Float32Array;
    expect(l2Norm(values)).toBeLessThanOrEqual(0.05);
    expect(stats.updateNorm).toBeGreaterThan(0.05); // lr 0.5 moves the weights further than C
    expect(stats.clipFactor).toBeLessThan(1);
    expect(stats).toMatchObject({ samples: n, steps: 2 * 5, noiseStd: 0, dtype: "float32", bytes: bytes.length });
  });

  it("head scope sends only the last layer", async () => {
    const len = trainableLength(params, "head");
    const { bytes } = await build(task({ trainable: "head", update_length: len, clip_norm: 100 }));
    const d = decodeUpdate(bytes);
    expect(d.shape).toEqual([len]);
    expect(len).toBe(flattenTrainable(params, "head").length);
  });

  it("local mode adds noise with σ = z·C; int8 rounds use the int8 payload", async () => {
    const local = await build(task({ privacy_mode: "local", local_noise_multiplier: 2, clip_norm: 0.05 }));
    expect(local.stats.noiseStd).toBeCloseTo(0.1, 12);
    const v = decodeUpdate(local.bytes).payload.values as Float32Array;
    // The noise norm is about z·C·√n ≫ C.
    expect(l2Norm(v)).toBeGreaterThan(0.05 * 2 * Math.sqrt(v.length) * 0.5);
    const q = await build(task({ update_dtype: "int8" }));
    const d = await decodeVerifiedUpdate(q.bytes, keys.publicKey);
    expect(d.payload.dtype).toBe("int8");
    // Clipped to C = 0.05 on the device, and still within C after dequantization (the edge's own formula).
    if (d.payload.dtype === "int8") expect(int8PayloadNorm(d.payload)).toBeLessThanOrEqual(0.05);
    expect(q.stats.clipFactor).toBeLessThan(1);
    expect(q.bytes.length).toBeLessThan(local.bytes.length);
  });

  it("adaptive central rounds: the signed clip bit is 1[‖Δ‖ ≤ C] of the UNCLIPPED Δ", async () => {
    // lr 0.5 moves the weights further than C = 0.05 (clipped: b = 0) and less than C = 100 (b = 1).
    const clipped = await build(task({ report_clip_bit: true }));
    const d = await decodeVerifiedUpdate(clipped.bytes, keys.publicKey);
    expect(d.clipBit).toBe(0);
    expect(clipped.stats.clipBit).toBe(0);
    expect(clipped.stats.updateNorm).toBeGreaterThan(0.05);
    expect(l2Norm(d.payload.values as Float32Array)).toBeLessThanOrEqual(0.05); // and still clipped
    const kept = await build(task({ report_clip_bit: true, clip_norm: 100 }));
    expect(decodeUpdate(kept.bytes).clipBit).toBe(1);
    expect(kept.stats.clipFactor).toBe(1);
    // Not asked (plain central, local): the field says "not reported".
    expect(decodeUpdate((await build(task())).bytes).clipBit).toBeNull();
    expect(
      decodeUpdate((await build(task({ privacy_mode: "local", local_noise_multiplier: 2 }))).bytes).clipBit,
    ).toBeNull();
  });

  it("mode none without a clip norm sends Δ unclipped; local mode without z > 0 is refused", async () => {
    const { clip_norm: _c, ...noClip } = task({ privacy_mode: "none" });
    const none = await build(noClip as RoundTask);
    expect(none.stats.clipFactor).toBe(1);
    expect(l2Norm(decodeUpdate(none.bytes).payload.values as Float32Array)).toBeCloseTo(none.stats.updateNorm, 4);
    for (const z of [0, undefined]) {
      const t = task({ privacy_mode: "local", clip_norm: 0.05 });
      if (z !== undefined) t.local_noise_multiplier = z;
      await expect(build(t)).rejects.toThrow(/local_noise_multiplier must be a finite number > 0/);
      await expect(build(t)).rejects.toThrow(FedgeClientError);
    }
    await expect(
      build(task({ privacy_mode: "local", local_noise_multiplier: 1, report_clip_bit: true })),
    ).rejects.toThrow(/report_clip_bit/);
  });

  it("refuses tasks that do not fit the model, and bad data, with typed errors", async () => {
    await expect(build(task({ update_length: 7 }))).rejects.toThrow(FedgeClientError);
    await expect(build(task({ nonce: "AAAA" }))).rejects.toThrow(/nonce/);
    await expect(build(task({ privacy_mode: "distributed" }))).rejects.toThrow(FedgeClientError);
    await expect(build(task(), { data: new Float32Array(7) })).rejects.toThrow(InvalidInputError);
    await expect(build(task(), { labels: new Uint8Array(3) })).rejects.toThrow(InvalidInputError);
    await expect(build(task(), { labels: new Uint8Array(n).fill(9) })).rejects.toThrow(InvalidInputError);
    const nan = data.slice();
    nan[3] = Number.NaN;
    await expect(build(task(), { data: nan })).rejects.toThrow(InvalidInputError);
  });
});
