/**
 * @module
 * @fedge/demo: npm run demo: a private MNIST classifier trained across simulated devices through the local edge.
 */
export * from "./demo.ts";
export * from "./fleet.ts";
export * from "./misbehave.ts";
export * from "./pool.ts";
export * from "./report.ts";
export * from "./svg.ts";
