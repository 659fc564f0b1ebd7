/**
 * @module
 * Validation of an uploaded model version against its manifest, before anything is stored: size cap, sha256 and
 * size (computed here, checked when declared), the aggregator's Ed25519 signature when present, ONNX parse, what
 * the edge can serve (`checkServable`: IR and opset onnxruntime-web 1.30 loads, operator domains, no external data,
 * dense tensor inputs/outputs of a served element type with a known rank), the estimated session memory against
 * `MAX_SESSION_BYTES`, the declared input/output names, dtypes and shapes against the ONNX graph, and the declared
 * quantization against the graph's. Whether onnxruntime can load the graph is checked by the caller (it creates the
 * session it will serve with).
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
  MAX_SESSION_BYTES,
  ModelManifest,
  sha256Hex,
  type ModelUploadManifest,
  type TensorSpec,
} from "@fedge/protocol";
import {
  checkServable,
  decodeOnnx,
  detectQuantization,
  type OnnxDim,
  type ServableModel,
  type ServableTensor,
} from "@fedge/ml";

function invalid(message: string): FedgeError {
  return new FedgeError("invalid_model", 400, message);
}

function sameDim(declared: number | null, actual: OnnxDim): boolean {
  if (declared === null) return typeof actual === "string" || actual === null;
  return actual === declared;
}

function checkTensors(kind: "input" | "output", declared: TensorSpec[], actual: ServableTensor[]): void {
  if (declared.length !== actual.length) {
    throw invalid(`manifest declares ${declared.length} ${kind}(s), the ONNX graph has ${actual.length}`);
  }
  declared.forEach((spec, i) => {
    const got = actual[i]!;
    const where = `${kind} ${i} (${spec.name})`;
    if (got.name !== spec.name) throw invalid(`${where}: the ONNX graph names it ${JSON.stringify(got.name)}`);
    if (got.dtype !== spec.dtype)
      throw invalid(`${where}: the ONNX graph has dtype ${got.dtype}, manifest ${spec.dtype}`);
    const shapeText = JSON.stringify(got.shape);
    if (got.shape.length !== spec.shape.length || !spec.shape.every((d, j) => sameDim(d, got.shape[j]!))) {
      throw invalid(
        `${where}: manifest shape ${JSON.stringify(spec.shape)} does not match the ONNX graph's ${shapeText}`,
      );
    }
  });
}

/**
 * What v1 `/predict` needs from a manifest: exactly one float32 input `[batch, ...fixed]` and a float32 first output
 * with a batch axis. Any other model is served by the Open Inference Protocol (`/v2/models/{name}/infer`).
 */
export function servableShape(manifest: ModelManifest): { featureShape: number[]; features: number } {
  const v2 = `; use POST /v2/models/${manifest.name}/infer for this model`;
  if (manifest.inputs.length !== 1) {
    throw invalid(
      `v1 /predict serves models with exactly one input, ${manifest.name} has ${manifest.inputs.length}${v2}`,
    );
  }
  const input = manifest.inputs[0]!;
  const output = manifest.outputs[0]!;
  if (input.dtype !== "float32" || output.dtype !== "float32") {
    throw invalid(`v1 /predict serves float32 models, ${manifest.name} takes ${input.dtype}${v2}`);
  }
  const [batch, ...rest] = input.shape;
  if (batch !== null || rest.length === 0 || rest.some((d) => d === null) || output.shape[0] !== null) {
    throw invalid(
      `v1 /predict needs an input [batch, ...fixed sizes] and an output [batch, ...], ${manifest.name} has ${JSON.stringify(input.shape)}${v2}`,
    );
  }
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
  const model = decodeOnnx(bytes, { copyBytes: false });
  const graph: ServableModel = checkServable(model);
  if (graph.sessionBytes > MAX_SESSION_BYTES) {
    const mib = (n: number) => (n / 2 ** 20).toFixed(1);
    throw new FedgeError(
      "payload_too_large",
      413,
      `the model needs about ${mib(graph.sessionBytes)} MiB of memory once loaded (int8 weights become float32); ` +
        `the cap is ${mib(MAX_SESSION_BYTES)} MiB`,
    );
  }
  checkTensors("input", manifest.inputs, graph.inputs);
  checkTensors("output", manifest.outputs, graph.outputs);
  const q = detectQuantization(model);
  const declared = manifest.quantization;
  if (
    declared.scheme !== q.scheme ||
    declared.weight_dtype !== q.weight_dtype ||
    (declared.activations !== undefined && declared.activations !== (q.activations ?? "float32"))
  ) {
    throw invalid(`manifest quantization ${JSON.stringify(declared)} does not match the graph's ${JSON.stringify(q)}`);
  }
  return manifest;
}
