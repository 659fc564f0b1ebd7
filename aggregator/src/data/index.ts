/**
 * @module
 * `fedge/data`: the MNIST loader and fixed split, non-IID sharding over clients, and shift augmentation.
 */
export * from "./mnist.ts";
export * from "./shard.ts";
export * from "./augment.ts";
export * from "./synthetic-text.ts";
