export * from "./create-backend.ts";
