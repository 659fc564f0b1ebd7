export * from "./admin-client.ts";
export * from "./edge-round.ts";
export * from "./runner.ts";
export * from "./round-task.ts";
export * from "./charge.ts";
