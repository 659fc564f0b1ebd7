/**
 * @module
 * The encoder of the update codec (format version 3; the byte table is in the header of `update-codec.ts`): lay out the
 * fields, then sign the SHA-256 digest of the header and payload (`signature.ts`), with a tweetnacl secret key or a
 * signer callback.
 */
import nacl from "tweetnacl";
import {
  CLIP_BIT_ABSENT,
  CLIP_BIT_PRESENT,
  DTYPE_CODES,
  F32_MAX,
  ID_PATTERN,
  LITTLE_ENDIAN_HOST,
  U32_MAX,
} from "./layout.ts";
import { signUpdateBytes, updateDigest, updateSigningMessage, type UpdateCryptoOptions } from "./signature.ts";
import {
  UPDATE_DEVICE_ID_MAX_LENGTH,
  UPDATE_FORMAT_VERSION,
  UPDATE_MAGIC,
  UPDATE_MAX_RANK,
  UPDATE_NONCE_BYTES,
  UPDATE_ROUND_ID_MAX_LENGTH,
  UPDATE_SIGNATURE_BYTES,
  type UpdateFields,
} from "./update-codec.ts";

/**
 * The exact size in bytes of the encoding of an update with these ids, shape and dtype (header, padding, payload,
 * signature), without encoding it.
 */
export function encodedUpdateLength(o: {
  roundId: string;
  deviceId: string;
  shape: readonly number[];
  dtype: "float32" | "int8";
}): number {
  let n = 1;
  for (const d of o.shape) n *= d;
  const headerEnd = 32 + o.roundId.length + o.deviceId.length + 4 * o.shape.length + (o.dtype === "int8" ? 4 : 0);
  const payloadOffset = headerEnd + ((4 - (headerEnd % 4)) % 4);
  return payloadOffset + n * (o.dtype === "float32" ? 4 : 1) + UPDATE_SIGNATURE_BYTES;
}

/**
 * Signs the 48-byte version 3 signing message (`updateSigningMessage`) with the device's Ed25519 key and returns the
 * 64-byte signature: for keys tweetnacl cannot hold (a WebCrypto `CryptoKey`, a platform keystore).
 */
export type UpdateSigner = (message: Uint8Array<ArrayBuffer>) => Uint8Array | Promise<Uint8Array>;

/**
 * Encode and sign an update (SHA-256 of the header and payload from WebCrypto, then Ed25519 over the signing message:
 * tweetnacl with a 64-byte secret key, or `signer`); throws `TypeError`/`RangeError` naming the bad field when the
 * fields are not valid.
 */
export async function encodeUpdate(
  fields: UpdateFields,
  key: Uint8Array | UpdateSigner,
  options: UpdateCryptoOptions = {},
): Promise<Uint8Array> {
  if (typeof key !== "function" && (!(key instanceof Uint8Array) || key.length !== nacl.sign.secretKeyLength)) {
    throw new RangeError(
      `encodeUpdate: secretKey must be a ${nacl.sign.secretKeyLength}-byte tweetnacl sign secret key (or a signer)`,
    );
  }
  const out = layoutUpdate(fields);
  const signatureOffset = out.length - UPDATE_SIGNATURE_BYTES;
  const signedBytes = out.subarray(0, signatureOffset);
  let signature: Uint8Array;
  if (typeof key === "function") {
    signature = await key(updateSigningMessage(await updateDigest(signedBytes, options)));
    if (!(signature instanceof Uint8Array) || signature.length !== UPDATE_SIGNATURE_BYTES) {
      throw new RangeError(`encodeUpdate: the signer must return a ${UPDATE_SIGNATURE_BYTES}-byte Ed25519 signature`);
    }
  } else {
    signature = await signUpdateBytes(signedBytes, key, options);
  }
  out.set(signature, signatureOffset);
  return out;
}

