/**
 * @module
 * Validation of an uploaded model version against its manifest, before anything is stored: size cap, sha256 and
 * size (computed here, checked when declared), the aggregator's Ed25519 signature when present, ONNX parse, and the
 * declared input/output names, dtypes and shapes against the ONNX graph. Whether onnxruntime can load the graph is
 * checked by the caller (it creates the session it will serve with).
 *
 * Trust is pinned: the public key written in a signed manifest only names the signer. The signature counts only when
 * that key is one the edge trusts as an aggregator key (`FEDGE_AGGREGATOR_PUBLIC_KEY`, or registered by the admin
 * token); a manifest signed by any other key is refused, however well its signature verifies, since anyone can sign
 * a manifest with a key of their own and write that key beside it.
 */
import nacl from "tweetnacl";
import {
  canonicalManifestBytes,
  FedgeError,
  fromBase64Url,
  MAX_MODEL_BYTES,
  ModelManifest,
  sha256Hex,
  type ModelUploadManifest,
  type TensorSpec,
} from "@fedge/protocol";
import { inspectOnnx, type OnnxDim, type OnnxValueInfo } from "@fedge/ml";

function invalid(message: string): FedgeError {
  return new FedgeError("invalid_model", 400, message);
}

function sameDim(declared: number | null, actual: OnnxDim): boolean {
  if (declared === null) return typeof actual === "string" || actual === null;
  return actual === declared;
}

function checkTensors(kind: "input" | "output", declared: TensorSpec[], actual: OnnxValueInfo[]): void {
  if (declared.length !== actual.length) {
    throw invalid(`manifest declares ${declared.length} ${kind}(s), the ONNX graph has ${actual.length}`);
  }
  declared.forEach((spec, i) => {
    const got = actual[i]!;
    const where = `${kind} ${i} (${spec.name})`;
    if (got.name !== spec.name) throw invalid(`${where}: the ONNX graph names it ${JSON.stringify(got.name)}`);
    if (got.dtype !== spec.dtype)
      throw invalid(`${where}: the ONNX graph has dtype ${got.dtype}, manifest ${spec.dtype}`);
    if (!got.shape) throw invalid(`${where}: the ONNX graph declares no shape`);
    const shapeText = JSON.stringify(got.shape);
    if (got.shape.length !== spec.shape.length || !spec.shape.every((d, j) => sameDim(d, got.shape![j]!))) {
      throw invalid(
        `${where}: manifest shape ${JSON.stringify(spec.shape)} does not match the ONNX graph's ${shapeText}`,
      );
    }
  });
}

/** What `/predict` needs from a manifest: one input `[batch, ...fixed]`, and float32 outputs with a batch axis. */
export function servableShape(manifest: ModelManifest): { featureShape: number[]; features: number } {
  if (manifest.inputs.length !== 1)
    throw invalid(`a served model has exactly one input, got ${manifest.inputs.length}`);
  const [batch, ...rest] = manifest.inputs[0]!.shape;
  if (batch !== null) throw invalid("the input's first dimension must be the dynamic batch dimension (null)");
  if (rest.length === 0 || rest.some((d) => d === null)) {
    throw invalid("the input's dimensions after the batch must be fixed positive sizes");
  }
  const out = manifest.outputs[0]!.shape;
  if (out[0] !== null) throw invalid("the first output's first dimension must be the dynamic batch dimension (null)");
  const featureShape = rest as number[];
  return { featureShape, features: featureShape.reduce((a, b) => a * b, 1) };
}

/** What `validateUpload` needs to know about trust. */
export interface UploadTrust {
  /** Whether a base64url Ed25519 public key is a trusted aggregator key (`isTrustedAggregatorKey`). */
  isTrustedSigner: (publicKey: string) => Promise<boolean>;
}

/**
 * Check an upload and return the complete manifest to store (sha256, size and created_at filled in).
 * Throws `FedgeError` 400 `invalid_model` / `bad_signature` (signature invalid, or by a key the edge does not trust) /
 * `validation_failed`, or 413 `payload_too_large`.
 */
export async function validateUpload(
  pathName: string,
  upload: ModelUploadManifest,
  bytes: Uint8Array,
  now: number,
  trust: UploadTrust,
): Promise<ModelManifest> {
  if (bytes.byteLength === 0) throw invalid("the model file is empty");
  if (bytes.byteLength > MAX_MODEL_BYTES) {
    throw new FedgeError("payload_too_large", 413, `model is ${bytes.byteLength} bytes; the cap is ${MAX_MODEL_BYTES}`);
  }
  if (upload.name !== pathName) {
    throw new FedgeError("validation_failed", 400, `manifest name ${upload.name} does not match the URL's ${pathName}`);
  }
  const sha256 = await sha256Hex(bytes);
  if (upload.sha256 !== undefined && upload.sha256 !== sha256) {
    throw invalid(`sha256 mismatch: manifest says ${upload.sha256}, the uploaded bytes hash to ${sha256}`);
  }
  if (upload.size_bytes !== undefined && upload.size_bytes !== bytes.byteLength) {
    throw invalid(`size mismatch: manifest says ${upload.size_bytes} bytes, uploaded ${bytes.byteLength}`);
  }
  if (upload.aggregator) {
    if (upload.sha256 === undefined || upload.size_bytes === undefined || upload.created_at === undefined) {
      throw invalid("a signed manifest must carry sha256, size_bytes and created_at (the signature covers them)");
    }
  }
  const manifest = ModelManifest.parse({
    ...upload,
    sha256,
    size_bytes: bytes.byteLength,
    created_at: upload.created_at ?? new Date(now).toISOString(),
  });
  if (manifest.aggregator) {
    const pk = fromBase64Url(manifest.aggregator.public_key);
    const sig = fromBase64Url(manifest.aggregator.signature);
    if (pk.length !== 32 || sig.length !== 64) {
      throw new FedgeError("bad_signature", 400, "aggregator public_key must be 32 bytes and signature 64 bytes");
    }
    if (!(await trust.isTrustedSigner(manifest.aggregator.public_key))) {
      throw new FedgeError(
        "bad_signature",
        400,
        `the manifest is signed by ${manifest.aggregator.public_key}, which is not a trusted aggregator key of this edge (FEDGE_AGGREGATOR_PUBLIC_KEY or /v1/admin/aggregator-keys)`,
      );
    }
    if (!nacl.sign.detached.verify(canonicalManifestBytes(manifest), sig, pk)) {
      throw new FedgeError("bad_signature", 400, "the aggregator signature does not verify over the manifest");
    }
  }
  const graph = inspectOnnx(bytes);
  checkTensors("input", manifest.inputs, graph.inputs);
  checkTensors("output", manifest.outputs, graph.outputs);
  servableShape(manifest);
  return manifest;
}
