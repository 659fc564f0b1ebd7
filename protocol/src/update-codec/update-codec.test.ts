import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FedgeError } from "../fedge-error.ts";
import { UPDATE_CODEC_ERROR_REASONS, UpdateCodecError, type UpdateCodecErrorReason } from "./errors.ts";
import { verifyUpdateSignature } from "./signature.ts";
import { fieldsArb, layout, OTHER_KEY, rawBytes, TEST_KEY } from "./test-helpers.ts";
import {
  DEFAULT_MAX_UPDATE_BYTES,
  decodeUpdate,
  decodeVerifiedUpdate,
  UPDATE_FORMAT_VERSION,
  UPDATE_MEDIA_TYPE,
  type DecodeUpdateOptions,
  type UpdateFields,
} from "./update-codec.ts";
import { encodedUpdateLength, encodeUpdate } from "./encode.ts";

const sk = TEST_KEY.secretKey;
const pk = TEST_KEY.publicKey;

function small(dtype: "float32" | "int8" = "float32", n = 6): UpdateFields {
  const nonce = Uint8Array.from({ length: 16 }, (_, i) => i * 3);
  return dtype === "float32"
    ? {
        roundId: "round_7",
        deviceId: "dev_abcdefgh12",
        nonce,
        shape: [n],
        payload: { dtype, values: Float32Array.from({ length: n }, (_, i) => i - 2.5) },
      }
    : {
        roundId: "round_7",
        deviceId: "dev_abcdefgh12",
        nonce,
        shape: [n],
        payload: { dtype, values: Int8Array.from({ length: n }, (_, i) => 127 - 50 * i), scale: 0.01 },
      };
}

type DecodeOptions = DecodeUpdateOptions & { publicKey?: Uint8Array };

/**
 * Runs decode (`decodeVerifiedUpdate` when a public key is given) and returns the UpdateCodecError it throws (fails the
 * test if it throws anything else or nothing).
 */
async function decodeError(bytes: Uint8Array, options: DecodeOptions = {}): Promise<UpdateCodecError> {
  const { publicKey, ...rest } = options;
  try {
    if (publicKey) await decodeVerifiedUpdate(bytes, publicKey, rest);
    else decodeUpdate(bytes, rest);
  } catch (e) {
    if (e instanceof UpdateCodecError) return e;
    throw e;
  }
  throw new Error("decodeUpdate accepted the input");
}

async function expectReason(
  bytes: Uint8Array,
  reason: UpdateCodecErrorReason,
  offset?: number,
  options?: DecodeOptions,
) {
  const err = await decodeError(bytes, options);
  expect(err.reason).toBe(reason);
  if (offset !== undefined) expect(err.offset).toBe(offset);
  return err;
}

function expectSameFields(actual: UpdateFields, expected: UpdateFields) {
  expect(actual.roundId).toBe(expected.roundId);
  expect(actual.deviceId).toBe(expected.deviceId);
  expect(Array.from(actual.nonce)).toEqual(Array.from(expected.nonce));
  expect(actual.shape).toEqual(expected.shape);
  expect(actual.payload.dtype).toBe(expected.payload.dtype);
  expect(rawBytes(actual.payload.values)).toEqual(rawBytes(expected.payload.values));
  if (expected.payload.dtype === "int8" && actual.payload.dtype === "int8") {
    expect(actual.payload.scale).toBe(Math.fround(expected.payload.scale));
  }
}

describe("constants", () => {
  it("names the media type and version", async () => {
    expect(UPDATE_MEDIA_TYPE).toBe("application/vnd.fedge.update");
    expect(UPDATE_FORMAT_VERSION).toBe(3);
    expect(DEFAULT_MAX_UPDATE_BYTES).toBe(16 * 1024 * 1024);
  });
});

