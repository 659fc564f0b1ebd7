/**
 * @module
 * fedge aggregator: public API. Each area re-exports its folder's index.
 */
export * from "./data/index.ts";
export * from "./config/index.ts";
export * from "./strategy/index.ts";
export * from "./round/index.ts";
export * from "./checkpoint/index.ts";
export * from "./evaluate/index.ts";
export * from "./export/index.ts";
export * from "./simulate/index.ts";
