/**
 * @module
 * Turn a predict body (JSON rows, JSON base64, or raw octet-stream) into one float32 batch for a model whose input
 * is `[batch, ...featureShape]`. Pure (no I/O); every bad input is a `FedgeError` 4xx.
 *
 * JSON bodies are checked in two steps, so that the order of errors stays: the first bad number (`non_finite` for
 * ±Infinity, `out_of_range` for a finite double whose float32 would be ±Infinity), then any other schema violation
 * (`validation_failed`, the contract of the `PredictRequest` zod schema), then unknown model or version (404, checked
 * by the route in between), then batch cap (413) and shape (400 `invalid_shape`).
 * `checkJsonBody` validates the `inputs` rows with one hand-written loop that also copies them into the float32
 * batch — about 10× cheaper than zod over 25,000 numbers, and no intermediate copy; the zod schema still documents
 * the body in OpenAPI and a test keeps the two in agreement.
 */
import { FLOAT32_LIMIT, FedgeError, MAX_PREDICT_BATCH, PredictRequest } from "@fedge/protocol";

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

/** 400 `out_of_range`: `inputs[i][j]` is a finite number whose float32 is ±Infinity. */
function outOfFloat32(i: number, j: number, v: number): FedgeError {
  return new FedgeError(
    "out_of_range",
    400,
    `inputs[${i}][${j}] is ${v}, outside the float32 range (|x| < ${FLOAT32_LIMIT}); the model takes float32 inputs`,
  );
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

function invalid(message: string): FedgeError {
  return new FedgeError("validation_failed", 400, message);
}

function describe(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "an array" : typeof v;
}

/** A JSON predict body whose structure is valid; `decodeJsonBody` checks it against the model. */
export type CheckedJsonBody =
  | {
      kind: "rows";
      /** Number of rows. */
      batch: number;
      /** Length of the first row. */
      width: number;
      /** First row whose length differs from the first row's, or -1. */
      raggedRow: number;
      /** That row's length. */
      raggedLength: number;
      /** The rows, row-major (`batch × width`); `null` when ragged or over the batch cap. */
      data: Float32Array | null;
    }
  | { kind: "base64"; inputsB64: string; shape: number[] };

/**
 * Validate a parsed JSON predict body as `PredictRequest` (no model needed). The rows form is checked and copied
 * into a `Float32Array` in one loop; the base64 form goes through zod (it is small).
 */
export function checkJsonBody(body: unknown): CheckedJsonBody {
  if (typeof body === "object" && body !== null && !Array.isArray(body) && "inputs" in body) {
    for (const k in body) if (k !== "inputs") throw invalid(`unknown field ${JSON.stringify(k)} next to inputs`);
    const rows = (body as { inputs: unknown }).inputs;
    if (!Array.isArray(rows)) throw invalid(`inputs: expected an array of rows (number[][]), got ${describe(rows)}`);
    const batch = rows.length;
    if (batch === 0) throw invalid("inputs: empty batch; send at least one row");
    const first: unknown = rows[0];
    const width = Array.isArray(first) ? first.length : 0;
    let data = batch <= MAX_PREDICT_BATCH && width > 0 ? new Float32Array(batch * width) : null;
    let raggedRow = -1;
    let raggedLength = 0;
    let badNumber: FedgeError | null = null;
    let wrongType: FedgeError | null = null;
    for (let i = 0; i < batch; i++) {
      const row: unknown = rows[i];
      if (!Array.isArray(row)) {
        wrongType ??= invalid(`inputs[${i}]: expected an array of numbers, got ${describe(row)}`);
        continue;
      }
      const n = row.length;
      if (n !== width && raggedRow < 0) {
        raggedRow = i;
        raggedLength = n;
        data = null;
      }
      const base = i * width;
      for (let j = 0; j < n; j++) {
        const v: unknown = row[j];
        if (typeof v !== "number") {
          wrongType ??= invalid(`inputs[${i}][${j}]: expected a number, got ${describe(v)}`);
        } else if (v - v !== 0) {
          // NaN or ±Infinity (JSON has no NaN, but `1e999` parses to Infinity).
          badNumber ??= new FedgeError(
            "non_finite",
            400,
            `inputs[${i}][${j}] is ${v}; only finite numbers are accepted`,
          );
        } else {
          // The batch is float32: a finite double past its range would run as ±Infinity.
          const f = Math.fround(v);
          if (f - f !== 0) badNumber ??= outOfFloat32(i, j, v);
          else if (data !== null) data[base + j] = f;
        }
      }
    }
    if (badNumber) throw badNumber;
    if (wrongType) throw wrongType;
    return { kind: "rows", batch, width, raggedRow, raggedLength, data };
  }
  const parsed = PredictRequest.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? `${issue.path.join(".")}: ` : "";
    throw invalid(`${where}${issue?.message ?? "expected {inputs} or {inputs_b64, shape}"}`);
  }
  if (!("inputs_b64" in parsed.data)) throw invalid("expected {inputs} or {inputs_b64, shape}");
  return { kind: "base64", inputsB64: parsed.data.inputs_b64, shape: parsed.data.shape };
}

/** A checked JSON predict body → the model's float32 batch (413 over the batch cap, 400 on a shape mismatch). */
export function decodeJsonBody(body: CheckedJsonBody, featureShape: number[], features: number): DecodedBatch {
  if (body.kind === "base64") {
    const bytes = decodeBase64(body.inputsB64);
    if (!bytes) throw new FedgeError("validation_failed", 400, "inputs_b64: not base64");
    return fromBytes(bytes, body.shape, featureShape, features);
  }
  checkBatch(body.batch);
  if (body.width !== features) throw badShape(`inputs[0] has ${body.width} values; the model takes ${features}`);
  if (body.raggedRow >= 0 || !body.data) {
    throw badShape(`inputs[${body.raggedRow}] has ${body.raggedLength} values; the model takes ${features}`);
  }
  return { data: body.data, shape: [body.batch, ...featureShape], batch: body.batch };
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
