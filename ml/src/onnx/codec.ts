/**
 * @module
 * Encode and decode ONNX protobuf messages by walking the JSON descriptor (`descriptor.ts`) over protobufjs's wire
 * `Reader`/`Writer` (`protobufjs/minimal`).
 *
 * Why not `Root.fromJSON(...).lookupType(...).encode()`: protobufjs reflection compiles its codecs with
 * `new Function(...)`, which Cloudflare Workers forbid ("Code generation from strings disallowed for this context",
 * seen in workerd 1.20261117). This interpreter has no code generation, so the same bytes come out in Workers, browsers
 * and Node; the tests check it against protobufjs reflection on Node.
 *
 * Decoding is strict: a known field with the wrong wire type, an invalid wire type, a truncated message, a 64-bit integer
 * beyond ±2^53, nesting deeper than 64 messages, or a non-UTF-8 string each throw `OnnxFormatError`. Unknown fields are
 * skipped (and therefore dropped when re-encoded).
 */
import * as protobuf from "protobufjs/minimal.js";
import { ONNX_PROTO_JSON, type ProtoTypeJson } from "./descriptor.ts";
import type { ModelProto, OnnxMessageName, OnnxMessageTypes } from "./types.ts";

/** The bytes are not a well-formed ONNX protobuf message (the edge answers 400 `invalid_model`). */
export class OnnxFormatError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "OnnxFormatError";
  }
}

/** Deepest message nesting the decoder accepts (ONNX graphs nest through attributes and functions). */
export const MAX_NESTING = 64;

type ScalarKind = "double" | "float" | "int32" | "uint32" | "int64" | "uint64" | "bool" | "string" | "bytes" | "enum";

interface CompiledField {
  name: string;
  id: number;
  repeated: boolean;
  packed: boolean;
  inOneof: boolean;
  /** Scalar kind, or `message` with `message` set. */
  kind: ScalarKind | "message";
  message?: CompiledMessage;
}

interface CompiledMessage {
  fullName: string;
  fields: CompiledField[];
  byId: Map<number, CompiledField>;
}

const SCALARS = new Set<string>(["double", "float", "int32", "uint32", "int64", "uint64", "bool", "string", "bytes"]);

/** Wire type of a (non-packed) value of this kind. */
function wireTypeOf(kind: CompiledField["kind"]): number {
  switch (kind) {
    case "double":
      return 1;
    case "float":
      return 5;
    case "string":
    case "bytes":
    case "message":
      return 2;
    default:
      return 0;
  }
}

// ─── descriptor compilation ─────────────────────────────────────────────────────────────────────────────────────────

function compile(rootJson: { nested: Record<string, ProtoTypeJson> }): Map<string, CompiledMessage> {
  const types = new Map<string, ProtoTypeJson>();
  const walk = (prefix: string, nested: Record<string, ProtoTypeJson> | undefined) => {
    for (const [name, t] of Object.entries(nested ?? {})) {
      const full = prefix ? `${prefix}.${name}` : name;
      types.set(full, t);
      walk(full, t.nested);
    }
  };
  walk("", rootJson.nested);

  const messages = new Map<string, CompiledMessage>();
  for (const [fullName, t] of types) {
    if (t.fields) messages.set(fullName, { fullName, fields: [], byId: new Map() });
  }
  // Resolve a type reference the way protoc does: innermost enclosing scope first.
  const resolve = (scope: string, ref: string): string => {
    const parts = scope.split(".");
    for (let n = parts.length; n >= 0; n--) {
      const candidate = [...parts.slice(0, n), ref].join(".");
      if (types.has(candidate)) return candidate;
    }
    throw new Error(`ONNX descriptor: unresolved type ${ref} in ${scope}`);
  };
  for (const [fullName, msg] of messages) {
    const t = types.get(fullName)!;
    const oneofMembers = new Set(Object.values(t.oneofs ?? {}).flatMap((o) => o.oneof));
    for (const [name, f] of Object.entries(t.fields!)) {
      let kind: CompiledField["kind"];
      let message: CompiledMessage | undefined;
      if (SCALARS.has(f.type)) {
        kind = f.type as ScalarKind;
      } else {
        const target = resolve(fullName, f.type);
        const targetJson = types.get(target)!;
        if (targetJson.values) kind = "enum";
        else {
          kind = "message";
          message = messages.get(target)!;
        }
      }
      const repeated = f.rule === "repeated";
      const packable = kind !== "string" && kind !== "bytes" && kind !== "message";
      const field: CompiledField = {
        name,
        id: f.id,
        repeated,
        packed: repeated && packable && f.options?.packed === true,
        inOneof: oneofMembers.has(name),
        kind,
        ...(message ? { message } : {}),
      };
      msg.fields.push(field);
      msg.byId.set(f.id, field);
    }
    msg.fields.sort((a, b) => a.id - b.id);
  }
  return messages;
}

