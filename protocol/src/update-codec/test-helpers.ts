/**
 * @module
 * Test-only helpers for the update codec tests (not exported from the package): fast-check arbitraries for valid update
 * fields, and the byte layout of an encoding computed from the documented table, independently of the codec.
 */
import fc from "fast-check";
import nacl from "tweetnacl";
import type { UpdateFields } from "./update-codec.ts";

/** A fixed test key pair (never a real key). */
export const TEST_KEY = nacl.sign.keyPair.fromSeed(Uint8Array.from({ length: 32 }, (_, i) => 200 - i));
export const OTHER_KEY = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(7));

const MAX_VALUES = 3000;

export const shapeArb: fc.Arbitrary<number[]> = fc
  .array(fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 9 })), { minLength: 1, maxLength: 8 })
  .filter((s) => s.reduce((a, b) => a * b, 1) <= MAX_VALUES);

export const fieldsArb = (dtype?: "float32" | "int8"): fc.Arbitrary<UpdateFields> =>
  fc
    .record({
      roundId: fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/),
      deviceId: fc.stringMatching(/^[A-Za-z0-9_-]{1,80}$/),
      nonce: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      shape: shapeArb,
      dtype: dtype === undefined ? fc.constantFrom("float32" as const, "int8" as const) : fc.constant(dtype),
      scale: fc.float({ min: Math.fround(1e-30), max: Math.fround(1e30), noNaN: true }),
      clipBit: fc.constantFrom(undefined, 0 as const, 1 as const),
    })
    .chain(({ shape, dtype: dt, scale, clipBit, ...rest }) => {
      const ids = clipBit === undefined ? rest : { ...rest, clipBit };
      const n = shape.reduce((a, b) => a * b, 1);
      return dt === "float32"
        ? fc
            .float32Array({ minLength: n, maxLength: n, noNaN: true, noDefaultInfinity: true })
            .map((values): UpdateFields => ({ ...ids, shape, payload: { dtype: "float32", values } }))
        : fc
            .int8Array({ minLength: n, maxLength: n, min: -127, max: 127 })
            .map((values): UpdateFields => ({ ...ids, shape, payload: { dtype: "int8", values, scale } }));
    });

export type Region =
  | "magic"
  | "version"
  | "dtype"
  | "flags"
  | "clipBit"
  | "roundIdLength"
  | "roundId"
  | "deviceIdLength"
  | "deviceId"
  | "nonce"
  | "rank"
  | "dims"
  | "count"
  | "scale"
  | "padding"
  | "payload"
  | "signature";

/** [start, end) of every region, from the byte table in update-codec.ts. Empty regions (no scale, no padding) have start = end. */
export function layout(f: UpdateFields): Record<Region, [number, number]> {
  const R = f.roundId.length;
  const D = f.deviceId.length;
  const K = f.shape.length;
  const n = f.payload.values.length;
  const int8 = f.payload.dtype === "int8";
  const scaleStart = 32 + R + D + 4 * K;
  const H = scaleStart + (int8 ? 4 : 0);
  const payloadStart = Math.ceil(H / 4) * 4;
  const sig = payloadStart + n * (int8 ? 1 : 4);
  return {
    magic: [0, 4],
    version: [4, 5],
    dtype: [5, 6],
    flags: [6, 8],
    clipBit: [8, 9],
    roundIdLength: [9, 10],
    roundId: [10, 10 + R],
    deviceIdLength: [10 + R, 11 + R],
    deviceId: [11 + R, 11 + R + D],
    nonce: [11 + R + D, 27 + R + D],
    rank: [27 + R + D, 28 + R + D],
    dims: [28 + R + D, 28 + R + D + 4 * K],
    count: [28 + R + D + 4 * K, scaleStart],
    scale: [scaleStart, H],
    padding: [H, payloadStart],
    payload: [payloadStart, sig],
    signature: [sig, sig + 64],
  };
}

export const toHex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/** Parses an annotated hex fixture: `#` starts a comment, whitespace is ignored. */
export function parseAnnotatedHex(text: string): Uint8Array {
  const hex = text
    .split("\n")
    .map((line) => line.replace(/#.*$/, ""))
    .join("")
    .replace(/\s+/g, "");
  if (!/^(?:[0-9a-f]{2})*$/.test(hex)) throw new Error("fixture is not lowercase hex pairs");
  return Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
}

/** The raw bytes of a typed array (bit-exact comparison, so −0 and +0 differ). */
export const rawBytes = (a: Float32Array | Int8Array): Uint8Array =>
  new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
