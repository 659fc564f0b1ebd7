export * from "./simulate.ts";
export * from "./clients.ts";
