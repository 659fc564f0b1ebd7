export * from "./admin-client.ts";
export * from "./runner.ts";
export * from "./round-task.ts";
