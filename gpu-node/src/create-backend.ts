/**
 * @module
 * Backend selection. `auto` uses webgpu when an adapter exists, else cpu; the environment variable
 * `FEDGE_BACKEND=cpu|webgpu` overrides `prefer`. A missing GPU is never an error under `auto` (the cpu fallback is
 * logged once through `log`); an explicit `webgpu` without an adapter throws `BackendError("unavailable")`.
 * The Dawn adapter module is imported dynamically, only when webgpu is tried, so the cpu path never loads it.
 */
import type { Backend } from "./backend.ts";
import { BackendError } from "./errors.ts";
import { createCpuBackend, type CpuBackendOptions } from "./cpu/index.ts";
import type { WebGpuBackendOptions } from "./webgpu/index.ts";

export type BackendPreference = "auto" | "webgpu" | "cpu";

/** Options of {@link createBackend}. */
export interface CreateBackendOptions {
  /**
   * Which backend to use; `FEDGE_BACKEND` (from `env`) overrides it.
   * @default "auto"
   */
  prefer?: BackendPreference;
  /** Options for the cpu backend. */
  cpu?: CpuBackendOptions;
  /** Options for the webgpu backend. */
  webgpu?: WebGpuBackendOptions;
  /**
   * Environment to read `FEDGE_BACKEND` from.
   * @default process.env
   */
  env?: Record<string, string | undefined>;
  /**
   * Where the fallback note goes.
   * @default console.warn
   */
  log?: (message: string) => void;
}

function parsePreference(value: string | undefined, source: string): BackendPreference | undefined {
  if (value === undefined || value === "") return undefined;
  const v = value.trim().toLowerCase();
  if (v === "auto" || v === "webgpu" || v === "cpu") return v;
  throw new BackendError(
    "invalid_argument",
    `${source} must be "auto", "webgpu" or "cpu", got ${JSON.stringify(value)}`,
  );
}

/** Resolves the preference: `FEDGE_BACKEND` first, then `prefer`, then `auto`. */
export function resolvePreference(
  prefer: BackendPreference | undefined,
  env: Record<string, string | undefined>,
): BackendPreference {
  return parsePreference(env.FEDGE_BACKEND, "FEDGE_BACKEND") ?? parsePreference(prefer, "prefer") ?? "auto";
}

/** Creates the backend for this process (see the module header). */
export async function createBackend(options: CreateBackendOptions = {}): Promise<Backend> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((m: string) => console.warn(m));
  const choice = resolvePreference(options.prefer, env);
  if (choice === "cpu") return createCpuBackend(options.cpu);
  let reason = "no WebGPU adapter";
  try {
    const { openWebGpuBackend } = await import("./webgpu/index.ts");
    const gpu = await openWebGpuBackend(options.webgpu);
    if (gpu) return gpu;
  } catch (e) {
    if (e instanceof BackendError && e.reason === "invalid_argument") throw e;
    reason = `WebGPU unavailable: ${e instanceof Error ? e.message : String(e)}`;
  }
  if (choice === "webgpu") {
    throw new BackendError(
      "unavailable",
      `FEDGE_BACKEND/prefer is "webgpu" but ${reason} (unset it or use "cpu" to run on the CPU)`,
    );
  }
  log(`@fedge/gpu-node: ${reason}; using the cpu backend`);
  return createCpuBackend(options.cpu);
}