describe("round trip (property-based)", () => {
  it("decode(encode(x)) equals x and the signature verifies, float32 and int8, random shapes and ids", async () => {
    await fc.assert(
      fc.asyncProperty(fieldsArb(), async (fields) => {
        const bytes = await encodeUpdate(fields, sk);
        const decoded = await decodeVerifiedUpdate(bytes, pk);
        expectSameFields(decoded, fields);
        expect(decoded.version).toBe(3);
        expect(decoded.clipBit).toBe(fields.clipBit ?? null);
        expect(decoded.byteLength).toBe(bytes.length);
        expect(decoded.signedBytes.length).toBe(bytes.length - 64);
        // The validating pass sums the squares (int8: of the integers q, exactly; float32: in float64 over four partial
        // sums, so within float64 rounding of a sequential pass).
        let sum = 0;
        for (const v of fields.payload.values) sum += v * v;
        if (fields.payload.dtype === "int8") expect(decoded.sumOfSquares).toBe(sum);
        else expect(Math.abs(decoded.sumOfSquares - sum)).toBeLessThanOrEqual(sum * 1e-12);
        expect(decoded.signature.length).toBe(64);
        expect(await verifyUpdateSignature(decoded, pk)).toBe(true);
        expect(await verifyUpdateSignature(decoded, OTHER_KEY.publicKey)).toBe(false);
        expect(
          encodedUpdateLength({ ...fields, dtype: fields.payload.dtype }),
          "encodedUpdateLength predicts the size",
        ).toBe(bytes.length);
        // Independently computed layout: the payload starts 4-byte aligned and the length is exact.
        const l = layout(fields);
        expect(l.payload[0] % 4).toBe(0);
        expect(l.signature[1]).toBe(bytes.length);
        // Encoding is deterministic (Ed25519 signatures are), so re-encoding the decoded fields gives the same bytes.
        expect(await encodeUpdate(decoded, sk)).toEqual(bytes);
      }),
      { numRuns: 100 },
    );
  });

  it("decodes the same from an unaligned copy, and with copy: true", async () => {
    await fc.assert(
      fc.asyncProperty(fieldsArb(), fc.integer({ min: 1, max: 3 }), async (fields, shift) => {
        const bytes = await encodeUpdate(fields, sk);
        const shifted = new Uint8Array(bytes.length + shift).subarray(shift);
        shifted.set(bytes);
        expectSameFields(await decodeVerifiedUpdate(shifted, pk), fields);
        expectSameFields(await decodeVerifiedUpdate(bytes, pk, { copy: true }), fields);
      }),
      { numRuns: 40 },
    );
  });

  it("keeps −0, subnormals and the float32 extremes bit-exact", async () => {
    const values = new Float32Array([
      -0, 0, 1.401298464324817e-45, -1.1754942106924411e-38, 3.4028234663852886e38, -3.4028234663852886e38,
    ]);
    const fields: UpdateFields = { ...small(), shape: [3, 2], payload: { dtype: "float32", values } };
    expectSameFields(await decodeVerifiedUpdate(await encodeUpdate(fields, sk), pk), fields);
  });

  it("views an aligned float32 payload in place by default, and copies it with copy: true or when unaligned", async () => {
    const bytes = await encodeUpdate(small("float32", 1000), sk);
    const view = decodeUpdate(bytes);
    expect(view.payload.values.buffer).toBe(bytes.buffer);
    expect(view.signedBytes.buffer).toBe(bytes.buffer);
    const copied = decodeUpdate(bytes, { copy: true });
    expect(copied.payload.values.buffer).not.toBe(bytes.buffer);
    expect(copied.signedBytes.buffer).not.toBe(bytes.buffer);
    bytes[100]! ^= 0xff; // writes to the input show in the view, not in the copy
    expect(rawBytes(view.payload.values)).not.toEqual(rawBytes(copied.payload.values));
    const unaligned = new Uint8Array(bytes.length + 1).subarray(1);
    unaligned.set(bytes);
    expect(decodeUpdate(unaligned).payload.values.buffer).not.toBe(unaligned.buffer);
  });

  it("verifyUpdateSignature fails when the decoded content is altered afterwards", async () => {
    const decoded = decodeUpdate(await encodeUpdate(small("int8"), sk), { copy: true });
    expect(await verifyUpdateSignature(decoded, pk)).toBe(true);
    decoded.signedBytes[20]! ^= 1;
    expect(await verifyUpdateSignature(decoded, pk)).toBe(false);
    await expect(verifyUpdateSignature(decoded, new Uint8Array(31))).rejects.toThrow(RangeError);
  });
});

