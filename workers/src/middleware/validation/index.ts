export * from "./validation.ts";
export * from "./body.ts";
export * from "./responses.ts";
