import { chmod, mkdtemp, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import nacl from "tweetnacl";
import { createBackend } from "@fedge/gpu-node";
import { canonicalManifestBytes, ModelManifest } from "@fedge/protocol";
import { readMlpFromOnnx } from "@fedge/ml";
import { seededRandomBytes } from "@fedge/privacy/testing";
import { forward, initMlp, type MlpParams } from "@fedge/ml";
import {
  exportModel,
  generateSigningKey,
  loadOrCreateSigningKey,
  SigningKeyFileError,
  signManifest,
  verifyManifest,
} from "./export.ts";

const backend = await createBackend({ prefer: "cpu" });
const model = initMlp([784, 64, 10], { random: seededRandomBytes(1) });
const key = generateSigningKey(seededRandomBytes(2));

async function runOnnx(bytes: Uint8Array, x: Float32Array, n: number): Promise<Float32Array> {
  return runOnnxRows(bytes, x, n, 784);
}

/** Logits of `n` rows of `width` features through onnxruntime-node. */
async function runOnnxRows(bytes: Uint8Array, x: Float32Array, n: number, width: number): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const out = await session.run({ input: new ort.Tensor("float32", x, [n, width]) });
    return out.logits!.data as Float32Array;
  } finally {
    await session.release();
  }
}

describe("int8 ONNX export", () => {
  it("runs in onnxruntime-node close to the float32 model, at ≤ 0.3× its size", async () => {
    const { onnx, manifest } = await exportModel({
      model,
      name: "digits",
      version: 3,
      backend,
      signingKey: key,
      privacy: { epsilon: 1.25, delta: 1e-5 },
      evaluation: { accuracy: 0.9125 },
      createdAt: "2026-11-23T00:00:00.000Z",
    });
    const fp32 = await exportModel({
      model,
      name: "digits",
      version: 3,
      backend,
      signingKey: key,
      quantization: "none",
    });
    expect(onnx.length).toBeLessThanOrEqual(0.3 * fp32.onnx.length);
    expect(readMlpFromOnnx(onnx).quantization).toBe("int8-per-channel-symmetric");

    const n = 64;
    const x = new Float32Array(n * 784);
    const words = new Uint32Array(x.length);
    seededRandomBytes(3)(new Uint8Array(words.buffer));
    for (let i = 0; i < x.length; i++) x[i] = words[i]! / 2 ** 32;
    const reference = forward(model, x, n);
    const int8 = await runOnnx(onnx, x, n);
    const f32 = await runOnnx(fp32.onnx, x, n);
    let maxRef = 0;
    let maxErr8 = 0;
    let maxErr32 = 0;
    let sameClass = 0;
    for (let i = 0; i < reference.length; i++) {
      maxRef = Math.max(maxRef, Math.abs(reference[i]!));
      maxErr8 = Math.max(maxErr8, Math.abs(int8[i]! - reference[i]!));
      maxErr32 = Math.max(maxErr32, Math.abs(f32[i]! - reference[i]!));
    }
    for (let r = 0; r < n; r++) {
      const arg = (a: Float32Array) => a.subarray(r * 10, r * 10 + 10).reduce((b, v, j, s) => (v > s[b]! ? j : b), 0);
      if (arg(int8) === arg(reference)) sameClass++;
    }
    // Stated tolerance: fp32 export within 1e-4 absolute; int8 logits within 5 % of the largest |logit| and the
    // predicted class equal on ≥ 95 % of inputs (per-channel int8 error ≤ scale/2 per weight).
    expect(maxErr32).toBeLessThan(1e-4);
    expect(maxErr8).toBeLessThan(0.05 * maxRef);
    expect(sameClass / n).toBeGreaterThanOrEqual(0.95);

    expect(ModelManifest.parse(manifest)).toEqual(manifest);
    expect(manifest).toMatchObject({
      name: "digits",
      version: 3,
      inputs: [{ name: "input", shape: [null, 784], dtype: "float32" }],
      outputs: [{ name: "logits", shape: [null, 10], dtype: "float32" }],
      quantization: { scheme: "int8-per-channel-symmetric", weight_dtype: "int8" },
      size_bytes: onnx.length,
      privacy: { epsilon: 1.25, delta: 1e-5 },
      evaluation: { accuracy: 0.9125 },
      layout: "mlp-dense-v1:784x64x10",
    });
    expect(manifest.sha256).toMatch(/^[0-9a-f]{64}$/);
    // The accuracy is signed like every other field.
    expect(verifyManifest(manifest)).toBe(true);
    expect(verifyManifest({ ...manifest, evaluation: { accuracy: 0.99 } })).toBe(false);
  });

  it("signs the accuracy of the exported bytes (int8) into the manifest, not the float32 model's", async () => {
    // Each output column holds one large weight, so per-channel int8 (scale = max|w| / 127) rounds the small weights
    // that decide the class to 0: float32 gets both samples right, the int8 artifact answers class 1 for both.
    const lossy: MlpParams = {
      layers: [
        {
          inFeatures: 2,
          outFeatures: 2,
          weight: new Float32Array([1000, 1000.5, 1, -1]),
          bias: new Float32Array(2),
          activation: "none",
        },
      ],
    };
    const heldOut = { x: new Float32Array([1, 1, 1, -1]), y: new Uint8Array([0, 1]), n: 2 };
    const int8 = await exportModel({ model: lossy, name: "lossy", version: 1, backend, signingKey: key, heldOut });
    const fp32 = await exportModel({
      model: lossy,
      name: "lossy",
      version: 1,
      backend,
      signingKey: key,
      quantization: "none",
      heldOut,
    });
    // what onnxruntime computes on the published bytes is what the manifest states
    const logits = await runOnnxRows(int8.onnx, heldOut.x, 2, 2);
    const served = [0, 1].filter((i) => (logits[2 * i]! > logits[2 * i + 1]! ? 0 : 1) === heldOut.y[i]).length / 2;
    expect(served).toBe(0.5);
    expect(int8.evaluation).toMatchObject({ accuracy: 0.5, n: 2 });
    expect(int8.manifest.evaluation).toEqual({ accuracy: 0.5 });
    expect(int8.manifest.quantization.weight_dtype).toBe("int8");
    expect(verifyManifest(int8.manifest, key.publicKey)).toBe(true);
    expect(fp32.manifest.evaluation).toEqual({ accuracy: 1 });
    await expect(
      exportModel({
        model: lossy,
        name: "lossy",
        version: 1,
        backend,
        signingKey: key,
        heldOut,
        evaluation: { accuracy: 1 },
      }),
    ).rejects.toThrow(/either evaluation or heldOut/);
  });

  it("signs the manifest with Ed25519; any changed byte fails verification", async () => {
    const { manifest } = await exportModel({
      model,
      name: "digits",
      version: 1,
      backend,
      signingKey: key,
      createdAt: "2026-11-23T00:00:00.000Z",
    });
    expect(verifyManifest(manifest)).toBe(true);
    expect(verifyManifest(manifest, key.publicKey)).toBe(true);
    expect(verifyManifest(manifest, generateSigningKey().publicKey)).toBe(false);
    // independent check with tweetnacl over the canonical bytes
    expect(
      nacl.sign.detached.verify(
        canonicalManifestBytes(manifest),
        Buffer.from(manifest.aggregator!.signature, "base64url"),
        key.publicKey,
      ),
    ).toBe(true);
    expect(verifyManifest({ ...manifest, version: 2 })).toBe(false);
    expect(verifyManifest({ ...manifest, sha256: manifest.sha256.replace(/^./, (c) => (c === "a" ? "b" : "a")) })).toBe(
      false,
    );
    const sig = Buffer.from(manifest.aggregator!.signature, "base64url");
    sig[10]! ^= 1;
    expect(
      verifyManifest({ ...manifest, aggregator: { ...manifest.aggregator!, signature: sig.toString("base64url") } }),
    ).toBe(false);
    expect(verifyManifest({ ...manifest, aggregator: undefined })).toBe(false);
    const resigned = signManifest({ ...manifest, version: 2 }, key);
    expect(verifyManifest(resigned)).toBe(true);
  });

  it("creates the key file 0600, reloads the same key, refuses a readable or corrupt one", async () => {
    const dir = await mkdtemp(join(tmpdir(), "fedge-key-"));
    const path = join(dir, "sub", "aggregator.key");
    const k1 = await loadOrCreateSigningKey(path);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const k2 = await loadOrCreateSigningKey(path);
    expect(k2.publicKey).toEqual(k1.publicKey);
    expect(k2.secretKey).toEqual(k1.secretKey);
    await chmod(path, 0o644);
    await expect(loadOrCreateSigningKey(path)).rejects.toBeInstanceOf(SigningKeyFileError);
    await expect(loadOrCreateSigningKey(path)).rejects.toMatchObject({ reason: "exposed" });
    await chmod(path, 0o600);
    const text = JSON.parse(await readFile(path, "utf8")) as Record<string, string>;
    await writeFile(
      path,
      JSON.stringify({ ...text, public_key: Buffer.from(generateSigningKey().publicKey).toString("base64url") }),
    );
    await expect(loadOrCreateSigningKey(path)).rejects.toThrow(/does not match/);
    await expect(loadOrCreateSigningKey(path)).rejects.toMatchObject({ reason: "key_mismatch" });
    await writeFile(path, "nope");
    await expect(loadOrCreateSigningKey(path)).rejects.toThrow(/not JSON/);
    await expect(loadOrCreateSigningKey(path)).rejects.toMatchObject({ reason: "malformed" });
  });

  it("refuses an invalid model", async () => {
    const bad = { layers: [{ ...model.layers[0]!, weight: new Float32Array(3) }] };
    await expect(exportModel({ model: bad, name: "digits", version: 1, backend, signingKey: key })).rejects.toThrow(
      RangeError,
    );
    await expect(exportModel({ model: bad, name: "digits", version: 1, backend, signingKey: key })).rejects.toThrow(
      /cannot export/,
    );
  });
});
