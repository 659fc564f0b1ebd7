export * from "./rounds.ts";
