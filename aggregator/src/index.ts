/**
 * @module
 * fedge aggregator: public API (the package's `.` entry). The edge client and round runner are `fedge/edge`, the CLI is
 * `fedge/cli`; the one-shot privacy audit (`runAuditSimulation`, `runEdgeAudit`) is here; `fedge/data`, `fedge/config`, `fedge/round`, `fedge/checkpoint`, `fedge/evaluate` and `fedge/export`
 * load one area without the rest.
 */
export * from "./data/index.ts";
export * from "./config.ts";
export * from "./strategy/strategy.ts";
export * from "./strategy/aggregate.ts";
export * from "./strategy/fedavg.ts";
export * from "./strategy/dp-central.ts";
export * from "./strategy/dp-local.ts";
export * from "./strategy/robust.ts";
export * from "./strategy/from-config.ts";
export * from "./round.ts";
export * from "./checkpoint.ts";
export * from "./evaluate.ts";
export * from "./export.ts";
export * from "./simulate/simulate.ts";
export * from "./simulate/clients.ts";
export * from "./audit/canaries.ts";
export * from "./audit/audit-simulation.ts";
export * from "./audit/canary-devices.ts";
export * from "./audit/edge-audit.ts";
