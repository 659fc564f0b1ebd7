/**
 * @module
 * @fedge/local-edge: Starts the real local edge (wrangler dev) with fresh state for the demo, the cross-package tests, the bench and npm run dev.
 */
export * from "./local-edge.ts";
export * from "./edge-fixture.ts";
