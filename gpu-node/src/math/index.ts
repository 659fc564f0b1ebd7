export * from "./math.ts";
