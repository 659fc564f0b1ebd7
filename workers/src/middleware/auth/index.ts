export * from "./api-key.ts";
export * from "./admin.ts";
