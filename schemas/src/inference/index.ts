export * from "./inference.ts";
export * from "./tensor-data.ts";
export * from "./v2.ts";
export * from "./v2-binary.ts";
export * from "./v2-request.ts";
