export * from "./storage.ts";
export * from "./file-storage.ts";
export * from "./indexeddb-storage.ts";
