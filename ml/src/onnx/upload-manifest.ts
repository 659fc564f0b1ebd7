/**
 * @module
 * The registry upload manifest of an ONNX file, read from the file itself (the wire shape is @fedge/protocol's
 * `ModelUploadManifest`).
 */
import { ModelUploadManifest } from "@fedge/protocol";
import { detectQuantization } from "../quantize/qdq.ts";
import { decodeOnnx } from "./codec.ts";
import { checkServable, type ServableTensor } from "./servable.ts";

/**
 * The upload manifest of an ONNX file, read from the file itself: input/output names, dtypes and shapes (symbolic and
 * unknown dimensions become `null`), the value range of inputs that index a constant table, and the quantization the
 * graph carries. The edge fills in sha256, size_bytes and created_at. Throws `OnnxFormatError` or
 * `UnsupportedModelError` for a file the edge would refuse.
 */
export function uploadManifestFromOnnx(
  name: string,
  version: number,
  bytes: Uint8Array,
  extra: { layout?: string } = {},
): ModelUploadManifest {
  const model = decodeOnnx(bytes, { copyBytes: false });
  const info = checkServable(model);
  const spec = (v: ServableTensor) => {
    const range = info.inputRanges[v.name];
    return {
      name: v.name,
      dtype: v.dtype,
      shape: v.shape.map((d) => (typeof d === "number" ? d : null)),
      ...(range ? { range } : {}),
    };
  };
  return ModelUploadManifest.parse({
    name,
    version,
    inputs: info.inputs.map(spec),
    outputs: info.outputs.map(spec),
    quantization: detectQuantization(model),
    ...(extra.layout ? { layout: extra.layout } : {}),
  });
}
