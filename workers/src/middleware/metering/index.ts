export * from "./metering.ts";
