export * from "./webgpu.ts";
export { describeAdapter, requestAdapter } from "./device.ts";
