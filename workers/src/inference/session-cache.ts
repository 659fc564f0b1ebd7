/**
 * @module
 * Per-isolate cache of ORT sessions keyed by model, version and sha256: a session is created once per isolate from
 * the ONNX bytes and reused by every request. An LRU bounded by memory, not by count: each entry is charged the
 * session's estimated memory (`ServableModel.sessionBytes`: its weights as loaded, int8 weights folded to float32,
 * plus a fixed overhead), and the least recently used entries are released until the total fits `maxBytes`.
 * Runs on one session are serialised (ORT-web's wasm backend runs one at a time).
 */
import { FedgeError, type Tensor, type TensorArray, type TensorDtype } from "@fedge/protocol";
import { inspectServable, type ServableModel } from "@fedge/ml";
import type { OrtSession } from "./ort.ts";

type OrtModule = typeof import("./ort.ts");
type OrtTensor = InstanceType<OrtModule["ort"]["Tensor"]>;
let ortModule: Promise<OrtModule> | null = null;
/** The loaded module (set once `loadOrt()` resolved: later runs skip an await). */
let ortLoaded: OrtModule | null = null;

/**
 * onnxruntime-web (and its 14 MB wasm module) is loaded on the first inference, not at isolate start: requests that
 * never infer (health, keys, training plane) do not pay for it.
 */
export function loadOrt(): Promise<OrtModule> {
  ortModule ??= import("./ort.ts").then((m) => (ortLoaded = m));
  return ortModule;
}

/** Most input tensors kept per model (one per input shape seen, e.g. per batch size). */
const MAX_INPUT_TENSORS = 4;

/**
 * Default memory budget of the isolate's kept sessions (estimated, `ServableModel.sessionBytes`). An isolate has
 * 128 MB for JS and wasm together. Measured in workerd: onnxruntime's wasm heap starts at 16 MiB, never shrinks, and
 * grows by about 4·W while a session of W bytes of float32-equivalent weights is created (a kept one holds ~1.5·W).
 * Room is made before a session is created, so the heap peaks near 16 + (32 − 1.5·W) + 4·W MiB: at most ~78 MiB for
 * the largest model the registry accepts (W = 12 MiB), leaving the rest for JS.
 */
export const SESSION_CACHE_BYTES = 32 * 1024 * 1024;

export interface SessionCacheOptions {
  /**
   * Most estimated session memory kept (bytes). The entry just created is always kept, even when it alone is larger.
   * @default SESSION_CACHE_BYTES (32 MiB)
   */
  maxBytes?: number;
}

export interface CachedModel {
  key: string;
  session: OrtSession;
  /** The model's interface as its graph declares it (symbolic dims kept), input ranges and memory estimate. */
  graph: ServableModel;
  /** First input and output (the v1 `/predict` fast path). */
  inputName: string;
  outputName: string;
  /** Estimated memory of the session (what the cache is bounded by). */
  sizeBytes: number;
  /** Tail of the per-session run queue. */
  queue: Promise<unknown>;
  /**
   * Reusable input tensors by shape (`"1,784"`) for the fast path: runs of a session are serialised, so one float32
   * buffer per shape is enough. onnxruntime-web runs ~8 µs faster (about a third of a single-example MLP inference)
   * when it is handed a tensor object it has seen before than a fresh `Tensor` each time.
   */
  inputs: Map<string, OrtTensor>;
}

/** Output of one batch: `data` is row-major `[batch, perExample]`. */
export interface InferenceResult {
  data: Float32Array;
  batch: number;
  perExample: number;
}

export class SessionCache {
  private readonly maxBytes: number;
  private readonly entries = new Map<string, CachedModel>();
  private readonly pending = new Map<string, Promise<CachedModel>>();
  /** Sessions created by this cache (for tests and benchmarks). */
  created = 0;
  /** Sessions released by eviction. */
  evicted = 0;

