/**
 * @module
 * Export of a global model for the edge: int8 ONNX bytes (per-output-channel symmetric weights quantized by the
 * Backend's `quantizePerChannelInt8`, graph built by `buildMlpOnnx` of @fedge/protocol: DequantizeLinear → MatMul →
 * Add [→ Relu], which onnxruntime-web runs) and a {@link ModelManifest} (shapes, sha256, size, version, privacy spent)
 * signed with the aggregator's Ed25519 key (tweetnacl `sign.detached`) over `canonicalManifestBytes`.
 *
 * Size: int8 weights take 1 byte per weight plus 4 bytes per output channel for the scale, vs 4 bytes per weight in
 * float32, so the file is ≈ 0.25× fp32 plus the biases and the graph (≤ 0.3× for any layer wider than a few dozen).
 */
import { createHash } from "node:crypto";
import { chmod, mkdir, open, readFile, stat } from "node:fs/promises";
import { dirname } from "node:path";
import nacl from "tweetnacl";
import { ModelManifest, canonicalManifestBytes, fromBase64Url, toBase64Url } from "@fedge/protocol";
import {
  MLP_INPUT_NAME,
  MLP_OUTPUT_NAME,
  assertValidMlp,
  buildMlpOnnx,
  readMlpFromOnnx,
  type MlpParams,
} from "@fedge/ml";
import { cryptoRandomBytes, type RandomBytes } from "@fedge/privacy";
import type { Backend } from "@fedge/gpu-node";
import { evaluateModel, type EvalSet, type Evaluation } from "./evaluate.ts";