/** The encoded update with a zero signature (validates the fields; `encodeUpdate` signs it). */
function layoutUpdate(fields: UpdateFields): Uint8Array {
  if (typeof fields !== "object" || fields === null) throw new TypeError("encodeUpdate: fields must be an object");
  const { roundId, deviceId, nonce, shape, payload, clipBit } = fields;
  if (clipBit !== undefined && clipBit !== null && clipBit !== 0 && clipBit !== 1) {
    throw new RangeError(`encodeUpdate: clipBit must be 0, 1 or undefined (not reported), got ${String(clipBit)}`);
  }
  checkId(roundId, "roundId", UPDATE_ROUND_ID_MAX_LENGTH);
  checkId(deviceId, "deviceId", UPDATE_DEVICE_ID_MAX_LENGTH);
  if (!(nonce instanceof Uint8Array)) throw new TypeError("encodeUpdate: nonce must be a Uint8Array");
  if (nonce.length !== UPDATE_NONCE_BYTES) {
    throw new RangeError(`encodeUpdate: nonce must be ${UPDATE_NONCE_BYTES} bytes, got ${nonce.length}`);
  }
  if (!Array.isArray(shape)) throw new TypeError("encodeUpdate: shape must be an array of dims");
  if (shape.length < 1 || shape.length > UPDATE_MAX_RANK) {
    throw new RangeError(`encodeUpdate: shape must have 1..${UPDATE_MAX_RANK} dims, got ${shape.length}`);
  }
  let product = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 1 || d > U32_MAX) {
      throw new RangeError(`encodeUpdate: every dim of shape must be an integer in 1..${U32_MAX}, got ${String(d)}`);
    }
    product *= d;
  }
  if (typeof payload !== "object" || payload === null) throw new TypeError("encodeUpdate: payload must be an object");
  const dtype = payload.dtype;
  const values = payload.values;
  let scale = 0;
  if (dtype === "float32") {
    if (!(values instanceof Float32Array))
      throw new TypeError("encodeUpdate: float32 payload values must be a Float32Array");
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      // v − v is 0 for every finite v and NaN for NaN and ±Infinity.
      if (v - v !== 0) throw new RangeError(`encodeUpdate: payload value ${i} is not finite (${v})`);
    }
  } else if (dtype === "int8") {
    if (!(values instanceof Int8Array)) throw new TypeError("encodeUpdate: int8 payload values must be an Int8Array");
    scale = payload.scale;
    if (typeof scale !== "number" || !Number.isFinite(scale)) {
      throw new RangeError(`encodeUpdate: int8 scale must be a finite number, got ${String(scale)}`);
    }
    scale = Math.fround(scale);
    if (!(scale > 0)) throw new RangeError(`encodeUpdate: int8 scale must be > 0 as a float32, got ${payload.scale}`);
    if (127 * scale > F32_MAX)
      throw new RangeError(`encodeUpdate: int8 scale ${scale} makes 127·scale overflow float32`);
    for (let i = 0; i < values.length; i++) {
      if (values[i] === -128)
        throw new RangeError(`encodeUpdate: int8 value ${i} is −128; the symmetric range is −127..127`);
    }
  } else {
    throw new TypeError(`encodeUpdate: payload dtype must be "float32" or "int8", got ${String(dtype)}`);
  }
  const n = values.length;
  if (n > U32_MAX) throw new RangeError(`encodeUpdate: at most ${U32_MAX} values, got ${n}`);
  if (product !== n) {
    throw new RangeError(`encodeUpdate: shape [${shape.join(", ")}] holds ${product} values but the payload has ${n}`);
  }

  const R = roundId.length;
  const D = deviceId.length;
  const K = shape.length;
  const elem = dtype === "float32" ? 4 : 1;
  const headerEnd = 32 + R + D + 4 * K + (dtype === "int8" ? 4 : 0);
  const payloadOffset = headerEnd + ((4 - (headerEnd % 4)) % 4);
  const signatureOffset = payloadOffset + n * elem;
  const out = new Uint8Array(signatureOffset + UPDATE_SIGNATURE_BYTES);
  const view = new DataView(out.buffer);
  out.set(UPDATE_MAGIC, 0);
  out[4] = UPDATE_FORMAT_VERSION;
  out[5] = DTYPE_CODES[dtype];
  view.setUint16(6, 0, true);
  out[8] = clipBit === undefined || clipBit === null ? CLIP_BIT_ABSENT : CLIP_BIT_PRESENT | clipBit;
  let p = 9;
  out[p++] = R;
  for (let i = 0; i < R; i++) out[p++] = roundId.charCodeAt(i);
  out[p++] = D;
  for (let i = 0; i < D; i++) out[p++] = deviceId.charCodeAt(i);
  out.set(nonce, p);
  p += UPDATE_NONCE_BYTES;
  out[p++] = K;
  for (const d of shape) {
    view.setUint32(p, d, true);
    p += 4;
  }
  view.setUint32(p, n, true);
  p += 4;
  if (dtype === "int8") {
    view.setFloat32(p, scale, true);
    p += 4;
  }
  // p === headerEnd; padding bytes are already zero.
  if (dtype === "float32") {
    if (LITTLE_ENDIAN_HOST) new Float32Array(out.buffer, payloadOffset, n).set(values as Float32Array);
    else for (let i = 0; i < n; i++) view.setFloat32(payloadOffset + 4 * i, values[i]!, true);
  } else {
    out.set(new Uint8Array(values.buffer, values.byteOffset, n), payloadOffset);
  }
  return out;
}

function checkId(id: unknown, name: string, maxLength: number): asserts id is string {
  if (typeof id !== "string") throw new TypeError(`encodeUpdate: ${name} must be a string`);
  if (id.length < 1 || id.length > maxLength || !ID_PATTERN.test(id)) {
    throw new RangeError(`encodeUpdate: ${name} must match [A-Za-z0-9_-]{1,${maxLength}}, got ${JSON.stringify(id)}`);
  }
}
