export * from "./quantize.ts";
export * from "./per-axis.ts";
export * from "./qdq.ts";
export * from "./report.ts";
