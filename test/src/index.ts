export * from "./local-edge.ts";
