/**
 * @module
 * Models held by the client, and what inference on them needs in the core: the onnxruntime shapes the SDK relies on,
 * its loader, and the row/matrix conversions of `predict` and `predictLocal`. onnxruntime is loaded lazily (dynamic
 * import) on the first `predictLocal`, so the SDK core stays small: `onnxruntime-web` in browsers, `onnxruntime-node`
 * in Node (falling back to `onnxruntime-web`), or whatever `loadOrt` returns (React Native:
 * `onnxruntime-react-native`). Downloading and caching a version is `model-download.ts`, loaded on first use.
 */
import type { ModelManifest } from "@fedge/protocol";
import { FedgeClientError, InvalidInputError } from "./core/errors.ts";
import { detectRuntime } from "./internal/platform.ts";

/** A model version held by the client. */
export interface LoadedModel {
  name: string;
  version: number;
  /** The manifest, when the edge sent one. */
  manifest: ModelManifest | undefined;
  /** The ONNX file. */
  bytes: Uint8Array;
  /** The edge's ETag of the bytes. */
  etag: string | undefined;
  /** Whether the bytes came from the local cache (a 304 or an offline fallback). */
  fromCache: boolean;
}

/** The subset of the onnxruntime API the SDK uses (onnxruntime-web, -node and -react-native all provide it). */
export interface OrtLike {
  InferenceSession: { create(bytes: Uint8Array, options?: object): Promise<OrtSession> };
  // `type` is an onnxruntime element type name ("float32", "int64", "bool", …); `data` its typed array.
  Tensor: new (type: any, data: any, dims: readonly number[]) => OrtTensor;
}
export interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, OrtTensor>, fetches?: readonly string[]): Promise<Record<string, OrtTensor>>;
  release?(): Promise<void>;
}
export interface OrtTensor {
  readonly data: unknown;
  readonly dims: readonly number[];
  readonly type?: string;
}

/** The default onnxruntime loader for this runtime. */
export async function defaultLoadOrt(): Promise<OrtLike> {
  // Module names are held in variables so bundlers leave the imports to run time (onnxruntime is not in the core).
  const web = "onnxruntime-web";
  const node = "onnxruntime-node";
  if (detectRuntime() === "node") {
    try {
      return (await import(/* @vite-ignore */ node)) as OrtLike;
    } catch {
      /* fall back to the wasm build */
    }
  }
  try {
    return (await import(/* @vite-ignore */ web)) as OrtLike;
  } catch (cause) {
    throw new FedgeClientError(
      "onnxruntime_unavailable",
      "predictLocal needs onnxruntime (onnxruntime-web in browsers, onnxruntime-node in Node); install it or pass `loadOrt`",
      { cause },
    );
  }
}

/** Turns `number[][]` or a row-major Float32Array into a flat Float32Array plus its row count and width. */
export function toMatrix(
  inputs: number[][] | Float32Array,
  features: number | undefined,
): { data: Float32Array; rows: number; cols: number } {
  if (inputs instanceof Float32Array) {
    const cols = features ?? inputs.length;
    if (!Number.isInteger(cols) || cols < 1 || inputs.length === 0 || inputs.length % cols !== 0) {
      throw new InvalidInputError("inputs", `a Float32Array of ${inputs.length} values is not rows × ${cols} features`);
    }
    checkFinite(inputs);
    return { data: inputs, rows: inputs.length / cols, cols };
  }
  if (!Array.isArray(inputs) || inputs.length === 0) {
    throw new InvalidInputError("inputs", "must be a non-empty number[][] (a batch of rows) or a Float32Array");
  }
  const cols = Array.isArray(inputs[0]) ? inputs[0].length : 0;
  if (cols === 0) throw new InvalidInputError("inputs", "rows must be non-empty arrays of numbers");
  const data = new Float32Array(inputs.length * cols);
  inputs.forEach((row, r) => {
    if (!Array.isArray(row) || row.length !== cols) {
      throw new InvalidInputError(
        "inputs",
        `row ${r} has ${Array.isArray(row) ? row.length : "no"} values, expected ${cols}`,
      );
    }
    for (let c = 0; c < cols; c++) {
      const v = row[c];
      if (typeof v !== "number" || !Number.isFinite(v)) {
        throw new InvalidInputError("inputs", `row ${r}, column ${c} is not a finite number`);
      }
      data[r * cols + c] = v;
    }
  });
  return { data, rows: inputs.length, cols };
}

/**
 * A batch of rows as the feed of a model with one float32 input `[batch, ...fixed]`: each row reshaped to the
 * manifest's example shape when the sizes agree (`[rows, 1, 28, 28]` for an NCHW CNN), else `[rows, cols]`.
 */
export function rowFeeds(
  manifest: ModelManifest | undefined,
  inputs: number[][] | Float32Array,
  features: number | undefined,
): { feeds: Map<string, { dtype: "float32"; shape: number[]; data: Float32Array }>; rows: number } {
  const spec = manifest?.inputs[0];
  const rest = spec?.shape.slice(1) ?? [];
  const example = rest.length > 0 && rest.every((d) => d !== null) ? (rest as number[]) : null;
  const perRow = example ? example.reduce((a, b) => a * b, 1) : undefined;
  const m = toMatrix(inputs, features ?? perRow);
  const shape = example && m.cols === perRow ? [m.rows, ...example] : [m.rows, m.cols];
  return { feeds: new Map([[spec?.name ?? "input", { dtype: "float32", shape, data: m.data }]]), rows: m.rows };
}

function checkFinite(v: Float32Array): void {
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i]!)) throw new InvalidInputError("inputs", `value ${i} is not finite`);
  }
}

/** Splits a flat row-major tensor into rows. */
export function toRows(data: ArrayLike<number>, rows: number): number[][] {
  const cols = rows === 0 ? 0 : data.length / rows;
  const out: number[][] = [];
  for (let r = 0; r < rows; r++) out.push(Array.from({ length: cols }, (_, c) => Number(data[r * cols + c])));
  return out;
}