  constructor(options: SessionCacheOptions = {}) {
    this.maxBytes = options.maxBytes ?? SESSION_CACHE_BYTES;
    if (!(this.maxBytes >= 1)) throw new RangeError(`maxBytes must be ≥ 1, got ${options.maxBytes}`);
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Estimated memory of the cached sessions. */
  get bytes(): number {
    let total = 0;
    for (const m of this.entries.values()) total += m.sizeBytes;
    return total;
  }

  /** The cached model for `key`, creating its session from `load()` once (concurrent callers share the creation). */
  async get(key: string, load: () => Promise<Uint8Array>): Promise<CachedModel> {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    let pending = this.pending.get(key);
    if (!pending) {
      pending = (async () => {
        const bytes = await load();
        const graph = inspectServable(bytes);
        // Make room before creating: the new session's memory is needed now, not after it exists.
        this.evict(graph.sessionBytes);
        const model = await createModel(key, bytes, graph);
        this.created++;
        this.entries.set(key, model);
        this.evict(0);
        return model;
      })();
      this.pending.set(key, pending);
      pending.finally(() => this.pending.delete(key)).catch(() => undefined);
    }
    return pending;
  }

  /** Release least recently used entries until `incoming` more bytes fit (the newest entry always stays). */
  private evict(incoming: number): void {
    let total = this.bytes + incoming;
    const newest = [...this.entries.keys()].at(-1);
    for (const [key, m] of this.entries) {
      if (total <= this.maxBytes) break;
      if (incoming === 0 && key === newest) continue;
      this.entries.delete(key);
      this.evicted++;
      total -= m.sizeBytes;
      // Release after queued runs finish.
      m.queue.finally(() => m.session.release()).catch(() => undefined);
    }
  }
}

async function createModel(key: string, bytes: Uint8Array, graph: ServableModel): Promise<CachedModel> {
  let session: OrtSession;
  try {
    session = await (await loadOrt()).createOrtSession(bytes);
  } catch (err) {
    throw new FedgeError("invalid_model", 400, `onnxruntime cannot load this model: ${ortMessage(err)}`, {
      cause: err,
    });
  }
  const inputName = session.inputNames[0];
  const outputName = session.outputNames[0];
  if (!outputName) throw new FedgeError("invalid_model", 400, "the model has no output");
  return {
    key,
    session,
    graph,
    inputName: inputName ?? "",
    outputName,
    sizeBytes: graph.sessionBytes,
    queue: Promise.resolve(),
    inputs: new Map(),
  };
}

/** onnxruntime's own words without the wasm glue's prefix, on one line. */
function ortMessage(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text
    .replace(/^.*ERROR_MESSAGE:\s*/s, "")
    .split("\n")[0]!
    .slice(0, 500);
}

/** Run `fn` after the session's queued runs (one run at a time per session). */
function enqueue<T>(model: CachedModel, fn: () => Promise<T>): Promise<T> {
  const next = model.queue.then(fn, fn);
  model.queue = next.catch(() => undefined);
  return next;
}

/** The model's input tensor for `shape`, holding a copy of `data` (created once per shape, then refilled). */
function inputTensor(ort: OrtModule["ort"], model: CachedModel, data: Float32Array, shape: number[]): OrtTensor {
  const key = shape.join(",");
  let tensor = model.inputs.get(key);
  if (!tensor) {
    if (model.inputs.size >= MAX_INPUT_TENSORS) model.inputs.clear();
    tensor = new ort.Tensor("float32", new Float32Array(data.length), shape);
    model.inputs.set(key, tensor);
  }
  (tensor.data as Float32Array).set(data);
  return tensor;
}

/**
 * The v1 fast path: one float32 batch (`data` row-major `[batch, ...featureShape]`) through the model's first input
 * and output.
 */
export async function runBatch(model: CachedModel, data: Float32Array, shape: number[]): Promise<InferenceResult> {
  const { ort } = ortLoaded ?? (await loadOrt());
  return enqueue(model, async () => {
    const out = await model.session.run({ [model.inputName]: inputTensor(ort, model, data, shape) });
    // onnxruntime-web copies CPU outputs out of the wasm heap into fresh arrays: ours to keep, no second copy.
    const values = out[model.outputName]!.data as Float32Array;
    const batch = shape[0]!;
    return { data: values, batch, perExample: batch > 0 ? values.length / batch : 0 };
  });
}

/** The model failed on inputs that passed every check (e.g. sizes the graph cannot combine): 400 `inference_failed`. */
export class InferenceRunError extends FedgeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("inference_failed", 400, message, options);
    this.name = "InferenceRunError";
  }
}

/** A run's output as a wire tensor (float16 as its bit patterns, whatever array type onnxruntime chose). */
function toTensor(t: OrtTensor): Tensor {
  const d = t.data as TensorArray | ArrayBufferView;
  const dtype = t.type as TensorDtype;
  let data: TensorArray;
  if (dtype === "float16" && !(d instanceof Uint16Array)) {
    const v = d as ArrayBufferView;
    data = new Uint16Array(v.buffer, v.byteOffset, v.byteLength / 2);
  } else {
    data = d as TensorArray;
  }
  return { dtype, shape: [...t.dims], data } as Tensor;
}

/** Run named input tensors through the model and return the named outputs (any dtype the edge serves). */
export async function runTensors(
  model: CachedModel,
  feeds: ReadonlyMap<string, Tensor>,
  outputs: readonly string[],
): Promise<Record<string, Tensor>> {
  const { ort } = ortLoaded ?? (await loadOrt());
  const inputs: Record<string, OrtTensor> = {};
  for (const [name, t] of feeds) {
    inputs[name] = new ort.Tensor(t.dtype, t.data as Float32Array, t.shape);
  }
  return enqueue(model, async () => {
    let out: Record<string, OrtTensor>;
    try {
      out = await model.session.run(inputs, outputs as string[]);
    } catch (err) {
      throw new InferenceRunError(`the model failed on this input: ${ortMessage(err)}`, { cause: err });
    }
    const result: Record<string, Tensor> = {};
    for (const name of outputs) result[name] = toTensor(out[name]!);
    return result;
  });
}

/** The isolate's session cache. */
export const sessions = new SessionCache();
