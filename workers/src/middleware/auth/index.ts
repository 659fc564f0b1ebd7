export * from "./api-key.ts";
export * from "./key-cache.ts";
export * from "./key-status.ts";
export * from "./admin.ts";
export * from "./key-directory.ts";
