/**
 * @module
 * @fedge/protocol: The wire contract of fedge: zod schemas of every request and response, error codes and envelope, the signed binary update codec, model manifests and round tasks. Depends on nothing of ours.
 */
export * from "./common.ts";
export * from "./errors.ts";
export * from "./manifest.ts";
export * from "./devices.ts";
export * from "./keys.ts";
export * from "./admin-auth.ts";
export * from "./registry.ts";
export * from "./inference/inference.ts";
export * from "./inference/tensor-data.ts";
export * from "./inference/v2.ts";
export * from "./inference/v2-binary.ts";
export * from "./inference/v2-request.ts";
export * from "./rounds/task.ts";
export * from "./rounds/admin.ts";
export * from "./rounds/privacy.ts";
export * from "./rounds/checkin.ts";
export * from "./rounds/receipt.ts";
export * from "./rounds/audit-shadow.ts";
export * from "./rounds/sharding.ts";
export * from "./rounds/release.ts";
export * from "./rounds/secagg.ts";
export * from "./update-codec/update-codec.ts";
export * from "./update-codec/encode.ts";
export * from "./update-codec/errors.ts";
export * from "./update-codec/signature.ts";
export * from "./update-codec/quantize.ts";
