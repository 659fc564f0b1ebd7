/**
 * @module
 * `fedge/edge`: the aggregator's side of the edge: the signed admin client, the public registry reads, and the
 * resumable round runner (`EdgeRoundRunner`) with its state file and round task.
 */
export * from "./admin-client.ts";
export * from "./edge-registry.ts";
export * from "./round-task.ts";
export * from "./runner-state.ts";
export * from "./runner.ts";
export * from "./charge.ts";
export * from "./secure-aggregation-driver.ts";
