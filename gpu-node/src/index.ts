/**
 * @module
 * @fedge/gpu-node: the aggregation `Backend` (clip + weighted accumulate, CSPRNG noise, server optimizers, int8
 * quantization) with a `webgpu` implementation (WGSL through Dawn) and an exact `cpu` one. Start with
 * {@link createBackend}. The webgpu implementation is at the `@fedge/gpu-node/webgpu` subpath (it loads Dawn). Every
 * failure is a {@link BackendError} with a `reason`.
 */
export * from "./backend.ts";
export { BackendError, type BackendErrorReason } from "./errors.ts";
export * from "./create-backend.ts";
export { createCpuBackend, type CpuBackend, type CpuBackendOptions } from "./cpu/index.ts";
export type { WebGpuBackendOptions, WebGpuBackend } from "./webgpu/index.ts";
export {
  createParamShardedBackend,
  planParamSlices,
  type ParamShardedBackendOptions,
  type ParamSlice,
} from "./sharded/param-sharded.ts";
export { softwareAdapterReason, type AdapterIdentity } from "./webgpu/software-adapter.ts";
