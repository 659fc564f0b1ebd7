export * from "./descriptor.ts";
export * from "./types.ts";
export * from "./codec.ts";
export * from "./tensor.ts";
export * from "./inspect.ts";
export * from "./graph.ts";
export * from "./servable.ts";
