/**
 * @module
 * The binary update codec, media type `application/vnd.fedge.update`, format version 3.
 *
 * A device uploads its model delta Δ (clipped, and in `local` mode noised) as one of these bodies; the edge decodes it
 * without a key, looks up the device's Ed25519 public key by the device id in the header, then calls
 * `verifyUpdateSignature` (SHA-256 and Ed25519 from WebCrypto); the aggregator decodes and verifies the same bytes
 * again (`decodeVerifiedUpdate`). Every integer and float is little-endian. Offsets are from the first byte of the body.
 *
 * | offset          | size     | field                                                                                  |
 * | --------------- | -------- | -------------------------------------------------------------------------------------- |
 * | 0               | 4        | magic, ASCII `FEDU` (`46 45 44 55`)                                                    |
 * | 4               | 1        | version, u8 = 3                                                                        |
 * | 5               | 1        | dtype, u8: 1 = float32, 2 = int8                                                       |
 * | 6               | 2        | flags, u16 = 0 (reserved; any other value is rejected)                                 |
 * | 8               | 1        | clip bit, u8: 0 = not reported, 2 = reported b = 0 (‖Δ‖ > C), 3 = reported b = 1      |
 * | 9               | 1        | R = round id length, u8, 1..64                                                         |
 * | 10              | R        | round id, ASCII `[A-Za-z0-9_-]`                                                        |
 * | 10+R            | 1        | D = device id length, u8, 1..80                                                        |
 * | 11+R            | D        | device id, ASCII `[A-Za-z0-9_-]`                                                       |
 * | 11+R+D          | 16       | nonce, raw bytes (the round task's nonce)                                              |
 * | 27+R+D          | 1        | K = rank, u8, 1..8                                                                     |
 * | 28+R+D          | 4·K      | dims, u32 each, every dim ≥ 1                                                          |
 * | 28+R+D+4K       | 4        | N = value count, u32; must equal the product of the dims                               |
 * | 32+R+D+4K       | 4        | scale, f32, int8 only (absent for float32): finite, > 0, and 127·scale finite in f32    |
 * | H               | P        | zero padding, P = (4 − H mod 4) mod 4, so the payload starts at a multiple of 4         |
 * | H+P             | 4N or N  | payload: N float32 (all finite) or N int8 (each in −127..127, value = q·scale)         |
 * | H+P+4N or H+P+N | 64       | Ed25519 signature over `fedge-update-v3\n` ‖ SHA-256(every preceding byte)             |
 *
 * H = 32+R+D+4K for float32 and 36+R+D+4K for int8; the body is exactly H+P+(4N or N)+64 bytes, nothing may follow.
 *
 * The clip bit (new in version 2) is the device's b = 1[‖Δ‖₂ ≤ C], computed on the device BEFORE it clips Δ to C: the
 * adaptive clipping of DP-FedAvg (Andrew et al. 2021, arXiv 1905.03871, Alg. 1) moves C toward a quantile of the
 * unclipped norms, which a server that only ever sees clipped updates cannot measure (every clipped update has ‖·‖ ≤ C).
 * It is a field of the signed bytes, so nobody between the device and the aggregator can flip it. The rule: a device
 * reports it (2 or 3) only when its round task asks for it (`report_clip_bit`, allowed in `central` mode only, where the
 * aggregator releases Σ b only through its noised count); otherwise the field is 0. In `local` mode the bit would reach
 * an untrusted server un-noised, so it is never sent; the edge refuses an update whose field does not match its round.
 * Values 1 and 4..255 are rejected (`bad_field`).
 *
 * Version 3 (this one) has version 2's layout byte for byte; only what the signature covers changed: a SHA-256 digest of
 * the header and payload instead of the whole body (see `signature.ts`: one native hash pass instead of two SHA-512
 * passes in JavaScript on the device). Versions 1 (no clip bit) and 2 (whole-body signature) are refused with
 * `unsupported_version` and a message naming the version: a version 2 signature cannot be checked as a version 3 one.
 *
 * The signature must be canonical (S below the Ed25519 group order, RFC 8032 §5.1.7): tweetnacl alone would also accept S + L.
 * Identify an upload by (round id, device id, nonce), never by its signature or a hash of the whole body.
 *
 * The padding lets a decoder view a float32 payload in place (`new Float32Array(buffer, offset, N)`) when the body itself
 * starts 4-byte aligned, which a freshly read `ArrayBuffer` does. Every byte is determined by the fields (padding must be zero,
 * ids have one spelling), so an accepted body has exactly one meaning, and any change to it either breaks parsing or the
 * signature.
 *
 * Decoding never allocates in proportion to a declared size before checking it against the bytes actually present, and it
 * refuses inputs longer than `maxBytes` before reading them.
 */
