export * from "./admin-auth.ts";
