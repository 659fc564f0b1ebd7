export * from "./health.ts";