import { UpdateCodecError } from "./errors.ts";
import { CLIP_BIT_ABSENT, CLIP_BIT_PRESENT, DTYPE_CODES, F32_MAX, ID_PATTERN, LITTLE_ENDIAN_HOST } from "./layout.ts";
import { checkPublicKey, verifyUpdateSignature, type UpdateCryptoOptions } from "./signature.ts";

export const UPDATE_MEDIA_TYPE = "application/vnd.fedge.update";
export const UPDATE_FORMAT_VERSION = 3;
/** `FEDU` in ASCII. */
export const UPDATE_MAGIC: Readonly<Uint8Array> = new Uint8Array([0x46, 0x45, 0x44, 0x55]);
/** Default `maxBytes` of `decodeUpdate`: 16 MiB. */
export const DEFAULT_MAX_UPDATE_BYTES = 16 * 1024 * 1024;
export const UPDATE_NONCE_BYTES = 16;
export const UPDATE_SIGNATURE_BYTES = 64;
export const UPDATE_MAX_RANK = 8;
export const UPDATE_ROUND_ID_MAX_LENGTH = 64;
export const UPDATE_DEVICE_ID_MAX_LENGTH = 80;

/** Why each retired version is refused (named in the `unsupported_version` message). */
const RETIRED_VERSIONS: Record<number, string> = {
  1: "has no clip-bit field and signs the whole body",
  2: "signs the whole body, not its SHA-256 digest",
};
/** 1 for bytes allowed in ids (`[A-Za-z0-9_-]`), else 0. */
const ID_BYTE = new Uint8Array(256);
for (let c = 0; c < 256; c++) ID_BYTE[c] = ID_PATTERN.test(String.fromCharCode(c)) ? 1 : 0;

export type UpdatePayload =
  { dtype: "float32"; values: Float32Array } | { dtype: "int8"; values: Int8Array; scale: number };

export interface UpdateFields {
  /** Round id, `[A-Za-z0-9_-]{1,64}` (the round task's `round_id`). */
  roundId: string;
  /** Device id, `[A-Za-z0-9_-]{1,80}`; the edge looks up the device's public key by it. */
  deviceId: string;
  /** The round task's single-use nonce, 16 raw bytes. */
  nonce: Uint8Array;
  /** Tensor shape, 1..8 dims, each an integer ≥ 1; their product is the value count. */
  shape: number[];
  payload: UpdatePayload;
  /**
   * The device's b = 1[‖Δ‖₂ ≤ C] before clipping, sent only when the round task asks for it (`report_clip_bit`, central
   * mode with adaptive clipping); absent (`undefined`, or `null` as decoded) otherwise. See the module header.
   * @default undefined (not reported)
   */
  clipBit?: 0 | 1 | null | undefined;
}

export interface DecodedUpdate extends UpdateFields {
  version: number;
  /** The reported clip bit, or `null` when the device did not report one (field value 0). */
  clipBit: 0 | 1 | null;
  /** The 64-byte Ed25519 signature (a copy). */
  signature: Uint8Array;
  /**
   * Bytes the signature covers (through their SHA-256 digest, see `signature.ts`): a view into the decoded input unless
   * `copy` was set.
   */
  signedBytes: Uint8Array;
  /** Length of the whole encoded update, signature included. */
  byteLength: number;
  /**
   * Σ v² over the payload in float64, in index order, summed by the pass that validates the values (float32: the
   * values; int8: the integers q, so the sum is exact). The L2 norm is its square root (int8: times `scale`), equal
   * to the norm of a separate pass, so a norm check needs no second walk over the payload.
   */
  sumOfSquares: number;
}

