/**
 * @module
 * Open Inference Protocol (KServe v2 / Triton HTTP) bodies served under `/v2`: server and model metadata, the
 * inference request and response, and the v2 error form `{"error": "message"}` (fedge adds its snake_case `code`).
 * These zod schemas document the routes; the edge checks requests with `parseV2InferRequest`/`decodeV2Request`
 * (`v2-request.ts`), which a test keeps in agreement with them.
 *
 * @see https://github.com/kserve/open-inference-protocol/blob/main/specification/protocol/inference_rest.md
 */
import { z } from "zod";
import { V2_DATATYPES } from "./tensor-data.ts";

/** Largest `/v2` inference body (bytes), JSON or binary. */
export const MAX_INFER_BODY_BYTES = 8 * 1024 * 1024;
/** Most input elements of one inference request (all inputs together). */
export const MAX_INFER_ELEMENTS = 4 * 1024 * 1024;

const datatypes = Object.values(V2_DATATYPES) as [string, ...string[]];

export const V2DatatypeSchema = z.enum(datatypes).meta({ id: "V2Datatype" });

const Parameters = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));

/** Input or output description in model metadata; `-1` marks a dynamic dimension. */
export const V2TensorMetadata = z
  .object({
    name: z.string(),
    datatype: V2DatatypeSchema,
    shape: z.array(z.number().int().min(-1)),
  })
  .meta({ id: "V2TensorMetadata" });
export type V2TensorMetadata = z.infer<typeof V2TensorMetadata>;

/** `GET /v2/models/{name}[/versions/{v}]`. */
export const V2ModelMetadata = z
  .object({
    name: z.string(),
    /** Versions of the model in the registry (strings, as the protocol has them). */
    versions: z.array(z.string()),
    platform: z.literal("onnxruntime_onnx"),
    inputs: z.array(V2TensorMetadata),
    outputs: z.array(V2TensorMetadata),
  })
  .meta({ id: "V2ModelMetadata" });
export type V2ModelMetadata = z.infer<typeof V2ModelMetadata>;

/** `GET /v2`. */
export const V2ServerMetadata = z
  .object({ name: z.string(), version: z.string(), extensions: z.array(z.string()) })
  .meta({ id: "V2ServerMetadata" });

export const V2InferInput = z
  .object({
    name: z.string().min(1),
    /** Row-major; every dimension ≥ 0; fixed dimensions of the model must match. */
    shape: z.array(z.number().int().min(0)).max(8),
    datatype: V2DatatypeSchema,
    /** `binary_data_size`: the tensor's bytes follow the JSON header (binary tensor extension). */
    parameters: Parameters.optional(),
    /** Row-major values, flat or nested (absent when the data is binary). BOOL as true/false. */
    data: z.array(z.unknown()).optional(),
  })
  .strict()
  .meta({ id: "V2InferInput" });

export const V2InferRequest = z
  .object({
    id: z.string().optional(),
    /** `binary_data_output: true` asks for every output as binary data. */
    parameters: Parameters.optional(),
    inputs: z.array(V2InferInput).min(1),
    /** Outputs to return (default: all); `parameters.binary_data` per output. */
    outputs: z.array(z.object({ name: z.string(), parameters: Parameters.optional() })).optional(),
  })
  .strict()
  .meta({ id: "V2InferRequest" });
export type V2InferRequest = z.infer<typeof V2InferRequest>;

export const V2InferOutput = z
  .object({
    name: z.string(),
    shape: z.array(z.number().int().min(0)),
    datatype: V2DatatypeSchema,
    parameters: Parameters.optional(),
    data: z.array(z.union([z.number(), z.boolean()])).optional(),
  })
  .meta({ id: "V2InferOutput" });

export const V2InferResponse = z
  .object({
    model_name: z.string(),
    model_version: z.string(),
    id: z.string().optional(),
    outputs: z.array(V2InferOutput),
  })
  .meta({ id: "V2InferResponse" });
export type V2InferResponse = z.infer<typeof V2InferResponse>;

/** The v2 error form; `code` is fedge's stable snake_case error code. */
export const V2Error = z.object({ error: z.string(), code: z.string() }).meta({ id: "V2Error" });
export type V2Error = z.infer<typeof V2Error>;
