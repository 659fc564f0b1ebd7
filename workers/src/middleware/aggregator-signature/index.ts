export * from "./aggregator-signature.ts";
