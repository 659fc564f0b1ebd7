/**
 * @module
 * Per-isolate cache of ORT sessions keyed by model, version and sha256: a session is created once per isolate from
 * the ONNX bytes and reused by every request. Bounded by entry count and total model bytes (least recently used
 * entries are released first). Runs on one session are serialised (ORT-web's wasm backend runs one at a time).
 */
import { FedgeError } from "@fedge/protocol";
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

export interface SessionCacheOptions {
  /** Most sessions kept. @default 8 */
  maxEntries?: number;
  /**
   * Most memory kept, estimated as 4 × the ONNX bytes (int8 weights are folded into float32 at session creation).
   * @default 64 MiB
   */
  maxBytes?: number;
}

export interface CachedModel {
  key: string;
  session: OrtSession;
  inputName: string;
  outputName: string;
  /** Estimated memory: 4 × the ONNX bytes. */
  sizeBytes: number;
  /** Tail of the per-session run queue. */
  queue: Promise<unknown>;
  /**
   * Reusable input tensors by shape (`"1,784"`): runs of a session are serialised, so one float32 buffer per shape
   * is enough. onnxruntime-web runs ~8 µs faster (about a third of a single-example MLP inference) when it is handed
   * a tensor object it has seen before than a fresh `Tensor` each time.
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
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly entries = new Map<string, CachedModel>();
  private readonly pending = new Map<string, Promise<CachedModel>>();
  /** Sessions created by this cache (for tests and benchmarks). */
  created = 0;

  constructor(options: SessionCacheOptions = {}) {
    this.maxEntries = options.maxEntries ?? 8;
    this.maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    if (!(this.maxEntries >= 1)) throw new RangeError(`maxEntries must be ≥ 1, got ${options.maxEntries}`);
    if (!(this.maxBytes >= 1)) throw new RangeError(`maxBytes must be ≥ 1, got ${options.maxBytes}`);
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  get size(): number {
    return this.entries.size;
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
        const model = await createModel(key, bytes);
        this.created++;
        this.entries.set(key, model);
        this.evict(key);
        return model;
      })();
      this.pending.set(key, pending);
      pending.finally(() => this.pending.delete(key)).catch(() => undefined);
    }
    return pending;
  }

  private evict(keep: string): void {
    let total = 0;
    for (const m of this.entries.values()) total += m.sizeBytes;
    for (const [key, m] of this.entries) {
      if (this.entries.size <= this.maxEntries && total <= this.maxBytes) break;
      if (key === keep) continue;
      this.entries.delete(key);
      total -= m.sizeBytes;
      // Release after queued runs finish.
      m.queue.finally(() => m.session.release()).catch(() => undefined);
    }
  }
}

async function createModel(key: string, bytes: Uint8Array): Promise<CachedModel> {
  let session: OrtSession;
  try {
    session = await (await loadOrt()).createOrtSession(bytes);
  } catch (err) {
    throw new FedgeError("invalid_model", 400, `onnxruntime cannot load this model: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const inputName = session.inputNames[0];
  const outputName = session.outputNames[0];
  if (!inputName || !outputName) throw new FedgeError("invalid_model", 400, "the model has no input or no output");
  return {
    key,
    session,
    inputName,
    outputName,
    sizeBytes: 4 * bytes.byteLength,
    queue: Promise.resolve(),
    inputs: new Map(),
  };
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

/** Run one float32 batch (`data` row-major `[batch, ...featureShape]`) through the model's first input and output. */
export async function runBatch(model: CachedModel, data: Float32Array, shape: number[]): Promise<InferenceResult> {
  const { ort } = ortLoaded ?? (await loadOrt());
  const run = async (): Promise<InferenceResult> => {
    const out = await model.session.run({ [model.inputName]: inputTensor(ort, model, data, shape) });
    // onnxruntime-web copies CPU outputs out of the wasm heap into fresh arrays: ours to keep, no second copy.
    const values = out[model.outputName]!.data as Float32Array;
    const batch = shape[0]!;
    return { data: values, batch, perExample: batch > 0 ? values.length / batch : 0 };
  };
  const next = model.queue.then(run, run);
  model.queue = next.catch(() => undefined);
  return next;
}

/** The isolate's session cache. */
export const sessions = new SessionCache();
