export * from "./mlp.ts";
