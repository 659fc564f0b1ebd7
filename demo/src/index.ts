/**
 * @module
 * @fedge/demo: npm run demo: do the devices' data matter, privately? The public-only model, the private model served
 * through the local edge, the privacy–utility curve and the non-private ceiling, on the same test digits.
 */
export * from "./demo.ts";
export * from "./fleet.ts";
export * from "./in-process.ts";
export * from "./misbehave.ts";
export * from "./mode-comparison.ts";
export * from "./pool.ts";
export * from "./privacy.ts";
export * from "./report.ts";
export { DEMO_MIN_SHARDS } from "./served-run.ts";
export * from "./setting.ts";
export * from "./served-setting.ts";
export * from "./small-run.ts";
export * from "./svg.ts";