describe("clip bit (since version 2)", () => {
  it("round-trips b = 1, b = 0 and 'not reported', at byte 8, covered by the signature", async () => {
    for (const [clipBit, field] of [
      [1, 3],
      [0, 2],
      [undefined, 0],
      [null, 0],
    ] as const) {
      const fields: UpdateFields = { ...small(), clipBit };
      const bytes = await encodeUpdate(fields, sk);
      expect(bytes[8]).toBe(field);
      const decoded = await decodeVerifiedUpdate(bytes, pk);
      expect(decoded.clipBit).toBe(clipBit ?? null);
      expect(await encodeUpdate(decoded, sk)).toEqual(bytes);
    }
  });

  it("a flipped bit (2 ↔ 3, or reported ↔ not) parses but fails the signature; other values are bad_field", async () => {
    const bytes = await encodeUpdate({ ...small(), clipBit: 1 }, sk);
    for (const forged of [2, 0]) {
      const b = bytes.slice();
      b[8] = forged;
      expect(decodeUpdate(b).clipBit).toBe(forged === 2 ? 0 : null);
      await expectReason(b, "bad_signature", undefined, { publicKey: pk });
    }
    for (const bad of [1, 4, 0x80, 0xff]) {
      const b = bytes.slice();
      b[8] = bad;
      const err = await expectReason(b, "bad_field", 8);
      expect(err.message).toMatch(/clip bit field is \d+; it must be 0 \(not reported\), 2 \(b = 0\) or 3 \(b = 1\)/);
    }
  });
});

