export * from "./cpu.ts";
export { simdModuleBytes } from "./simd.ts";
