export * from "./accountant.ts";
export * from "./rdp.ts";
export * from "./pld.ts";
export * from "./registry.ts";
export * from "./noise-multiplier.ts";
export * as privacyAnalysis from "./analysis/index.ts";