describe("decode rejects", () => {
  it("every truncation, with `truncated` inside the header and `length_mismatch` after it", async () => {
    await fc.assert(
      fc.asyncProperty(fieldsArb(), async (fields) => {
        const bytes = await encodeUpdate(fields, sk);
        const headerEnd = layout(fields).padding[0];
        for (let k = 0; k < bytes.length; k++) {
          const err = await decodeError(bytes.subarray(0, k), { publicKey: pk });
          expect(err.reason).toBe(k < headerEnd ? "truncated" : "length_mismatch");
        }
      }),
      { numRuns: 15 },
    );
  });

  it("trailing bytes", async () => {
    const bytes = await encodeUpdate(small(), sk);
    for (const extra of [1, 3, 64]) {
      const longer = new Uint8Array(bytes.length + extra);
      longer.set(bytes);
      await expectReason(longer, "trailing_bytes", bytes.length);
    }
  });

  it("bad magic (even a 1-byte prefix), unsupported versions, unknown dtypes and non-zero flags", async () => {
    const bytes = await encodeUpdate(small(), sk);
    await expectReason(Uint8Array.of(0x47), "bad_magic", 0);
    await expectReason(Uint8Array.of(0x46, 0x45), "truncated");
    await expectReason(new TextEncoder().encode('{"json":true}'), "bad_magic", 0);
    for (const [offset, value, reason] of [
      [3, 0x56, "bad_magic"],
      [4, 0, "unsupported_version"],
      [4, 1, "unsupported_version"],
      [4, 2, "unsupported_version"],
      [4, 4, "unsupported_version"],
      [5, 0, "bad_dtype"],
      [5, 3, "bad_dtype"],
      [6, 1, "bad_flags"],
      [7, 0x80, "bad_flags"],
    ] as const) {
      const b = bytes.slice();
      b[offset] = value;
      await expectReason(b, reason, offset === 7 ? 6 : offset);
    }
  });

  it("id lengths out of range and id bytes outside [A-Za-z0-9_-]", async () => {
    const fields = small();
    const bytes = await encodeUpdate(fields, sk);
    const l = layout(fields);
    for (const [at, value] of [
      [l.roundIdLength[0], 0],
      [l.roundIdLength[0], 65],
      [l.deviceIdLength[0], 0],
      [l.deviceIdLength[0], 81],
    ] as const) {
      const b = bytes.slice();
      b[at] = value;
      await expectReason(b, "bad_field", at);
    }
    for (const ch of [" ", ".", "/", "\u00e9", "\u0000"]) {
      for (const at of [l.roundId[0], l.deviceId[1] - 1]) {
        const b = bytes.slice();
        b[at] = ch.charCodeAt(0);
        await expectReason(b, "bad_field", at);
      }
    }
  });

  it("rank 0 or above 8, a zero dim, and dims whose product differs from the count", async () => {
    const fields: UpdateFields = { ...small("float32", 12), shape: [3, 4] };
    const bytes = await encodeUpdate(fields, sk);
    const l = layout(fields);
    const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (const rank of [0, 9, 255]) {
      const b = bytes.slice();
      b[l.rank[0]] = rank;
      await expectReason(b, "bad_field", l.rank[0]);
    }
    let b = bytes.slice();
    dv(b).setUint32(l.dims[0] + 4, 0, true);
    await expectReason(b, "bad_field", l.dims[0] + 4);
    b = bytes.slice();
    dv(b).setUint32(l.dims[0], 4, true); // 4×4 = 16 ≠ 12
    await expectReason(b, "shape_mismatch", l.count[0]);
    b = bytes.slice();
    dv(b).setUint32(l.count[0], 13, true);
    await expectReason(b, "shape_mismatch", l.count[0]);
    b = bytes.slice();
    dv(b).setUint32(l.dims[0], 0xffffffff, true); // product overflows u32
    expect((await decodeError(b)).message).toContain("more than 2^32-1");
  });

  it("a consistent header that declares more values than the body holds (length_mismatch), without allocating them", async () => {
    const fields = small("float32", 12);
    const bytes = await encodeUpdate(fields, sk);
    const l = layout(fields);
    const dv = new DataView(bytes.buffer);
    dv.setUint32(l.dims[0], 13, true);
    dv.setUint32(l.count[0], 13, true);
    await expectReason(bytes, "length_mismatch", bytes.length);
    // 2^32 − 1 float32 values (16 GiB) declared in a ~100-byte body: fails at once on the length, no allocation.
    dv.setUint32(l.dims[0], 0xffffffff, true);
    dv.setUint32(l.count[0], 0xffffffff, true);
    const err = await expectReason(bytes, "length_mismatch", bytes.length);
    expect(err.message).toContain("4294967295");
    expect(err.toFedgeError().status).toBe(400);
    // rank 8 with dims 2^16 each cannot match any u32 count.
    const big = new Uint8Array(200);
    big.set(bytes.subarray(0, l.rank[0]));
    big[l.rank[0]] = 8;
    const bdv = new DataView(big.buffer);
    for (let k = 0; k < 8; k++) bdv.setUint32(l.rank[1] + 4 * k, 65536, true);
    bdv.setUint32(l.rank[1] + 32, 0, true);
    await expectReason(big, "shape_mismatch", l.rank[1] + 32);
  });

  it("non-finite float32 values (NaN, ±Inf, any NaN payload)", async () => {
    const fields = small("float32", 8);
    const bytes = await encodeUpdate(fields, sk);
    const start = layout(fields).payload[0];
    for (const [index, bits] of [
      [0, 0x7fc00000], // quiet NaN
      [3, 0x7f800001], // signalling NaN
      [5, 0xffffffff], // negative NaN
      [7, 0x7f800000], // +Inf
      [2, 0xff800000], // −Inf
    ] as const) {
      const b = bytes.slice();
      new DataView(b.buffer).setUint32(start + 4 * index, bits, true);
      const err = await expectReason(b, "non_finite", start + 4 * index, { publicKey: pk });
      expect(err.toFedgeError().code).toBe("non_finite");
    }
  });

  it("int8: NaN/±Inf scale, zero or negative scale, 127·scale overflowing float32, and −128 values", async () => {
    const fields = small("int8", 5);
    const bytes = await encodeUpdate(fields, sk);
    const l = layout(fields);
    for (const [scale, reason] of [
      [Number.NaN, "non_finite"],
      [Number.POSITIVE_INFINITY, "non_finite"],
      [Number.NEGATIVE_INFINITY, "non_finite"],
      [3.4028234663852886e38, "non_finite"],
      [0, "bad_field"],
      [-0, "bad_field"],
      [-0.5, "bad_field"],
    ] as const) {
      const b = bytes.slice();
      new DataView(b.buffer).setFloat32(l.scale[0], scale, true);
      await expectReason(b, reason, l.scale[0]);
    }
    const b = bytes.slice();
    b[l.payload[0] + 2] = 0x80;
    await expectReason(b, "bad_field", l.payload[0] + 2);
  });

  it("non-zero padding bytes", async () => {
    const fields = small(); // roundId 7, deviceId 14, rank 1: header ends at 56 → no padding; make one with padding
    const padded: UpdateFields = { ...fields, roundId: "r" };
    const l = layout(padded);
    expect(l.padding[1] - l.padding[0]).toBeGreaterThan(0);
    const bytes = await encodeUpdate(padded, sk);
    for (let i = l.padding[0]; i < l.padding[1]; i++) {
      expect(bytes[i]).toBe(0);
      const b = bytes.slice();
      b[i] = 1;
      await expectReason(b, "bad_field", i);
    }
  });

  it("inputs over maxBytes (configurable; default 16 MiB) with `oversize` → 413", async () => {
    const bytes = await encodeUpdate(small("float32", 100), sk);
    expect(decodeUpdate(bytes, { maxBytes: bytes.length }).byteLength).toBe(bytes.length);
    const err = await expectReason(bytes, "oversize", bytes.length - 1, { maxBytes: bytes.length - 1 });
    const fe = err.toFedgeError();
    expect(fe).toBeInstanceOf(FedgeError);
    expect([fe.status, fe.code]).toEqual([413, "payload_too_large"]);
    // The cap is checked before anything is parsed: even garbage over the cap is `oversize`.
    await expectReason(new Uint8Array(DEFAULT_MAX_UPDATE_BYTES + 1), "oversize");
    for (const maxBytes of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => decodeUpdate(bytes, { maxBytes })).toThrow(RangeError);
    }
  });

  it("bad signatures and wrong public keys, but decodes without a key", async () => {
    const fields = small("int8");
    const bytes = await encodeUpdate(fields, sk);
    const sigStart = layout(fields).signature[0];
    const err = await expectReason(bytes, "bad_signature", sigStart, { publicKey: OTHER_KEY.publicKey });
    expect([err.toFedgeError().status, err.toFedgeError().code]).toEqual([400, "bad_signature"]);
    const b = bytes.slice();
    b[sigStart + 10]! ^= 0x04;
    await expectReason(b, "bad_signature", sigStart, { publicKey: pk });
    const decoded = decodeUpdate(b);
    expect(await verifyUpdateSignature(decoded, pk)).toBe(false);
    // Signed by another key (a device impersonating another's id).
    const forged = await encodeUpdate(fields, OTHER_KEY.secretKey);
    await expectReason(forged, "bad_signature", sigStart, { publicKey: pk });
    await expect(decodeVerifiedUpdate(bytes, new Uint8Array(64))).rejects.toThrow(RangeError);
  });

  it("non-Uint8Array input with a TypeError", async () => {
    const bytes = await encodeUpdate(small(), sk);
    expect(() => decodeUpdate(bytes.buffer as unknown as Uint8Array)).toThrow(TypeError);
    expect(() => decodeUpdate("FEDU" as unknown as Uint8Array)).toThrow(TypeError);
  });
});