const MESSAGES = compile(ONNX_PROTO_JSON);

function messageType(name: string): CompiledMessage {
  const m = MESSAGES.get(`onnx.${name}`);
  if (!m) throw new TypeError(`unknown ONNX message type ${name}`);
  return m;
}

// ─── decoding ───────────────────────────────────────────────────────────────────────────────────────────────────────

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
const TWO_32 = 4294967296;

/** A protobufjs Long (or number) as a safe JS number, or throw. */
function longToNumber(v: unknown, unsigned: boolean, field: string): number {
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) throw new OnnxFormatError(`${field}: 64-bit value ${v} is not a safe integer`);
    return v;
  }
  const { low, high } = v as { low: number; high: number };
  const hi = unsigned ? high >>> 0 : high | 0;
  // Safe iff |value| < 2^53: the high word must fit in 21 bits (plus sign).
  if (hi > 0x1fffff || hi < -0x200000 || (hi === -0x200000 && low >>> 0 === 0)) {
    throw new OnnxFormatError(`${field}: 64-bit value does not fit in a safe integer`);
  }
  return hi * TWO_32 + (low >>> 0);
}

/** Options of {@link decodeOnnx} and {@link decodeOnnxMessage}. */
export interface DecodeOnnxOptions {
  /**
   * Copy every `bytes` field (tensor `raw_data`) out of the input. With `false` they are views into the caller's
   * buffer: no second copy of a large model's weights (the edge inspects models of tens of MB in a 128 MB isolate),
   * but the result must not outlive or be mutated independently of the input.
   * @default true
   */
  copyBytes?: boolean;
}

function readScalar(r: protobuf.Reader, kind: ScalarKind, field: string, copyBytes = true): unknown {
  switch (kind) {
    case "double":
      return r.double();
    case "float":
      return r.float();
    case "int32":
    case "enum":
      return r.int32();
    case "uint32":
      return r.uint32();
    case "int64":
      return longToNumber(r.int64(), false, field);
    case "uint64":
      return longToNumber(r.uint64(), true, field);
    case "bool":
      return r.bool();
    case "string": {
      const len = r.uint32();
      const end = r.pos + len;
      if (end > r.len) throw new OnnxFormatError(`${field}: truncated string`);
      let s: string;
      try {
        s = utf8.decode(r.buf.subarray(r.pos, end));
      } catch (e) {
        throw new OnnxFormatError(`${field}: string is not valid UTF-8`, { cause: e });
      }
      r.pos = end;
      return s;
    }
    case "bytes":
      // Copy by default: the result must not alias the caller's buffer, and a fresh buffer is aligned for typed-array
      // views. protobufjs returns a subarray view of a Uint8Array input.
      return copyBytes ? r.bytes().slice() : r.bytes();
  }
}

function defaultOf(f: CompiledField): unknown {
  switch (f.kind) {
    case "string":
      return "";
    case "bytes":
      return new Uint8Array(0);
    case "bool":
      return false;
    default:
      return 0;
  }
}

