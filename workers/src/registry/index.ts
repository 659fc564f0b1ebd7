export * from "./registry.ts";
export * from "./validate.ts";
