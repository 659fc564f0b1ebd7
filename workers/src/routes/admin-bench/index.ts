export * from "./admin-bench.ts";
