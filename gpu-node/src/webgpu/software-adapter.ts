/**
 * @module
 * Tells a software WebGPU adapter (a CPU rasteriser: Mesa lavapipe/llvmpipe, SwiftShader, WARP) from a hardware one,
 * from what the adapter reports about itself. On a software adapter the WGSL kernels run on the same CPU cores as the
 * cpu backend, after two extra copies of every update, so `auto` prefers the cpu backend there (measured on lavapipe:
 * the webgpu path at ~0.15× the cpu path, bench suite gpu-node). Pure: no Dawn import, so `create-backend` can use it
 * without loading Dawn.
 */

/** The adapter fields the classifier reads (a `GPUAdapterInfo`, or part of one). */
export interface AdapterIdentity {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  /** Set by the implementation for a fallback (typically software) adapter; `GPUAdapterInfo.isFallbackAdapter`. */
  isFallbackAdapter?: boolean;
}

/** Names of CPU rasterisers as they appear in adapter strings (WARP reports "Microsoft Basic Render Driver"). */
const SOFTWARE_RENDERERS = /\b(llvmpipe|lavapipe|softpipe|swrast|swiftshader|microsoft basic render driver)\b/i;

/**
 * Why this adapter is a software one, e.g. `isFallbackAdapter; architecture "software"; device "llvmpipe-…"`, or
 * null for a hardware adapter. An adapter that reports nothing (empty strings, as browsers may) counts as hardware.
 * @param adapterIsFallback the older `GPUAdapter.isFallbackAdapter`, for implementations that still put it there
 */
export function softwareAdapterReason(info: AdapterIdentity, adapterIsFallback?: boolean): string | null {
  const signs: string[] = [];
  if (info.isFallbackAdapter === true || adapterIsFallback === true) signs.push("isFallbackAdapter");
  if (info.architecture?.trim().toLowerCase() === "software") signs.push(`architecture "${info.architecture}"`);
  for (const field of ["vendor", "device", "description"] as const) {
    const value = info[field];
    if (value && SOFTWARE_RENDERERS.test(value)) signs.push(`${field} "${value}"`);
  }
  return signs.length > 0 ? signs.join("; ") : null;
}
