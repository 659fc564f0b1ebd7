export * from "./api-key.ts";
export * from "./key-cache.ts";
export * from "./admin.ts";
