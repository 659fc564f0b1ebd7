export * from "./admin-models.ts";
