/**
 * @module
 * The model manifest: what a served model version is, how it was quantized, its hash, and the aggregator's
 * Ed25519 signature over the canonical JSON of every other field.
 */
import { z } from "zod";
import { Base64Url, IsoDateTime, ModelName, ModelVersion, Sha256Hex, TensorShape } from "./common.ts";
import { TENSOR_DTYPES } from "./inference/tensor-data.ts";

export const TensorSpec = z.object({
  name: z.string().min(1).max(128),
  /** One entry per axis; `null` marks a dynamic (symbolic or unknown) dimension. */
  shape: TensorShape,
  dtype: z.enum(TENSOR_DTYPES),
  /**
   * Inclusive `[min, max]` every value must stay in (inputs only). The edge also enforces the range the graph implies
   * (Gather indices into a constant table), whether or not it is declared here.
   */
  range: z
    .tuple([z.number(), z.number()])
    .refine(([lo, hi]) => lo <= hi, "range must be [min, max] with min <= max")
    .optional(),
});
export type TensorSpec = z.infer<typeof TensorSpec>;

export const Quantization = z.object({
  /**
   * `none`: float32 weights; `int8-per-channel-symmetric`: int8 weights with one float32 scale per output channel
   * (`DequantizeLinear` without zero point); `int8-per-channel-asymmetric`: the same with an int8 zero point per channel.
   */
  scheme: z.enum(["none", "int8-per-channel-symmetric", "int8-per-channel-asymmetric"]),
  weight_dtype: z.enum(["float32", "int8"]),
  /**
   * `float32` (default): activations stay float32 (weight-only quantization); `uint8-static`: activations entering
   * the quantized operators go through QuantizeLinear/DequantizeLinear with calibrated uint8 scales.
   */
  activations: z.enum(["float32", "uint8-static"]).optional(),
});
export type Quantization = z.infer<typeof Quantization>;

export const ManifestSignature = z.object({
  /** Ed25519 public key of the signer (32 bytes, base64url). */
  public_key: Base64Url,
  /** Ed25519 detached signature (64 bytes, base64url) over `canonicalManifestBytes(manifest)`. */
  signature: Base64Url,
});

export const ModelManifest = z
  .object({
    name: ModelName,
    version: ModelVersion,
    inputs: z.array(TensorSpec).min(1),
    outputs: z.array(TensorSpec).min(1),
    quantization: Quantization,
    sha256: Sha256Hex,
    size_bytes: z.number().int().positive(),
    created_at: IsoDateTime,
    /** Trainable parameter layout (see `model-layout`), when the model can be trained federatedly. */
    layout: z.string().optional(),
    /** Cumulative user-level privacy spent by the training that produced this version. */
    privacy: z.object({ epsilon: z.number().nonnegative(), delta: z.number().gt(0).lt(1) }).optional(),
    /**
     * How this version scored on the publisher's held-out evaluation set (never on devices' data), shown to operators
     * next to the version; covered by the signature like every other field. It is the accuracy of THIS artifact (the
     * bytes `sha256` names, with the weights `quantization` states, e.g. int8), not of the float32 model it came from.
     */
    evaluation: z
      .object({ accuracy: z.number().min(0).max(1) })
      .strict()
      .optional(),
    aggregator: ManifestSignature.optional(),
  })
  .meta({ id: "ModelManifest" });
export type ModelManifest = z.infer<typeof ModelManifest>;

/** Deterministic JSON (sorted keys, no whitespace) of the manifest without its signature: the signed bytes. */
export function canonicalManifestBytes(manifest: ModelManifest): Uint8Array {
  const { aggregator: _signature, ...rest } = manifest;
  return new TextEncoder().encode(canonicalJson(rest));
}

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}