export interface DecodeUpdateOptions {
  /**
   * Reject inputs longer than this many bytes (reason `oversize`) before reading them.
   * @default 16 MiB (`DEFAULT_MAX_UPDATE_BYTES`)
   */
  maxBytes?: number;
  /**
   * Copy the payload and `signedBytes` out of the input. By default they are views into `bytes` where possible (float32 needs
   * the payload to be 4-byte aligned in its buffer), so later writes to `bytes` show through, and writes to the values show in
   * `signedBytes`.
   * @default false
   */
  copy?: boolean;
}

/**
 * Decode and validate an update: structure, sizes, ranges, finiteness; NOT the signature (the edge learns the key from
 * the header's device id first; then `verifyUpdateSignature`, or {@link decodeVerifiedUpdate} with a known key).
 * Throws `UpdateCodecError` for anything wrong with the bytes, `TypeError`/`RangeError` for bad arguments.
 */
export function decodeUpdate(bytes: Uint8Array, options: DecodeUpdateOptions = {}): DecodedUpdate {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("decodeUpdate: bytes must be a Uint8Array");
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_UPDATE_BYTES;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new RangeError(`decodeUpdate: maxBytes must be a positive integer, got ${String(options.maxBytes)}`);
  }
  const copy = options.copy ?? false;
  const len = bytes.length;
  if (len > maxBytes)
    throw new UpdateCodecError("oversize", `update is ${len} bytes, more than maxBytes ${maxBytes}`, maxBytes);

  for (let i = 0; i < 4 && i < len; i++) {
    if (bytes[i] !== UPDATE_MAGIC[i])
      throw new UpdateCodecError("bad_magic", "not a fedge update: magic is not FEDU", i);
  }
  need(len, 0, 8, "fixed header");
  const view = new DataView(bytes.buffer, bytes.byteOffset, len);
  if (bytes[4] !== UPDATE_FORMAT_VERSION) {
    const old = RETIRED_VERSIONS[bytes[4]!];
    const why =
      old === undefined ? "" : `; version ${bytes[4]} ${old} and is no longer accepted: upgrade the device SDK`;
    throw new UpdateCodecError(
      "unsupported_version",
      `update format version ${bytes[4]} is not supported (this codec reads version ${UPDATE_FORMAT_VERSION} only${why})`,
      4,
    );
  }
  const dtypeCode = bytes[5];
  if (dtypeCode !== DTYPE_CODES.float32 && dtypeCode !== DTYPE_CODES.int8) {
    throw new UpdateCodecError("bad_dtype", `dtype code ${dtypeCode} is neither 1 (float32) nor 2 (int8)`, 5);
  }
  const int8 = dtypeCode === DTYPE_CODES.int8;
  const flags = view.getUint16(6, true);
  if (flags !== 0) throw new UpdateCodecError("bad_flags", `flags are reserved and must be 0, got ${flags}`, 6);
  need(len, 8, 1, "clip bit");
  const clipField = bytes[8]!;
  if (clipField !== CLIP_BIT_ABSENT && clipField !== CLIP_BIT_PRESENT && clipField !== (CLIP_BIT_PRESENT | 1)) {
    throw new UpdateCodecError(
      "bad_field",
      `clip bit field is ${clipField}; it must be 0 (not reported), 2 (b = 0) or 3 (b = 1)`,
      8,
    );
  }
  const clipBit = clipField === CLIP_BIT_ABSENT ? null : ((clipField & 1) as 0 | 1);

  let p = 9;
  const roundId = readId(bytes, len, p, "round id", UPDATE_ROUND_ID_MAX_LENGTH);
  p += 1 + roundId.length;
  const deviceId = readId(bytes, len, p, "device id", UPDATE_DEVICE_ID_MAX_LENGTH);
  p += 1 + deviceId.length;
  need(len, p, UPDATE_NONCE_BYTES, "nonce");
  const nonce = bytes.slice(p, p + UPDATE_NONCE_BYTES);
  p += UPDATE_NONCE_BYTES;
  need(len, p, 1, "rank");
  const rank = bytes[p]!;
  if (rank < 1 || rank > UPDATE_MAX_RANK)
    throw new UpdateCodecError("bad_field", `rank ${rank} is not in 1..${UPDATE_MAX_RANK}`, p);
  p += 1;
  need(len, p, 4 * rank, "dims");
  const shape: number[] = new Array<number>(rank);
  let product = 1;
  for (let k = 0; k < rank; k++, p += 4) {
    const d = view.getUint32(p, true);
    if (d === 0) throw new UpdateCodecError("bad_field", `dim ${k} is 0`, p);
    shape[k] = d;
    // Capped at 2^32, which no u32 count can equal; keeps the product exact below it.
    product = Math.min(product * d, 2 ** 32);
  }
  need(len, p, 4, "value count");
  const n = view.getUint32(p, true);
  if (product !== n) {
    throw new UpdateCodecError(
      "shape_mismatch",
      `shape [${shape.join(", ")}] holds ${product >= 2 ** 32 ? "more than 2^32-1" : product} values but the value count is ${n}`,
      p,
    );
  }
  p += 4;
  let scale = 0;
  if (int8) {
    need(len, p, 4, "scale");
    scale = view.getFloat32(p, true);
    if (!Number.isFinite(scale)) throw new UpdateCodecError("non_finite", `int8 scale is ${scale}`, p);
    if (!(scale > 0)) throw new UpdateCodecError("bad_field", `int8 scale must be > 0, got ${scale}`, p);
    if (127 * scale > F32_MAX)
      throw new UpdateCodecError("non_finite", `int8 scale ${scale} makes 127·scale overflow float32`, p);
    p += 4;
  }
  // The header is complete: everything below is sized by it, so check the length before touching (or allocating) any of it.
  const padding = (4 - (p % 4)) % 4;
  const payloadOffset = p + padding;
  const elem = int8 ? 1 : 4;
  const signatureOffset = payloadOffset + n * elem;
  const total = signatureOffset + UPDATE_SIGNATURE_BYTES;
  if (total > len) {
    throw new UpdateCodecError(
      "length_mismatch",
      `header declares ${n} ${int8 ? "int8" : "float32"} values, so the update needs ${total} bytes, but it has ${len}`,
      len,
    );
  }
  if (total < len) {
    throw new UpdateCodecError(
      "trailing_bytes",
      `${len - total} bytes follow the signature (update is ${total} bytes)`,
      total,
    );
  }
  for (let i = p; i < payloadOffset; i++) {
    if (bytes[i] !== 0) throw new UpdateCodecError("bad_field", `padding byte is ${bytes[i]}, must be 0`, i);
  }

  let payload: UpdatePayload;
  let sumOfSquares = 0;
  if (int8) {
    const values = copy
      ? new Int8Array(bytes.slice(payloadOffset, signatureOffset).buffer)
      : new Int8Array(bytes.buffer, bytes.byteOffset + payloadOffset, n);
    for (let i = 0; i < n; i++) {
      const q = values[i]!;
      if (q === -128) {
        throw new UpdateCodecError(
          "bad_field",
          `int8 value ${i} is -128; the symmetric range is -127..127`,
          payloadOffset + i,
        );
      }
      sumOfSquares += q * q;
    }
    payload = { dtype: "int8", values, scale };
  } else {
    const start = bytes.byteOffset + payloadOffset;
    let values: Float32Array;
    if (LITTLE_ENDIAN_HOST && !copy && start % 4 === 0) {
      values = new Float32Array(bytes.buffer, start, n);
    } else if (LITTLE_ENDIAN_HOST) {
      values = new Float32Array(n);
      new Uint8Array(values.buffer).set(bytes.subarray(payloadOffset, signatureOffset));
    } else {
      values = new Float32Array(n);
      for (let i = 0; i < n; i++) values[i] = view.getFloat32(payloadOffset + 4 * i, true);
    }
    // One pass: the sum of squares in float64 is finite exactly when every value is (a finite float32 squared is at most
    // 1.2e77, and 2^32 of them stay far below float64's 1.8e308), so the values are walked again only to name a bad one.
    sumOfSquares = float32SumOfSquares(values);
    if (!Number.isFinite(sumOfSquares)) {
      for (let i = 0; i < n; i++) {
        const v = values[i]!;
        if (v - v !== 0) throw new UpdateCodecError("non_finite", `float32 value ${i} is ${v}`, payloadOffset + 4 * i);
      }
    }
    payload = { dtype: "float32", values };
  }

  const decoded: DecodedUpdate = {
    version: UPDATE_FORMAT_VERSION,
    clipBit,
    roundId,
    deviceId,
    nonce,
    shape,
    payload,
    signature: bytes.slice(signatureOffset, total),
    signedBytes: copy ? bytes.slice(0, signatureOffset) : bytes.subarray(0, signatureOffset),
    byteLength: total,
    sumOfSquares,
  };
  return decoded;
}

