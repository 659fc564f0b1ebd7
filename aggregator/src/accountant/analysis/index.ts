export * from "./special.ts";
export * from "./rdp.ts";
export * from "./analytic-gaussian.ts";
export * from "./fft.ts";
export * from "./pld.ts";
