/**
 * @module
 * On-device inference: one onnxruntime session per loaded model version, created lazily (onnxruntime itself is
 * loaded on first use), run on named typed tensors of any dtype fedge serves.
 */
import { FedgeClientError } from "../core/errors.ts";
import type { LoadedModel, OrtLike, OrtSession, OrtTensor } from "../model.ts";
import { dtypeOfOrt, type Tensor } from "./tensors.ts";

/** A run's output as a typed tensor (float16 as its bit patterns, whatever array onnxruntime chose). */
function toTensor(name: string, t: OrtTensor): Tensor {
  const dtype = dtypeOfOrt(t.type);
  if (!dtype) throw new FedgeClientError("invalid_model", `output ${name} has unsupported type ${String(t.type)}`);
  let data = t.data as ArrayBufferView;
  if (dtype === "float16" && !(data instanceof Uint16Array)) {
    data = new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2);
  }
  return { dtype, shape: t.dims.map(Number), data } as Tensor;
}

export class LocalRunner {
  private readonly loadOrt: () => Promise<OrtLike>;
  private ort: Promise<OrtLike> | undefined;
  private readonly sessions = new Map<string, Promise<OrtSession>>();

  constructor(loadOrt: () => Promise<OrtLike>) {
    this.loadOrt = loadOrt;
  }

  /** Run `feeds` through the model; returns `outputs` (default: all), by name. */
  async run(
    model: LoadedModel,
    feeds: Map<string, Tensor>,
    outputs?: readonly string[],
  ): Promise<Record<string, Tensor>> {
    const ort = await (this.ort ??= this.loadOrt());
    const key = `${model.name}@${model.version}`;
    let session = this.sessions.get(key);
    if (!session) {
      session = ort.InferenceSession.create(model.bytes);
      this.sessions.set(key, session);
      session.catch(() => this.sessions.delete(key));
    }
    const s = await session;
    const inputs: Record<string, OrtTensor> = {};
    for (const [name, t] of feeds) inputs[name] = new ort.Tensor(t.dtype, t.data, t.shape);
    const names = outputs ? [...outputs] : [...s.outputNames];
    const out = await s.run(inputs, names);
    const result: Record<string, Tensor> = {};
    for (const name of names) {
      const t = out[name];
      if (!t) throw new FedgeClientError("invalid_model", `the model has no output ${name}`);
      result[name] = toTensor(name, t);
    }
    return result;
  }
}
