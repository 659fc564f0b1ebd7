export type { OrtSession } from "./ort.ts";
export * from "./session-cache.ts";
