/**
 * @module
 * Update codec speed (protocol/src/update-codec) on a 100k-value update (400 KB float32):
 *
 * - the codec's own work (decode) against a memcpy of the same bytes;
 * - signing on the device and verifying at the edge, format version 3 (Ed25519 over `fedge-update-v3\n` ‖ SHA-256 of
 *   the header and payload, the digest from WebCrypto) against version 2 as it ran until now (tweetnacl Ed25519 over the
 *   whole 400 KB body on the device; WebCrypto Ed25519 over the whole body at the edge, and tweetnacl for the SDK-side
 *   verifier), all in this process, same bytes, same run.
 *
 * Node's WebCrypto is OpenSSL; workerd's is BoringSSL: both hash natively, so the ratios carry over, the absolute
 * numbers do not. The device number is what the SDK runs (tweetnacl for Ed25519, WebCrypto for SHA-256) in Node.
 */
import nacl from "tweetnacl";
import {
  decodeUpdate,
  encodeUpdate,
  quantizeUpdateInt8,
  signUpdateBytes,
  updateDigest,
  updateSigningMessage,
  verifyUpdateSignature,
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

/** Median milliseconds per call of an async function (awaited one at a time) over `reps` calls after a warm-up. */
async function timeAsync(fn: () => Promise<unknown>, reps: number): Promise<number> {
  for (let i = 0; i < 5; i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    const start = performance.now();
    await fn();
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
  const bytes = await encodeUpdate(fields, key.secretKey);
  const signed = bytes.subarray(0, bytes.length - 64);
  const decoded = decodeUpdate(bytes);
  // The same body as version 2 signed it: Ed25519 over every byte before the signature.
  const v2Signature = nacl.sign.detached(signed, key.secretKey);
  const int8Fields: UpdateFields = { ...fields, payload: quantizeUpdateInt8(values) };
  const int8Bytes = await encodeUpdate(int8Fields, key.secretKey);
  const notes = `${N} float32 values (${bytes.length} bytes), median of repeated calls, one process`;
  // The edge keeps imported keys in a per-isolate cache (workers/src/training/ed25519.ts): import once here too.
  const subtle = crypto.subtle;
  const cryptoKey = await subtle.importKey(
    "raw",
    key.publicKey as Uint8Array<ArrayBuffer>,
    { name: "Ed25519" },
    false,
    ["verify"],
  );

  const memcpy = time(() => bytes.slice(), 200);
  const decodeView = time(() => decodeUpdate(bytes), 200);
  const decodeCopy = time(() => decodeUpdate(bytes, { copy: true }), 200);

  // Device: sign. v2 = tweetnacl over the whole body; v3 = WebCrypto SHA-256 + tweetnacl over 48 bytes.
  const v2Sign = time(() => nacl.sign.detached(signed, key.secretKey), 15);
  const v3Sign = await timeAsync(() => signUpdateBytes(signed, key.secretKey), 40);
  const v3Encode = await timeAsync(() => encodeUpdate(fields, key.secretKey), 40);

  // Edge: verify a decoded body under a cached key. v2 = WebCrypto Ed25519 over the whole body (what the edge ran);
  // v3 = WebCrypto SHA-256 + WebCrypto Ed25519 over 48 bytes.
  const v2VerifyEdge = await timeAsync(
    () =>
      subtle.verify("Ed25519", cryptoKey, v2Signature as Uint8Array<ArrayBuffer>, signed as Uint8Array<ArrayBuffer>),
    40,
  );
  const v3VerifyEdge = await timeAsync(async () => {
    const message = updateSigningMessage(await updateDigest(decoded.signedBytes));
    if (!(await subtle.verify("Ed25519", cryptoKey, decoded.signature as Uint8Array<ArrayBuffer>, message)))
      throw new Error("v3 signature did not verify");
  }, 40);
  // Anywhere else (SDK tests, aggregator): v2 tweetnacl over the whole body vs the codec's verifier (key import included).
  const v2VerifyNacl = time(() => nacl.sign.detached.verify(signed, v2Signature, key.publicKey), 15);
  const v3VerifyCodec = await timeAsync(() => verifyUpdateSignature(decoded, key.publicKey), 40);
  const int8Sign = time(() => nacl.sign.detached(int8Bytes.subarray(0, int8Bytes.length - 64), key.secretKey), 15);
  const int8Encode = await timeAsync(
    () => encodeUpdate({ ...fields, payload: quantizeUpdateInt8(values) }, key.secretKey),
    15,
  );

  return [
    measure({
      name: "update-decode-float32-100k",
      description: "decodeUpdate (full validation, payload viewed in place; no signature)",
      value: decodeView,
      unit: "ms",
      baseline_name: "Uint8Array.slice memcpy of the same bytes",
      baseline: memcpy,
      better: "lower",
      notes,
    }),
    measure({
      name: "update-decode-copy-float32-100k",
      description: "decodeUpdate, copy: true",
      value: decodeCopy,
      unit: "ms",
      baseline_name: "Uint8Array.slice memcpy of the same bytes",
      baseline: memcpy,
      better: "lower",
      notes,
    }),
    measure({
      name: "update-device-sign-v3-vs-v2-float32-100k",
      description:
        "device signing, codec v3: WebCrypto SHA-256 of the 400 KB header+payload, then tweetnacl Ed25519 over the 48-byte message (signUpdateBytes)",
      value: v3Sign,
      unit: "ms",
      baseline_name: "codec v2: tweetnacl nacl.sign.detached over the whole 400 KB body (what devices ran)",
      baseline: v2Sign,
      better: "lower",
      notes: `${notes}; whole encodeUpdate (validate, lay out, sign) v3: ${v3Encode.toFixed(2)} ms`,
    }),
    measure({
      name: "update-edge-verify-v3-vs-v2-float32-100k",
      description:
        "edge verification, codec v3: WebCrypto SHA-256 of the body + WebCrypto Ed25519 verify of the 48-byte message, key imported once (as the edge caches it)",
      value: v3VerifyEdge,
      unit: "ms",
      baseline_name:
        "codec v2: WebCrypto Ed25519 verify over the whole 400 KB body, same cached key (what the edge ran)",
      baseline: v2VerifyEdge,
      better: "lower",
      notes: `${notes}; Node WebCrypto (OpenSSL), workerd uses BoringSSL`,
    }),
    measure({
      name: "update-verify-v3-vs-v2-tweetnacl-float32-100k",
      description: "verifyUpdateSignature (codec v3: WebCrypto SHA-256 + Ed25519, key import included)",
      value: v3VerifyCodec,
      unit: "ms",
      baseline_name: "codec v2 in tweetnacl: nacl.sign.detached.verify over the whole 400 KB body",
      baseline: v2VerifyNacl,
      better: "lower",
      notes,
    }),
    measure({
      name: "update-quantize-encode-int8-100k",
      description: "quantizeUpdateInt8 + encodeUpdate (int8, 4x smaller body, v3 signature)",
      value: int8Encode,
      unit: "ms",
      baseline_name: "codec v2 signing alone: nacl.sign.detached over the int8 body",
      baseline: int8Sign,
      better: "lower",
      notes: `${N} values (${int8Bytes.length} bytes)`,
    }),
  ];
}
