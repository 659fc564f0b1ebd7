/**
 * @module
 * onnxruntime-web inside workerd (see /work/shared/notes/onnxruntime-web-in-workerd.md).
 *
 * Workers forbid compiling wasm from bytes at run time, and onnxruntime-web has no option that takes a precompiled
 * `WebAssembly.Module`. So: the `onnxruntime-web/wasm` build (glue embedded), the plain SIMD wasm imported as a
 * CompiledWasm module by wrangler, `numThreads = 1`, `proxy = false`, `wasmBinary` set to placeholder bytes (which
 * makes ORT take the embedded-glue path without `import.meta.url`, `fetch` or `import()`), and — only while ORT
 * initialises, i.e. during the first session creation of the isolate — a `WebAssembly.instantiate` wrapper that
 * instantiates the precompiled module when the glue hands it bytes. `nodejs_compat` must stay off.
 */
import * as ort from "onnxruntime-web/wasm";
import ortWasmModule from "onnxruntime-web/ort-wasm-simd-threaded.wasm";

export type OrtSession = ort.InferenceSession;
export { ort };

/**
 * Session options. `disable_quant_qdq` turns off onnxruntime's QDQ fusions, which lets constant folding turn each
 * `DequantizeLinear` of a constant int8 weight into a float32 weight once, at session creation. The int8 model then
 * computes exactly its ONNX semantics at float32 speed. Without it the DequantizeLinear runs on every inference
 * (about 4× slower here), or, in onnxruntime-node at `extended`/`all`, DequantizeLinear+MatMul become a dynamically
 * quantized int8 matmul that is ~1e-2 off on MNIST logits.
 */
export const SESSION_OPTIONS = {
  executionProviders: ["wasm"],
  graphOptimizationLevel: "all",
  extra: { session: { disable_quant_qdq: "1" } },
} satisfies ort.InferenceSession.SessionOptions;

let initialised = false;
/** The wasm memory of onnxruntime (found in the instantiation's imports or exports), for memory measurements. */
let ortMemory: WebAssembly.Memory | null = null;

/** Bytes of onnxruntime's wasm heap (it only grows), or `null` before the first session. */
export function ortHeapBytes(): number | null {
  return ortMemory ? ortMemory.buffer.byteLength : null;
}

function findMemory(...objects: unknown[]): WebAssembly.Memory | null {
  for (const o of objects) {
    if (o instanceof WebAssembly.Memory) return o;
    if (o && typeof o === "object") {
      for (const v of Object.values(o as Record<string, unknown>)) {
        if (v instanceof WebAssembly.Memory) return v;
        if (v && typeof v === "object" && !(v instanceof WebAssembly.Module)) {
          for (const w of Object.values(v as Record<string, unknown>)) if (w instanceof WebAssembly.Memory) return w;
        }
      }
    }
  }
  return null;
}
let initialising: Promise<unknown> | null = null;

function configure(): void {
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  // Any non-empty bytes: ORT then uses the embedded glue; the wrapper below swaps in the real module.
  ort.env.wasm.wasmBinary = new Uint8Array([0x00, 0x61, 0x73, 0x6d]);
  ort.env.logLevel = "error";
}

/** Run `fn` with `WebAssembly.instantiate(bytes, imports)` redirected to the precompiled ORT module. */
async function withPrecompiledOrtWasm<T>(fn: () => Promise<T>): Promise<T> {
  const original = WebAssembly.instantiate;
  const patched = ((source: BufferSource | WebAssembly.Module, imports?: WebAssembly.Imports) => {
    if (source instanceof WebAssembly.Module) return original(source, imports);
    return original(ortWasmModule, imports).then((instance) => {
      ortMemory ??= findMemory(imports, instance.exports);
      return { module: ortWasmModule, instance };
    });
  }) as typeof WebAssembly.instantiate;
  WebAssembly.instantiate = patched;
  try {
    return await fn();
  } finally {
    WebAssembly.instantiate = original;
  }
}

/**
 * Create an inference session from ONNX bytes. The first call of the isolate also initialises the ORT runtime
 * (under the scoped wrapper); concurrent first calls wait for that one.
 */
export async function createOrtSession(bytes: Uint8Array): Promise<OrtSession> {
  const create = () => ort.InferenceSession.create(bytes, SESSION_OPTIONS);
  if (initialised) return create();
  if (initialising) {
    await initialising.catch(() => undefined);
    if (initialised) return create();
  }
  configure();
  const first = withPrecompiledOrtWasm(create);
  initialising = first;
  try {
    const session = await first;
    initialised = true;
    return session;
  } finally {
    initialising = null;
  }
}
