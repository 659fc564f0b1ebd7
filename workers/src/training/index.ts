export * from "./sampling.ts";
export * from "./update-checks.ts";
export * from "./ed25519.ts";
export * from "./result.ts";
export * from "./edge-key.ts";
export * from "./shard-of.ts";
export * from "./checkin-grants.ts";
export * from "./verified-devices.ts";
