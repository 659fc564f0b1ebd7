export * from "./special.ts";
export * from "./analytic-gaussian.ts";
