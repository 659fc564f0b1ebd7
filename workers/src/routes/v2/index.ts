export * from "./v2.ts";