function decodeInto(
  r: protobuf.Reader,
  type: CompiledMessage,
  end: number,
  depth: number,
  copyBytes: boolean,
): Record<string, unknown> {
  if (depth > MAX_NESTING) throw new OnnxFormatError(`messages nested deeper than ${MAX_NESTING}`);
  const out: Record<string, unknown> = {};
  for (const f of type.fields) {
    if (f.repeated) out[f.name] = [];
    else if (f.kind !== "message" && !f.inOneof) out[f.name] = defaultOf(f);
  }
  while (r.pos < end) {
    const tag = r.uint32();
    const id = tag >>> 3;
    const wire = tag & 7;
    if (id === 0) throw new OnnxFormatError(`${type.fullName}: illegal field number 0 at offset ${r.pos}`);
    const f = type.byId.get(id);
    if (!f) {
      if (wire === 4) throw new OnnxFormatError(`${type.fullName}: unexpected end-group tag at offset ${r.pos}`);
      r.skipType(wire, depth, id);
      continue;
    }
    const where = `${type.fullName}.${f.name}`;
    if (f.kind === "message") {
      if (wire !== 2) throw new OnnxFormatError(`${where}: wire type ${wire}, expected 2`);
      const len = r.uint32();
      const subEnd = r.pos + len;
      if (subEnd > end) throw new OnnxFormatError(`${where}: truncated message (${len} bytes declared)`);
      const value = decodeInto(r, f.message!, subEnd, depth + 1, copyBytes);
      if (r.pos !== subEnd) throw new OnnxFormatError(`${where}: message overran its length`);
      if (f.repeated) (out[f.name] as unknown[]).push(value);
      else out[f.name] = value; // proto3: a repeated singular message field merges; ONNX writers never do that
      continue;
    }
    const expected = wireTypeOf(f.kind);
    const kind = f.kind;
    if (f.repeated && wire === 2 && expected !== 2) {
      // Packed run of varints / fixed-width values.
      const len = r.uint32();
      const runEnd = r.pos + len;
      if (runEnd > end) throw new OnnxFormatError(`${where}: truncated packed field`);
      const list = out[f.name] as unknown[];
      while (r.pos < runEnd) list.push(readScalar(r, kind, where, copyBytes));
      if (r.pos !== runEnd) throw new OnnxFormatError(`${where}: packed field overran its length`);
      continue;
    }
    if (wire !== expected) throw new OnnxFormatError(`${where}: wire type ${wire}, expected ${expected}`);
    const value = readScalar(r, kind, where, copyBytes);
    if (f.repeated) (out[f.name] as unknown[]).push(value);
    else out[f.name] = value;
  }
  if (r.pos !== end) throw new OnnxFormatError(`${type.fullName}: field overran the message end`);
  return out;
}

/** Decode one ONNX message of the named type (no semantic checks). Throws `OnnxFormatError` on malformed bytes. */
export function decodeOnnxMessage<N extends OnnxMessageName>(
  name: N,
  bytes: Uint8Array,
  options: DecodeOnnxOptions = {},
): OnnxMessageTypes[N] {
  const type = messageType(name);
  if (!(bytes instanceof Uint8Array)) throw new OnnxFormatError("ONNX bytes must be a Uint8Array");
  const r = new protobuf.Reader(bytes);
  try {
    return decodeInto(r, type, bytes.length, 0, options.copyBytes ?? true) as OnnxMessageTypes[N];
  } catch (e) {
    if (e instanceof OnnxFormatError) throw e;
    // protobufjs throws RangeError("index out of range") on truncation, Error("invalid wire type") on garbage.
    const reason = e instanceof Error ? e.message : String(e);
    throw new OnnxFormatError(`malformed ${name}: ${reason}`, { cause: e });
  }
}

/**
 * Decode an ONNX model file. Besides wire-level checks it requires what the ONNX IR says every model MUST have: an
 * `ir_version` ≥ 1, a `graph`, and (IR ≥ 3) at least one `opset_import`.
 */
