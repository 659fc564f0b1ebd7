export * from "./webgpu.ts";
export { WebGpuAccumulator } from "./accumulator.ts";
export { describeAdapter, requestAdapter } from "./device.ts";
export { softwareAdapterReason, type AdapterIdentity } from "./software-adapter.ts";
