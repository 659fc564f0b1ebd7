/**
 * @module
 * @fedge/schemas: every wire contract of fedge, defined once.
 */
export * from "./errors/index.ts";
