/**
 * @module
 * Backend selection. `auto` uses webgpu on a hardware adapter and the cpu backend otherwise: when there is no adapter,
 * and when the adapter is a software rasteriser (lavapipe, llvmpipe, SwiftShader, WARP; see `software-adapter.ts`),
 * where the WGSL kernels share the CPU cores with extra copies and run well below the cpu path. The environment
 * variable `FEDGE_BACKEND=cpu|webgpu` overrides `prefer`; an explicit `webgpu` uses any adapter, software included.
 * A missing GPU is never an error under `auto`; choosing cpu there is logged through `log`; an explicit `webgpu`
 * without an adapter throws `BackendError("unavailable")`. The returned backend says why it was chosen (`reason`).
 * The Dawn adapter module is imported dynamically, only when webgpu is tried, so the cpu path never loads it.
 */
import type { Backend } from "./backend.ts";
import { BackendError } from "./errors.ts";
import { createCpuBackend, type CpuBackendOptions } from "./cpu/index.ts";
import type { WebGpuBackendOptions } from "./webgpu/index.ts";
import { softwareAdapterReason } from "./webgpu/software-adapter.ts";

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
   * Where the note goes when `auto` chooses the cpu backend (no adapter, or a software one).
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

/** A backend from {@link createBackend}, with the reason it was chosen. */
export type SelectedBackend = Backend & {
  /** Why this backend, e.g. `auto: software WebGPU adapter (isFallbackAdapter; …); the cpu backend is faster there`. */
  readonly reason: string;
};

function selected(backend: Backend, reason: string): SelectedBackend {
  return Object.assign(backend, { reason });
}

/** Creates the backend for this process (see the module header). */
export async function createBackend(options: CreateBackendOptions = {}): Promise<SelectedBackend> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((m: string) => console.warn(m));
  const choice = resolvePreference(options.prefer, env);
  const source = parsePreference(env.FEDGE_BACKEND, "FEDGE_BACKEND") ? "FEDGE_BACKEND" : "prefer";
  if (choice === "cpu") return selected(createCpuBackend(options.cpu), `${source} is "cpu"`);
  let why = "no WebGPU adapter";
  try {
    const { checkWebGpuOptions, describeAdapter, openWebGpuBackend, requestAdapter } =
      await import("./webgpu/index.ts");
    const webgpu = options.webgpu ?? {};
    checkWebGpuOptions(webgpu); // bad options are an error even when auto ends up on the cpu
    const adapter = webgpu.adapter ?? (await requestAdapter());
    if (adapter) {
      const info = adapter.info;
      const software = softwareAdapterReason(info, (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter);
      if (choice === "auto" && software) {
        log(
          `@fedge/gpu-node: software WebGPU adapter (${software}): using the cpu backend, which is faster there ` +
            "(FEDGE_BACKEND=webgpu uses the adapter anyway)",
        );
        return selected(
          createCpuBackend(options.cpu),
          `auto: software WebGPU adapter (${software}); the cpu backend is faster there`,
        );
      }
      const gpu = await openWebGpuBackend({ ...webgpu, adapter });
      if (gpu) {
        const kind = software ? `software adapter (${software})` : `hardware adapter ${describeAdapter(info)}`;
        return selected(gpu, choice === "auto" ? `auto: ${kind}` : `${source} is "webgpu": ${kind}`);
      }
    }
  } catch (e) {
    if (e instanceof BackendError && e.reason === "invalid_argument") throw e;
    why = `WebGPU unavailable: ${e instanceof Error ? e.message : String(e)}`;
  }
  if (choice === "webgpu") {
    throw new BackendError(
      "unavailable",
      `FEDGE_BACKEND/prefer is "webgpu" but ${why} (unset it or use "cpu" to run on the CPU)`,
    );
  }
  log(`@fedge/gpu-node: ${why}; using the cpu backend`);
  return selected(createCpuBackend(options.cpu), `auto: ${why}`);
}
