export * from "./inference.ts";
