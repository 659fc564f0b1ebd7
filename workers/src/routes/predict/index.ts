export * from "./predict.ts";
export * from "./decode.ts";
