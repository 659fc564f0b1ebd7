/**
 * @module
 * Turn a predict body (JSON rows, JSON base64, or raw octet-stream) into one float32 batch for a model whose input
 * is `[batch, ...featureShape]`. Pure (no I/O); every bad input is a `FedgeError` 4xx.
 */
import { FedgeError, MAX_PREDICT_BATCH, type PredictRequest } from "@fedge/schemas";

export interface DecodedBatch {
  data: Float32Array;
  /** `[batch, ...featureShape]`. */
  shape: number[];
  batch: number;
}

function badShape(message: string): FedgeError {
  return new FedgeError("invalid_shape", 400, message);
}

function checkBatch(batch: number): void {
  if (batch < 1) throw badShape("empty batch: send at least one example");
  if (batch > MAX_PREDICT_BATCH) {
    throw new FedgeError(
      "payload_too_large",
      413,
      `batch of ${batch} exceeds the cap of ${MAX_PREDICT_BATCH} examples`,
    );
  }
}

function checkFinite(data: Float32Array): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) {
      throw new FedgeError("non_finite", 400, `input value ${i} is ${data[i]}; only finite numbers are accepted`);
    }
  }
}

/** Decode base64 (standard or URL alphabet, padding optional) strictly; `null` when it is not base64. */
export function decodeBase64(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(text)) return null;
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
  if (b64.length % 4 === 1) return null;
  try {
    const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

/** Little-endian float32 bytes → Float32Array (copied, so alignment never matters). */
function float32FromBytes(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.byteLength / 4);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/** The example shape a client sent matches the model's: either exactly, or flattened to `[features]`. */
function checkExampleShape(rest: number[], featureShape: number[], features: number): void {
  const exact = rest.length === featureShape.length && rest.every((d, i) => d === featureShape[i]);
  const flat = rest.length === 1 && rest[0] === features;
  if (!exact && !flat) {
    throw badShape(
      `each example must have shape ${JSON.stringify(featureShape)} (or [${features}]), got ${JSON.stringify(rest)}`,
    );
  }
}

function fromBytes(bytes: Uint8Array, shape: number[] | null, featureShape: number[], features: number): DecodedBatch {
  if (bytes.byteLength % 4 !== 0)
    throw badShape(`body has ${bytes.byteLength} bytes, not a whole number of float32 values`);
  const count = bytes.byteLength / 4;
  let batch: number;
  if (shape) {
    const [n, ...rest] = shape;
    checkExampleShape(rest, featureShape, features);
    batch = n!;
    checkBatch(batch);
    if (count !== batch * features) {
      throw badShape(`shape ${JSON.stringify(shape)} needs ${batch * features} float32 values, got ${count}`);
    }
  } else {
    if (count % features !== 0)
      throw badShape(`${count} float32 values are not a whole number of ${features}-feature examples`);
    batch = count / features;
    checkBatch(batch);
  }
  const data = float32FromBytes(bytes);
  checkFinite(data);
  return { data, shape: [batch, ...featureShape], batch };
}

/** A JSON predict body. */
export function decodeJsonBatch(body: PredictRequest, featureShape: number[], features: number): DecodedBatch {
  if ("inputs" in body) {
    const rows = body.inputs;
    checkBatch(rows.length);
    const data = new Float32Array(rows.length * features);
    rows.forEach((row, i) => {
      if (row.length !== features) throw badShape(`inputs[${i}] has ${row.length} values; the model takes ${features}`);
      data.set(row, i * features);
    });
    checkFinite(data);
    return { data, shape: [rows.length, ...featureShape], batch: rows.length };
  }
  const bytes = decodeBase64(body.inputs_b64);
  if (!bytes) throw new FedgeError("validation_failed", 400, "inputs_b64: not base64");
  return fromBytes(bytes, body.shape, featureShape, features);
}

/** Parse the `x-fedge-shape` header (`"2,784"`); `null` when absent. */
export function parseShapeHeader(header: string | undefined): number[] | null {
  if (header === undefined || header.trim() === "") return null;
  const parts = header.split(",").map((p) => p.trim());
  if (parts.length < 2 || parts.length > 8 || !parts.every((p) => /^[1-9][0-9]{0,8}$/.test(p))) {
    throw badShape(
      `x-fedge-shape must be comma-separated positive integers like "2,784", got ${JSON.stringify(header)}`,
    );
  }
  return parts.map(Number);
}

/** A raw `application/octet-stream` predict body. */
export function decodeBinaryBatch(
  bytes: Uint8Array,
  shape: number[] | null,
  featureShape: number[],
  features: number,
): DecodedBatch {
  if (bytes.byteLength === 0) throw badShape("empty batch: send at least one example");
  return fromBytes(bytes, shape, featureShape, features);
}

/**
 * Non-finite numbers in a parsed JSON body (`1e999` parses to Infinity): checked before zod, which would call them
 * non-numeric.
 */
export function assertJsonRowsFinite(body: unknown): void {
  if (!body || typeof body !== "object" || !("inputs" in body) || !Array.isArray(body.inputs)) return;
  body.inputs.forEach((row: unknown, i: number) => {
    if (!Array.isArray(row)) return;
    row.forEach((v: unknown, j: number) => {
      if (typeof v === "number" && !Number.isFinite(v)) {
        throw new FedgeError("non_finite", 400, `inputs[${i}][${j}] is ${v}; only finite numbers are accepted`);
      }
    });
  });
}
