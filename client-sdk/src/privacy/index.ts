export * from "./local-noise.ts";
export * from "./epsilon.ts";
