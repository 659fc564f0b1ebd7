export * from "./checkpoint.ts";
