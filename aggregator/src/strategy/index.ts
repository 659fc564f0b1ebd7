export * from "./strategy.ts";
export * from "./aggregate.ts";
export * from "./fedavg.ts";
export * from "./dp-central.ts";
export * from "./dp-local.ts";
export * from "./robust.ts";
export * from "./from-config.ts";
