export * from "./mnist.ts";
export * from "./shard.ts";
export * from "./augment.ts";
export * from "./synthetic-text.ts";
