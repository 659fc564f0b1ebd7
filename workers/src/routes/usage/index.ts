export * from "./usage.ts";
