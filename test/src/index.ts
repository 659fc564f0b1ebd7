export * from "./local-edge.ts";
export * from "./zero-model.ts";
