export * from "./keys.ts";
