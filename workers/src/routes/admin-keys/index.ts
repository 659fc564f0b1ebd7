export * from "./admin-keys.ts";