/**
 * Σ v² in float64 over four interleaved partial sums: one running sum makes the pass wait on each addition's latency,
 * four independent ones let the additions overlap (about twice as fast on the edge's 100k-value updates). The result
 * differs from a sequential sum only in float64 rounding (relative error ≤ n·2⁻⁵³), and is finite exactly when every
 * value is.
 */
function float32SumOfSquares(values: Float32Array): number {
  const n = values.length;
  const end = n - (n % 4);
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let i = 0;
  for (; i < end; i += 4) {
    const a = values[i]!;
    const b = values[i + 1]!;
    const c = values[i + 2]!;
    const d = values[i + 3]!;
    s0 += a * a;
    s1 += b * b;
    s2 += c * c;
    s3 += d * d;
  }
  for (; i < n; i++) {
    const v = values[i]!;
    s0 += v * v;
  }
  return s0 + s1 + (s2 + s3);
}

/**
 * {@link decodeUpdate}, then the signature under a known 32-byte Ed25519 public key (`verifyUpdateSignature`); a
 * mismatch rejects with `UpdateCodecError` `bad_signature`. What the aggregator uses to re-verify stored updates.
 */
export async function decodeVerifiedUpdate(
  bytes: Uint8Array,
  publicKey: Uint8Array,
  options: DecodeUpdateOptions & UpdateCryptoOptions = {},
): Promise<DecodedUpdate> {
  checkPublicKey(publicKey, "decodeVerifiedUpdate");
  const decoded = decodeUpdate(bytes, options);
  if (!(await verifyUpdateSignature(decoded, publicKey, options))) {
    throw new UpdateCodecError(
      "bad_signature",
      "Ed25519 signature does not verify under the given public key",
      decoded.byteLength - UPDATE_SIGNATURE_BYTES,
    );
  }
  return decoded;
}

/** Throws `truncated` unless `n` bytes are present at `offset`. */
function need(len: number, offset: number, n: number, what: string): void {
  if (offset + n > len) {
    throw new UpdateCodecError(
      "truncated",
      `input ends at byte ${len}, inside the ${what} (bytes ${offset}..${offset + n - 1})`,
      offset,
    );
  }
}

/** Reads a u8-length-prefixed `[A-Za-z0-9_-]` id at `offset`. */
function readId(bytes: Uint8Array, len: number, offset: number, what: string, maxLength: number): string {
  need(len, offset, 1, `${what} length`);
  const n = bytes[offset]!;
  if (n < 1 || n > maxLength)
    throw new UpdateCodecError("bad_field", `${what} length ${n} is not in 1..${maxLength}`, offset);
  need(len, offset + 1, n, what);
  let s = "";
  for (let i = offset + 1; i <= offset + n; i++) {
    const c = bytes[i]!;
    if (ID_BYTE[c] !== 1)
      throw new UpdateCodecError(
        "bad_field",
        `${what} byte 0x${c.toString(16).padStart(2, "0")} is not in [A-Za-z0-9_-]`,
        i,
      );
    s += String.fromCharCode(c);
  }
  return s;
}