describe("encodeUpdate validates its inputs", () => {
  const f = small("float32", 4);
  const i8 = small("int8", 4);
  const cases: [string, () => Promise<unknown>, typeof TypeError | typeof RangeError, RegExp][] = [
    ["empty roundId", () => encodeUpdate({ ...f, roundId: "" }, sk), RangeError, /roundId/],
    ["roundId too long", () => encodeUpdate({ ...f, roundId: "r".repeat(65) }, sk), RangeError, /roundId/],
    ["roundId charset", () => encodeUpdate({ ...f, roundId: "round 1" }, sk), RangeError, /roundId/],
    ["roundId non-ASCII", () => encodeUpdate({ ...f, roundId: "r\u00e9" }, sk), RangeError, /roundId/],
    ["roundId not a string", () => encodeUpdate({ ...f, roundId: 5 as unknown as string }, sk), TypeError, /roundId/],
    ["deviceId too long", () => encodeUpdate({ ...f, deviceId: "d".repeat(81) }, sk), RangeError, /deviceId/],
    ["deviceId charset", () => encodeUpdate({ ...f, deviceId: "dev/x" }, sk), RangeError, /deviceId/],
    ["clipBit 2", () => encodeUpdate({ ...f, clipBit: 2 as 0 }, sk), RangeError, /clipBit/],
    ["clipBit true", () => encodeUpdate({ ...f, clipBit: true as unknown as 1 }, sk), RangeError, /clipBit/],
    ["nonce 15 bytes", () => encodeUpdate({ ...f, nonce: new Uint8Array(15) }, sk), RangeError, /nonce/],
    ["nonce not bytes", () => encodeUpdate({ ...f, nonce: [1] as unknown as Uint8Array }, sk), TypeError, /nonce/],
    ["empty shape", () => encodeUpdate({ ...f, shape: [] }, sk), RangeError, /shape/],
    ["rank 9", () => encodeUpdate({ ...f, shape: [4, 1, 1, 1, 1, 1, 1, 1, 1] }, sk), RangeError, /shape/],
    ["zero dim", () => encodeUpdate({ ...f, shape: [4, 0] }, sk), RangeError, /dim/],
    ["fractional dim", () => encodeUpdate({ ...f, shape: [2.5] }, sk), RangeError, /dim/],
    [
      "shape/count mismatch",
      () => encodeUpdate({ ...f, shape: [5] }, sk),
      RangeError,
      /holds 5 values but the payload has 4/,
    ],
    [
      "NaN value",
      () => encodeUpdate({ ...f, payload: { dtype: "float32", values: new Float32Array([0, 1, NaN, 2]) } }, sk),
      RangeError,
      /value 2 is not finite/,
    ],
    [
      "Inf value",
      () => encodeUpdate({ ...f, payload: { dtype: "float32", values: new Float32Array([0, 1, 2, -Infinity]) } }, sk),
      RangeError,
      /value 3 is not finite/,
    ],
    [
      "float32 dtype with Int8Array",
      () =>
        encodeUpdate({ ...f, payload: { dtype: "float32", values: new Int8Array(4) as unknown as Float32Array } }, sk),
      TypeError,
      /Float32Array/,
    ],
    [
      "int8 dtype with Float32Array",
      () =>
        encodeUpdate(
          { ...i8, payload: { dtype: "int8", values: new Float32Array(4) as unknown as Int8Array, scale: 1 } },
          sk,
        ),
      TypeError,
      /Int8Array/,
    ],
    [
      "unknown dtype",
      () =>
        encodeUpdate(
          { ...f, payload: { dtype: "float16", values: new Float32Array(4) } as unknown as UpdateFields["payload"] },
          sk,
        ),
      TypeError,
      /dtype/,
    ],
    [
      "NaN scale",
      () => encodeUpdate({ ...i8, payload: { dtype: "int8", values: new Int8Array(4), scale: NaN } }, sk),
      RangeError,
      /scale/,
    ],
    [
      "zero scale",
      () => encodeUpdate({ ...i8, payload: { dtype: "int8", values: new Int8Array(4), scale: 0 } }, sk),
      RangeError,
      /scale/,
    ],
    [
      "negative scale",
      () => encodeUpdate({ ...i8, payload: { dtype: "int8", values: new Int8Array(4), scale: -1 } }, sk),
      RangeError,
      /scale/,
    ],
    [
      "scale that is 0 as float32",
      () => encodeUpdate({ ...i8, payload: { dtype: "int8", values: new Int8Array(4), scale: 1e-50 } }, sk),
      RangeError,
      /scale/,
    ],
    [
      "scale overflowing 127·scale",
      () => encodeUpdate({ ...i8, payload: { dtype: "int8", values: new Int8Array(4), scale: 3e38 } }, sk),
      RangeError,
      /overflow/,
    ],
    [
      "int8 −128",
      () => encodeUpdate({ ...i8, payload: { dtype: "int8", values: new Int8Array([0, -128, 0, 0]), scale: 1 } }, sk),
      RangeError,
      /value 1 is −128/,
    ],
    ["short secret key", () => encodeUpdate(f, sk.subarray(0, 32)), RangeError, /secretKey/],
    ["fields not an object", () => encodeUpdate(null as unknown as UpdateFields, sk), TypeError, /fields/],
  ];
  it.each(cases)("%s", async (_name, run, type, message) => {
    await expect(run()).rejects.toThrow(type);
    await expect(run()).rejects.toThrow(message);
  });
});

