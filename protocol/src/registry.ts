/**
 * @module
 * The model registry's JSON bodies: model listings, the serving pointer, uploads and promote/rollback.
 * A version is immutable once uploaded; the serving version is a pointer that admins move (promote) and move back
 * (rollback, along `serving_history`).
 */
import { z } from "zod";
import { IsoDateTime, ModelName, ModelVersion, Sha256Hex } from "./common.ts";
import { ModelManifest, Quantization } from "./manifest.ts";

/**
 * Largest ONNX file the registry accepts (bytes). A Worker isolate has 128 MB for JS and wasm together. Measured in
 * workerd (@fedge/ml's `onnx/servable.ts`): onnxruntime's heap starts at 16 MiB and grows by about 4× the
 * float32-equivalent weights while a session is created, so a 12 MiB float32 model peaks near 64 MiB of wasm heap,
 * plus the 12 MiB of upload bytes in JS: room for the runtime's own JS heap and the other cached sessions.
 */
export const MAX_MODEL_BYTES = 12 * 1024 * 1024;

/**
 * Largest estimated session memory (`ServableModel.sessionBytes`) the registry accepts: 1.5 × 12 MiB of
 * float32-equivalent weights + 1 MiB. It bounds int8 models, whose weights become float32 at load (4×): an int8 file
 * of 3 MiB of weights is the largest.
 */
export const MAX_SESSION_BYTES = 19 * 1024 * 1024;

export const ModelVersionSummary = z
  .object({
    version: ModelVersion,
    sha256: Sha256Hex,
    size_bytes: z.number().int().positive(),
    created_at: IsoDateTime,
    quantization: Quantization,
  })
  .meta({ id: "ModelVersionSummary" });
export type ModelVersionSummary = z.infer<typeof ModelVersionSummary>;

/** The registry record of one model (stored as `models/<name>/index.json` in R2). */
export const ModelIndex = z
  .object({
    name: ModelName,
    /** The version `/predict` uses; `null` until one is promoted. */
    serving_version: ModelVersion.nullable(),
    /** Earlier serving versions, most recent last: `rollback` pops from here. */
    serving_history: z.array(ModelVersion),
    /** Every uploaded version, ascending. */
    versions: z.array(ModelVersionSummary),
    updated_at: IsoDateTime,
    /**
     * Set on an audit shadow population (`rounds/audit-shadow.ts`): the production population it audits. None of a
     * shadow's versions is ever served.
     */
    audit_of: ModelName.optional(),
  })
  .meta({ id: "ModelIndex" });
export type ModelIndex = z.infer<typeof ModelIndex>;

export const ModelSummary = z
  .object({
    name: ModelName,
    serving_version: ModelVersion.nullable(),
    latest_version: ModelVersion.nullable(),
    updated_at: IsoDateTime,
  })
  .meta({ id: "ModelSummary" });
export type ModelSummary = z.infer<typeof ModelSummary>;

export const ModelList = z.object({ models: z.array(ModelSummary) }).meta({ id: "ModelList" });
export type ModelList = z.infer<typeof ModelList>;

/** `GET /v1/models/:name`: the record plus the serving version's manifest. */
export const ModelDetail = ModelIndex.extend({ serving: ModelManifest.nullable() }).meta({ id: "ModelDetail" });
export type ModelDetail = z.infer<typeof ModelDetail>;

/**
 * The `manifest` field of an upload. `sha256`, `size_bytes` and `created_at` may be left out: the edge computes the
 * first two from the uploaded bytes (and checks them when given) and sets `created_at` to the upload time. A signed
 * manifest (`aggregator`) must carry all three, since the signature covers them; the edge verifies and keeps it.
 */
export const ModelUploadManifest = ModelManifest.extend({
  sha256: Sha256Hex.optional(),
  size_bytes: z.number().int().positive().optional(),
  created_at: IsoDateTime.optional(),
})
  .strict()
  .meta({ id: "ModelUploadManifest" });
export type ModelUploadManifest = z.infer<typeof ModelUploadManifest>;

/** `POST /v1/admin/models/:name/serving`. */
export const PromoteRequest = z.object({ version: ModelVersion }).strict().meta({ id: "PromoteRequest" });
export type PromoteRequest = z.infer<typeof PromoteRequest>;

/** Answer of upload, promote and rollback: the updated record. */
export const RegistryChange = z
  .object({
    model: ModelIndex,
    /** The manifest of the version that was uploaded or now serves. */
    manifest: ModelManifest.nullable(),
  })
  .meta({ id: "RegistryChange" });
export type RegistryChange = z.infer<typeof RegistryChange>;
