export * from "./random.ts";
export * from "./discrete-gaussian.ts";
