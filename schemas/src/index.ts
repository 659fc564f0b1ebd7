/**
 * @module
 * @fedge/schemas: every wire contract of fedge, defined once.
 */
export * from "./common/index.ts";
export * from "./errors/index.ts";
export * from "./manifest/index.ts";
export * from "./rounds/index.ts";
export * from "./devices/index.ts";
export * from "./model-layout/index.ts";
export * from "./random/index.ts";
export * from "./keys/index.ts";
export * from "./admin-auth/index.ts";
export * from "./onnx/index.ts";
export * from "./quantize/index.ts";
export * from "./registry/index.ts";
export * from "./inference/index.ts";
export * from "./update-codec/index.ts";
export * from "./gaussian-mechanism/index.ts";