describe("UpdateCodecError", () => {
  it("maps every reason onto the HTTP error envelope", async () => {
    const expected: Record<UpdateCodecErrorReason, [number, string]> = {
      truncated: [400, "malformed_update"],
      bad_magic: [400, "malformed_update"],
      unsupported_version: [400, "malformed_update"],
      bad_dtype: [400, "malformed_update"],
      bad_flags: [400, "malformed_update"],
      bad_field: [400, "malformed_update"],
      shape_mismatch: [400, "malformed_update"],
      length_mismatch: [400, "malformed_update"],
      trailing_bytes: [400, "malformed_update"],
      non_finite: [400, "non_finite"],
      oversize: [413, "payload_too_large"],
      bad_signature: [400, "bad_signature"],
    };
    expect([...UPDATE_CODEC_ERROR_REASONS].sort()).toEqual(Object.keys(expected).sort());
    for (const reason of UPDATE_CODEC_ERROR_REASONS) {
      const err = new UpdateCodecError(reason, "detail", 12);
      expect(err).toBeInstanceOf(Error);
      expect(err.name).toBe("UpdateCodecError");
      expect(err.offset).toBe(12);
      expect(err.message).toBe("detail (at byte 12)");
      const fe = err.toFedgeError();
      expect([fe.status, fe.code]).toEqual(expected[reason]);
      expect(fe.toJSON().error.message).toContain(reason);
      expect(fe.toJSON().error.message).not.toContain("at Object");
    }
    expect(new UpdateCodecError("truncated", "x").offset).toBeUndefined();
  });
});
