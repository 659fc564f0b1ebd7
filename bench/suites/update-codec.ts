/**
 * @module
 * Update codec speed (schemas/src/update-codec) on a 100k-value update: the codec's own work against a memcpy of the same
 * bytes, and encode/decode with Ed25519 against tweetnacl's sign/verify alone (the floor the codec cannot go under).
 */
import nacl from "tweetnacl";
import {
  decodeUpdate,
  encodeUpdate,
  quantizeUpdateInt8,
  verifyUpdateSignatureAsync,
  type UpdateFields,
} from "@fedge/protocol";
import { measure, type BenchMeasure } from "../types.ts";

const N = 100_000;

/** Median milliseconds per call over `reps` calls after a warm-up. */
function time(fn: () => unknown, reps: number): number {
  for (let i = 0; i < Math.min(5, reps); i++) fn();
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    const start = performance.now();
    fn();
    samples.push(performance.now() - start);
  }
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1]!;
}

export default async function run(): Promise<BenchMeasure[]> {
  const key = nacl.sign.keyPair.fromSeed(crypto.getRandomValues(new Uint8Array(32)));
  const raw = new Uint32Array(N);
  for (let i = 0; i < N; i += 16384) crypto.getRandomValues(raw.subarray(i, i + 16384)); // 64 KiB per call at most
  const values = new Float32Array(N);
  for (let i = 0; i < N; i++) values[i] = raw[i]! / 2 ** 32 - 0.5;
  const fields: UpdateFields = {
    roundId: "round_bench",
    deviceId: "dev_bench0001",
    nonce: crypto.getRandomValues(new Uint8Array(16)),
    shape: [N],
    payload: { dtype: "float32", values },
  };
  const bytes = encodeUpdate(fields, key.secretKey);
  const signed = bytes.subarray(0, bytes.length - 64);
  const signature = bytes.subarray(bytes.length - 64);
  const int8Fields: UpdateFields = { ...fields, payload: quantizeUpdateInt8(values) };
  const int8Bytes = encodeUpdate(int8Fields, key.secretKey);
  const notes = `${N} float32 values (${bytes.length} bytes), median of repeated calls, one process`;

  const memcpy = time(() => bytes.slice(), 200);
  const decodeView = time(() => decodeUpdate(bytes), 200);
  const decodeCopy = time(() => decodeUpdate(bytes, { copy: true }), 200);
  const sign = time(() => nacl.sign.detached(signed, key.secretKey), 15);
  const encode = time(() => encodeUpdate(fields, key.secretKey), 15);
  const verify = time(() => nacl.sign.detached.verify(signed, signature, key.publicKey), 15);
  const decodeVerify = time(() => decodeUpdate(bytes, { publicKey: key.publicKey }), 15);
  const asyncSamples: number[] = [];
  for (let i = 0; i < 40; i++) {
    const start = performance.now();
    await verifyUpdateSignatureAsync(decodeUpdate(bytes), key.publicKey);
    if (i >= 5) asyncSamples.push(performance.now() - start);
  }
  asyncSamples.sort((a, b) => a - b);
  const decodeVerifyAsync = asyncSamples[asyncSamples.length >> 1]!;
  const int8Sign = time(() => nacl.sign.detached(int8Bytes.subarray(0, int8Bytes.length - 64), key.secretKey), 15);
  const int8Encode = time(() => encodeUpdate({ ...fields, payload: quantizeUpdateInt8(values) }, key.secretKey), 15);

  return [
    measure({
      name: "update-decode-float32-100k",
      description: "decodeUpdate without key (full validation, payload viewed in place)",
      value: decodeView,
      unit: "ms",
      baseline_name: "Uint8Array.slice memcpy of the same bytes",
      baseline: memcpy,
      better: "lower",
      notes,
    }),
    measure({
      name: "update-decode-copy-float32-100k",
      description: "decodeUpdate without key, copy: true",
      value: decodeCopy,
      unit: "ms",
      baseline_name: "Uint8Array.slice memcpy of the same bytes",
      baseline: memcpy,
      better: "lower",
      notes,
    }),
    measure({
      name: "update-encode-sign-float32-100k",
      description: "encodeUpdate (validate, lay out, Ed25519 sign)",
      value: encode,
      unit: "ms",
      baseline_name: "nacl.sign.detached of the same signed bytes alone",
      baseline: sign,
      better: "lower",
      notes,
    }),
    measure({
      name: "update-decode-verify-float32-100k",
      description: "decodeUpdate with publicKey (validation + Ed25519 verify)",
      value: decodeVerify,
      unit: "ms",
      baseline_name: "nacl.sign.detached.verify of the same bytes alone",
      baseline: verify,
      better: "lower",
      notes,
    }),
    measure({
      name: "update-decode-verify-async-float32-100k",
      description: "decodeUpdate + verifyUpdateSignatureAsync (WebCrypto Ed25519), what the edge should use",
      value: decodeVerifyAsync,
      unit: "ms",
      baseline_name: "decodeUpdate with publicKey (tweetnacl verify)",
      baseline: decodeVerify,
      better: "lower",
      notes,
    }),
    measure({
      name: "update-quantize-encode-int8-100k",
      description: "quantizeUpdateInt8 + encodeUpdate (int8, 4x smaller body)",
      value: int8Encode,
      unit: "ms",
      baseline_name: "nacl.sign.detached of the int8 signed bytes alone",
      baseline: int8Sign,
      better: "lower",
      notes: `${N} values (${int8Bytes.length} bytes)`,
    }),
  ];
}