export function decodeOnnx(bytes: Uint8Array, options: DecodeOnnxOptions = {}): ModelProto {
  if (!(bytes instanceof Uint8Array)) throw new OnnxFormatError("ONNX bytes must be a Uint8Array");
  if (bytes.length === 0) throw new OnnxFormatError("empty ONNX file");
  const model = decodeOnnxMessage("ModelProto", bytes, options);
  if (!model.irVersion || model.irVersion < 1) throw new OnnxFormatError("not an ONNX model: ir_version is missing");
  if (!model.graph) throw new OnnxFormatError("not an ONNX model: graph is missing");
  if (model.irVersion >= 3 && model.opsetImport!.length === 0) {
    throw new OnnxFormatError("not an ONNX model: opset_import is empty");
  }
  return model;
}

// ─── encoding ───────────────────────────────────────────────────────────────────────────────────────────────────────

function writeScalar(w: protobuf.Writer, kind: ScalarKind, v: unknown, where: string): void {
  switch (kind) {
    case "double":
      w.double(num(v, where));
      return;
    case "float":
      w.float(num(v, where));
      return;
    case "int32":
    case "enum":
      w.int32(int(v, where));
      return;
    case "uint32":
      w.uint32(int(v, where));
      return;
    case "int64":
      w.int64(int(v, where));
      return;
    case "uint64": {
      const n = int(v, where);
      if (n < 0) throw new RangeError(`${where}: uint64 value ${n} is negative`);
      w.uint64(n);
      return;
    }
    case "bool":
      w.bool(Boolean(v));
      return;
    case "string":
      if (typeof v !== "string") throw new TypeError(`${where}: expected a string`);
      w.string(v);
      return;
    case "bytes":
      if (!(v instanceof Uint8Array)) throw new TypeError(`${where}: expected a Uint8Array`);
      w.bytes(v);
      return;
  }
}

function num(v: unknown, where: string): number {
  if (typeof v !== "number") throw new TypeError(`${where}: expected a number`);
  return v;
}

function int(v: unknown, where: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v)) throw new TypeError(`${where}: expected a safe integer`);
  return v;
}

function isDefault(f: CompiledField, v: unknown): boolean {
  if (f.inOneof) return false;
  if (f.kind === "bytes") return v instanceof Uint8Array && v.length === 0;
  return v === 0 || v === "" || v === false;
}

function encodeInto(w: protobuf.Writer, type: CompiledMessage, obj: Record<string, unknown>, depth: number): void {
  if (depth > MAX_NESTING) throw new RangeError(`messages nested deeper than ${MAX_NESTING}`);
  for (const f of type.fields) {
    const v = obj[f.name];
    if (v === undefined || v === null) continue;
    const where = `${type.fullName}.${f.name}`;
    if (f.repeated) {
      if (!Array.isArray(v)) throw new TypeError(`${where}: expected an array`);
      if (v.length === 0) continue;
      if (f.kind === "message") {
        for (const item of v) {
          w.uint32((f.id << 3) | 2).fork();
          encodeInto(w, f.message!, item as Record<string, unknown>, depth + 1);
          w.ldelim();
        }
      } else if (f.packed) {
        w.uint32((f.id << 3) | 2).fork();
        for (const item of v) writeScalar(w, f.kind, item, where);
        w.ldelim();
      } else {
        const tag = (f.id << 3) | wireTypeOf(f.kind);
        for (const item of v) writeScalar(w.uint32(tag), f.kind, item, where);
      }
      continue;
    }
    if (f.kind === "message") {
      w.uint32((f.id << 3) | 2).fork();
      encodeInto(w, f.message!, v as Record<string, unknown>, depth + 1);
      w.ldelim();
      continue;
    }
    if (isDefault(f, v)) continue;
    writeScalar(w.uint32((f.id << 3) | wireTypeOf(f.kind)), f.kind, v, where);
  }
}

/** Encode one ONNX message of the named type; fields are written in field-number order, proto3 defaults omitted. */
export function encodeOnnxMessage<N extends OnnxMessageName>(name: N, message: OnnxMessageTypes[N]): Uint8Array {
  const type = messageType(name);
  const w = new protobuf.Writer();
  encodeInto(w, type, message as Record<string, unknown>, 0);
  return w.finish();
}

/** Encode an ONNX model to the bytes of a `.onnx` file. */
export function encodeOnnx(model: ModelProto): Uint8Array {
  return encodeOnnxMessage("ModelProto", model);
}