/** An Ed25519 key pair (tweetnacl layout: 32-byte public key, 64-byte secret key = seed ‖ public key). */
export interface SigningKey {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** Options of {@link exportModel}. */
export interface ExportModelOptions {
  model: MlpParams;
  /** Model name (a slug). */
  name: string;
  /** Version number this export becomes (≥ 1). */
  version: number;
  /** Backend whose `quantizePerChannelInt8` quantizes each layer. */
  backend: Backend;
  /** Aggregator key the manifest is signed with. */
  signingKey: SigningKey;
  /** Cumulative privacy spent by the training that produced this model. */
  privacy?: { epsilon: number; delta: number };
  /**
   * Accuracy on the aggregator's held-out evaluation set, signed into the manifest (the operator dashboard shows it).
   * The caller vouches that it is the accuracy of the exported bytes; prefer {@link ExportModelOptions.heldOut}.
   */
  evaluation?: { accuracy: number };
  /**
   * Held-out set the exported bytes are evaluated on (read back from the ONNX: int8 weights dequantized as
   * DequantizeLinear does); that accuracy is signed into the manifest and returned as `evaluation`, so the manifest
   * states the accuracy of the artifact devices are served, not of the float32 model it was quantized from.
   * Exclusive with `evaluation`.
   */
  heldOut?: EvalSet;
  /**
   * `int8-per-channel-symmetric` or `none` (float32).
   * @default "int8-per-channel-symmetric"
   */
  quantization?: "int8-per-channel-symmetric" | "none";
  /**
   * Manifest timestamp (ISO 8601).
   * @default new Date().toISOString()
   */
  createdAt?: string;
  /** Parameter layout label stored in the manifest. @default "mlp-dense-v1:<in>x…x<out>" */
  layout?: string;
}

export interface ExportedModel {
  onnx: Uint8Array;
  manifest: ModelManifest;
  /** The exported bytes' evaluation on `heldOut` (absent without it). */
  evaluation?: Evaluation;
}

/** The layout label of an MLP: `mlp-dense-v1:784x64x10`. */
export function mlpLayoutLabel(model: MlpParams): string {
  return `mlp-dense-v1:${[model.layers[0]!.inFeatures, ...model.layers.map((l) => l.outFeatures)].join("x")}`;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Builds the ONNX bytes and the signed manifest (see the module header). */
export async function exportModel(o: ExportModelOptions): Promise<ExportedModel> {
  try {
    assertValidMlp(o.model);
  } catch (e) {
    throw new RangeError(`cannot export: ${(e as Error).message}`, { cause: e });
  }
  if (o.heldOut && o.evaluation) throw new RangeError("cannot export: give either evaluation or heldOut, not both");
  const quantization = o.quantization ?? "int8-per-channel-symmetric";
  let onnx: Uint8Array;
  if (quantization === "int8-per-channel-symmetric") {
    const layers = [];
    for (const l of o.model.layers)
      layers.push(await o.backend.quantizePerChannelInt8(l.weight, l.inFeatures, l.outFeatures));
    onnx = buildMlpOnnx(o.model, { quantization, name: o.name, int8: { layers } });
  } else if (quantization === "none") {
    onnx = buildMlpOnnx(o.model, { quantization, name: o.name });
  } else {
    throw new RangeError(`unknown quantization ${JSON.stringify(quantization)}`);
  }
  // the artifact's accuracy: what onnxruntime computes from these bytes (the float32 model may score higher)
  const evaluation = o.heldOut ? evaluateModel(readMlpFromOnnx(onnx).params, o.heldOut) : undefined;
  const signed = evaluation ? { accuracy: evaluation.accuracy } : o.evaluation;
  const first = o.model.layers[0]!;
  const last = o.model.layers[o.model.layers.length - 1]!;
  const unsigned = ModelManifest.parse({
    name: o.name,
    version: o.version,
    inputs: [{ name: MLP_INPUT_NAME, shape: [null, first.inFeatures], dtype: "float32" }],
    outputs: [{ name: MLP_OUTPUT_NAME, shape: [null, last.outFeatures], dtype: "float32" }],
    quantization: { scheme: quantization, weight_dtype: quantization === "none" ? "float32" : "int8" },
    sha256: sha256Hex(onnx),
    size_bytes: onnx.length,
    created_at: o.createdAt ?? new Date().toISOString(),
    layout: o.layout ?? mlpLayoutLabel(o.model),
    ...(o.privacy ? { privacy: o.privacy } : {}),
    ...(signed ? { evaluation: signed } : {}),
  });
  return { onnx, manifest: signManifest(unsigned, o.signingKey), ...(evaluation ? { evaluation } : {}) };
}

/** Signs a manifest (any previous signature is replaced). */
export function signManifest(manifest: ModelManifest, key: SigningKey): ModelManifest {
  checkKey(key);
  const { aggregator: _old, ...rest } = manifest;
  const signature = nacl.sign.detached(canonicalManifestBytes(rest), key.secretKey);
  return { ...rest, aggregator: { public_key: toBase64Url(key.publicKey), signature: toBase64Url(signature) } };
}

/**
 * Whether the manifest's signature verifies over its canonical bytes, and (when `publicKey` is given) was made by that
 * key. Never throws on malformed input: returns false.
 */
export function verifyManifest(manifest: ModelManifest, publicKey?: Uint8Array): boolean {
  try {
    const sig = manifest.aggregator;
    if (!sig) return false;
    const pk = fromBase64Url(sig.public_key);
    const s = fromBase64Url(sig.signature);
    if (pk.length !== 32 || s.length !== 64) return false;
    if (publicKey && (publicKey.length !== 32 || !pk.every((b, i) => b === publicKey[i]))) return false;
    return nacl.sign.detached.verify(canonicalManifestBytes(manifest), s, pk);
  } catch {
    return false;
  }
}

/** A fresh Ed25519 key pair from a CSPRNG seed. */
export function generateSigningKey(random: RandomBytes = cryptoRandomBytes): SigningKey {
  const seed = new Uint8Array(32);
  random(seed);
  const kp = nacl.sign.keyPair.fromSeed(seed);
  seed.fill(0);
  return { publicKey: kp.publicKey, secretKey: kp.secretKey };
}

function checkKey(key: SigningKey): void {
  if (
    !key ||
    !(key.secretKey instanceof Uint8Array) ||
    key.secretKey.length !== 64 ||
    !(key.publicKey instanceof Uint8Array) ||
    key.publicKey.length !== 32
  ) {
    throw new TypeError("signing key must be an Ed25519 key pair (32-byte public, 64-byte secret)");
  }
}

/**
 * Why a key file cannot be used: `exposed` (group/others may read it), `malformed` (not the expected JSON or seed),
 * `key_mismatch` (its public key is not its seed's).
 */
export type SigningKeyFileErrorReason = "exposed" | "malformed" | "key_mismatch";

/** A key file that cannot be used (see {@link SigningKeyFileErrorReason}). A domain error: no HTTP status. */
export class SigningKeyFileError extends Error {
  readonly reason: SigningKeyFileErrorReason;
  constructor(reason: SigningKeyFileErrorReason, message: string) {
    super(message);
    this.name = "SigningKeyFileError";
    this.reason = reason;
  }
}

/**
 * Loads the aggregator key from `path` (JSON `{"kty":"ed25519","public_key","secret_key"}` in base64url; the secret
 * is the 32-byte seed), or creates it with mode 0600 when the file does not exist. Refuses a key file whose mode lets
 * group/others read it, or whose public key does not match its seed.
 */
export async function loadOrCreateSigningKey(
  path: string,
  random: RandomBytes = cryptoRandomBytes,
): Promise<SigningKey> {
  let text: string | undefined;
  try {
    const st = await stat(path);
    if ((st.mode & 0o077) !== 0) {
      throw new SigningKeyFileError(
        "exposed",
        `${path} is accessible by group/others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`,
      );
    }
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  if (text === undefined) {
    const key = generateSigningKey(random);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const fh = await open(path, "wx", 0o600);
    try {
      await fh.writeFile(
        JSON.stringify({
          kty: "ed25519",
          public_key: toBase64Url(key.publicKey),
          secret_key: toBase64Url(key.secretKey.subarray(0, 32)),
        }) + "\n",
      );
      await fh.sync();
    } finally {
      await fh.close();
    }
    await chmod(path, 0o600);
    return key;
  }
  let parsed: { kty?: unknown; public_key?: unknown; secret_key?: unknown };
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    throw new SigningKeyFileError("malformed", `${path} is not JSON`);
  }
  if (parsed.kty !== "ed25519" || typeof parsed.secret_key !== "string" || typeof parsed.public_key !== "string") {
    throw new SigningKeyFileError("malformed", `${path} must hold {"kty":"ed25519","public_key","secret_key"}`);
  }
  const seed = fromBase64Url(parsed.secret_key);
  if (seed.length !== 32) throw new SigningKeyFileError("malformed", `${path}: secret_key must be a 32-byte seed`);
  const kp = nacl.sign.keyPair.fromSeed(seed);
  if (toBase64Url(kp.publicKey) !== parsed.public_key)
    throw new SigningKeyFileError("key_mismatch", `${path}: public_key does not match secret_key`);
  return { publicKey: kp.publicKey, secretKey: kp.secretKey };
}
