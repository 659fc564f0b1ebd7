/**
 * @module
 * Open Inference Protocol bodies the edge writes: model metadata from a manifest, and an inference response whose
 * outputs are JSON `data` or binary tensor data after the JSON header (per output, as the request asked).
 */
import {
  joinInferBody,
  tensorToBytes,
  tensorToJson,
  V2_DATATYPES,
  type ModelManifest,
  type Tensor,
  type TensorSpec,
  type V2ModelMetadata,
} from "@fedge/protocol";

const tensorMetadata = (t: TensorSpec) => ({
  name: t.name,
  datatype: V2_DATATYPES[t.dtype],
  shape: t.shape.map((d) => d ?? -1),
});

/** `GET /v2/models/{name}[/versions/{v}]`: inputs and outputs with datatype and shape (`-1` = dynamic). */
export function modelMetadata(manifest: ModelManifest, versions: number[]): V2ModelMetadata {
  return {
    name: manifest.name,
    versions: versions.map(String),
    platform: "onnxruntime_onnx",
    inputs: manifest.inputs.map(tensorMetadata),
    outputs: manifest.outputs.map(tensorMetadata),
  };
}

export interface EncodedResponse {
  /** `null`: a JSON-only body. */
  headerLength: number | null;
  body: Uint8Array | string;
}

/** The inference response: JSON, or the JSON header and the binary outputs when any output goes back binary. */
export function encodeInferResponse(
  meta: { name: string; version: number; id: string | undefined },
  outputs: { name: string; binary: boolean }[],
  values: Record<string, Tensor>,
): EncodedResponse {
  const chunks: Uint8Array[] = [];
  const entries = outputs.map(({ name, binary }) => {
    const t = values[name]!;
    const base = { name, datatype: V2_DATATYPES[t.dtype], shape: t.shape };
    if (!binary) return { ...base, data: tensorToJson(t.dtype, t.data) };
    const bytes = tensorToBytes(t.data);
    chunks.push(bytes);
    return { ...base, parameters: { binary_data_size: bytes.byteLength } };
  });
  const json = {
    model_name: meta.name,
    model_version: String(meta.version),
    ...(meta.id !== undefined ? { id: meta.id } : {}),
    outputs: entries,
  };
  if (chunks.length === 0) return { headerLength: null, body: JSON.stringify(json) };
  const { body, headerLength } = joinInferBody(json, chunks);
  return { headerLength, body };
}
