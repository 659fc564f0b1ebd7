export * from "./build-update.ts";
