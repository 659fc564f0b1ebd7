/**
 * @module
 * The Dawn adapter: the only module that imports the `webgpu` package (Dawn's Node bindings). Nothing on the cpu path
 * imports it; `create-backend` loads it with a dynamic `import()` only when webgpu is wanted.
 *
 * Pitfall (../../shared/notes/webgpu-on-cpu.md): if the object returned by `create([])` is garbage-collected while a
 * device is alive, dawn.node crashes (SIGSEGV/SIGABRT). It is therefore kept on `globalThis.__fedgeGpu` for the whole
 * process and never dropped.
 */
import { create } from "webgpu";

declare global {
  var __fedgeGpu: GPU | undefined;
}

/** GPUBufferUsage / GPUMapMode values (the Node bindings do not install the browser globals). */
export const Usage = {
  MAP_READ: 0x1,
  COPY_SRC: 0x4,
  COPY_DST: 0x8,
  UNIFORM: 0x40,
  STORAGE: 0x80,
} as const;
export const MAP_READ = 0x1;

export interface GpuContext {
  device: GPUDevice;
  adapterInfo: GPUAdapterInfo;
  limits: { maxStorageBufferBindingSize: number; maxBufferSize: number };
  /** Text of the first uncaptured device error, if any (checked after each operation). */
  lastError: string | null;
}

/** The process-wide GPU entry point (kept alive forever; see the module header). */
export function gpu(): GPU {
  globalThis.__fedgeGpu ??= create([]);
  return globalThis.__fedgeGpu;
}

/** Requests an adapter; null when there is none (no Vulkan driver, no GPU). Never throws for a missing GPU. */
export async function requestAdapter(): Promise<GPUAdapter | null> {
  try {
    return await gpu().requestAdapter({ powerPreference: "high-performance" });
  } catch {
    return null;
  }
}

/**
 * Opens a device on `adapter` (default: the one {@link requestAdapter} finds) with the adapter's largest storage-binding
 * and buffer sizes. Null when there is no adapter.
 */
export async function openDevice(adapter?: GPUAdapter): Promise<GpuContext | null> {
  adapter ??= (await requestAdapter()) ?? undefined;
  if (!adapter) return null;
  const limits = {
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    maxBufferSize: adapter.limits.maxBufferSize,
  };
  const device = await adapter.requestDevice({ requiredLimits: limits });
  const ctx: GpuContext = { device, adapterInfo: adapter.info, limits, lastError: null };
  device.addEventListener("uncapturederror", (ev) => {
    ctx.lastError ??= (ev as GPUUncapturedErrorEvent).error.message;
  });
  return ctx;
}

/** One line describing the adapter, e.g. `mesa llvmpipe (software): llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)`. */
export function describeAdapter(info: GPUAdapterInfo): string {
  return `${info.vendor || "?"} ${info.architecture || "?"} ${info.device || ""}: ${info.description || ""}`.trim();
}
