/**
 * @module
 * The registry upload manifest of an MLP ONNX file, read from the file itself (the wire shape is @fedge/protocol's
 * `ModelUploadManifest`).
 */
import { ModelUploadManifest } from "@fedge/protocol";
import { inspectOnnx, type OnnxValueInfo } from "../onnx/inspect.ts";
import { readMlpFromOnnx } from "./onnx-mlp.ts";

/**
 * The upload manifest of a fedge MLP ONNX file, read from the file itself: input/output names, dtypes and shapes
 * (symbolic dimensions become `null`) and the quantization. The edge fills in sha256, size_bytes and created_at.
 */
export function uploadManifestFromOnnx(
  name: string,
  version: number,
  bytes: Uint8Array,
  extra: { layout?: string } = {},
): ModelUploadManifest {
  const info = inspectOnnx(bytes);
  const spec = (v: OnnxValueInfo) => ({
    name: v.name,
    dtype: v.dtype as "float32",
    shape: (v.shape ?? []).map((d) => (typeof d === "number" ? d : null)),
  });
  const scheme = readMlpFromOnnx(bytes).quantization;
  return ModelUploadManifest.parse({
    name,
    version,
    inputs: info.inputs.map(spec),
    outputs: info.outputs.map(spec),
    quantization: { scheme, weight_dtype: scheme === "none" ? "float32" : "int8" },
    ...(extra.layout ? { layout: extra.layout } : {}),
  });
}
