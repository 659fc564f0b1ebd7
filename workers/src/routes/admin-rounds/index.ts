export * from "./admin-rounds.ts";
