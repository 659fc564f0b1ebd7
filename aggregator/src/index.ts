/**
 * @module
 * fedge aggregator: public API. Each area re-exports its folder's index.
 */
export * from "./accountant/index.ts";
export * from "./ledger/index.ts";
export * from "./data/index.ts";
