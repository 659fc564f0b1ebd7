import { createPublicKey, verify } from "node:crypto";
import fc from "fast-check";
import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import { toBase64Url } from "../common.ts";
import { UpdateCodecError } from "./errors.ts";
import {
  UPDATE_SIGNING_CONTEXT,
  signUpdateBytes,
  updateDigest,
  updateDigestHex,
  updateSigningMessage,
  verifyUpdateSignature,
} from "./signature.ts";
import { fieldsArb, OTHER_KEY, TEST_KEY } from "./test-helpers.ts";
import { decodeUpdate, decodeVerifiedUpdate, type DecodedUpdate } from "./update-codec.ts";
import { encodeUpdate } from "./encode.ts";

/** The same signature with S replaced by S + L (the Ed25519 group order): still accepted by plain tweetnacl. */
function malleate(signature: Uint8Array): Uint8Array {
  const L = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0x10,
  ];
  const out = signature.slice();
  let carry = 0;
  for (let i = 0; i < 32; i++) {
    const v = out[32 + i]! + L[i]! + carry;
    out[32 + i] = v & 0xff;
    carry = v >> 8;
  }
  expect(carry).toBe(0); // S < L < 2^253, so S + L fits in 32 bytes
  return out;
}

/** WebCrypto Ed25519 and the tweetnacl fallback (the digest always comes from WebCrypto). */
async function allVerifiers(update: DecodedUpdate, publicKey: Uint8Array): Promise<boolean[]> {
  return [
    await verifyUpdateSignature(update, publicKey),
    await verifyUpdateSignature(update, publicKey, { subtle: null }),
  ];
}

const tiny = (deviceId: string) => ({
  roundId: "r",
  deviceId,
  nonce: new Uint8Array(16),
  shape: [3],
  payload: { dtype: "float32" as const, values: new Float32Array([1, 2, 3]) },
});

describe("what a version 3 signature covers", () => {
  it("is Ed25519 over `fedge-update-v3\\n` ‖ SHA-256(every byte before the signature), checked with node:crypto", async () => {
    const bytes = await encodeUpdate(tiny("dev_digest"), TEST_KEY.secretKey);
    const body = bytes.subarray(0, bytes.length - 64);
    const signature = bytes.subarray(bytes.length - 64);
    const { createHash } = await import("node:crypto");
    const digest = createHash("sha256").update(body).digest();
    expect(Buffer.from(await updateDigest(body)).equals(digest)).toBe(true);
    expect(new TextDecoder().decode(UPDATE_SIGNING_CONTEXT)).toBe("fedge-update-v3\n");
    const message = Buffer.concat([Buffer.from("fedge-update-v3\n"), digest]);
    expect(Buffer.from(updateSigningMessage(await updateDigest(body))).equals(message)).toBe(true);
    expect(message.length).toBe(48);
    const publicKey = createPublicKey({
      key: { kty: "OKP", crv: "Ed25519", x: toBase64Url(TEST_KEY.publicKey) },
      format: "jwk",
    });
    expect(verify(null, message, publicKey, signature)).toBe(true);
    // Not the whole body any more (that was version 2).
    expect(verify(null, body, publicKey, signature)).toBe(false);
    expect(Buffer.from(await signUpdateBytes(body, TEST_KEY.secretKey)).equals(Buffer.from(signature))).toBe(true);
    // An update's name is that digest in hex, whatever signature follows the signed bytes.
    expect(await updateDigestHex(bytes)).toBe(digest.toString("hex"));
    const resigned = bytes.slice();
    resigned.set(new Uint8Array(64).fill(1), bytes.length - 64);
    expect(await updateDigestHex(resigned)).toBe(digest.toString("hex"));
    await expect(updateDigestHex(new Uint8Array(63))).rejects.toThrow(RangeError);
  });

  it("signs with a signer callback (a WebCrypto key) exactly as with the tweetnacl key", async () => {
    const pkcs8 = Buffer.concat([
      Buffer.from("302e020100300506032b657004220420", "hex"),
      Buffer.from(TEST_KEY.secretKey.subarray(0, 32)),
    ]);
    const key = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, false, ["sign"]);
    const signer = async (m: Uint8Array<ArrayBuffer>) => new Uint8Array(await crypto.subtle.sign("Ed25519", key, m));
    const fields = tiny("dev_signer");
    expect(await encodeUpdate(fields, signer)).toEqual(await encodeUpdate(fields, TEST_KEY.secretKey));
    await expect(encodeUpdate(fields, () => new Uint8Array(63))).rejects.toThrow(/64-byte Ed25519 signature/);
  });

  it("says clearly when the runtime has no crypto.subtle (React Native without a polyfill)", async () => {
    const noSubtle = {} as SubtleCrypto;
    await expect(updateDigest(new Uint8Array(4), { subtle: noSubtle })).rejects.toThrow(
      /no crypto\.subtle\.digest; update format version 3 signs a SHA-256 digest/,
    );
    await expect(encodeUpdate(tiny("dev_nosubtle"), TEST_KEY.secretKey, { subtle: noSubtle })).rejects.toThrow(
      TypeError,
    );
    expect(() => updateSigningMessage(new Uint8Array(31))).toThrow(RangeError);
  });
});

describe("signature verification", () => {
  it("WebCrypto and the tweetnacl fallback agree on genuine, foreign-key and tampered updates", async () => {
    await fc.assert(
      fc.asyncProperty(fieldsArb(), fc.nat(), async (fields, pick) => {
        const bytes = await encodeUpdate(fields, TEST_KEY.secretKey);
        const update = decodeUpdate(bytes, { copy: true });
        expect(await allVerifiers(update, TEST_KEY.publicKey)).toEqual([true, true]);
        expect(await allVerifiers(update, OTHER_KEY.publicKey)).toEqual([false, false]);
        update.signedBytes[pick % update.signedBytes.length]! ^= 0x20;
        expect(await allVerifiers(update, TEST_KEY.publicKey)).toEqual([false, false]);
      }),
      { numRuns: 20 },
    );
  });

  it("refuses the malleated signature S + L that plain tweetnacl accepts, in every verifier and in decodeVerifiedUpdate", async () => {
    const bytes = await encodeUpdate(tiny("dev_malleable"), TEST_KEY.secretKey);
    const update = decodeUpdate(bytes);
    const forged = { ...update, signature: malleate(update.signature) };
    const message = updateSigningMessage(await updateDigest(update.signedBytes));
    expect(nacl.sign.detached.verify(message, forged.signature, TEST_KEY.publicKey)).toBe(true);
    expect(await allVerifiers(forged, TEST_KEY.publicKey)).toEqual([false, false]);
    const forgedBytes = bytes.slice();
    forgedBytes.set(forged.signature, bytes.length - 64);
    let err: unknown;
    try {
      await decodeVerifiedUpdate(forgedBytes, TEST_KEY.publicKey);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UpdateCodecError);
    expect((err as UpdateCodecError).reason).toBe("bad_signature");
  });

  it("falls back to tweetnacl when WebCrypto cannot import Ed25519 keys", async () => {
    const update = decodeUpdate(
      await encodeUpdate(
        {
          roundId: "r",
          deviceId: "dev_fallback",
          nonce: new Uint8Array(16),
          shape: [1],
          payload: { dtype: "int8", values: new Int8Array([5]), scale: 0.5 },
        },
        TEST_KEY.secretKey,
      ),
    );
    const real = globalThis.crypto.subtle;
    const noEd25519 = {
      digest: (algorithm: string, data: BufferSource) => real.digest(algorithm, data),
      importKey: () => Promise.reject(new DOMException("Unrecognized name.", "NotSupportedError")),
      verify: () => Promise.reject(new Error("must not be called")),
    } as unknown as SubtleCrypto;
    expect(await verifyUpdateSignature(update, TEST_KEY.publicKey, { subtle: noEd25519 })).toBe(true);
    expect(await verifyUpdateSignature(update, OTHER_KEY.publicKey, { subtle: noEd25519 })).toBe(false);
  });

  it("rejects malformed keys with RangeError and malformed signatures with false", async () => {
    const update = decodeUpdate(
      await encodeUpdate(
        {
          roundId: "r",
          deviceId: "d",
          nonce: new Uint8Array(16),
          shape: [1],
          payload: { dtype: "float32", values: new Float32Array(1) },
        },
        TEST_KEY.secretKey,
      ),
    );
    await expect(verifyUpdateSignature(update, new Uint8Array(33))).rejects.toThrow(RangeError);
    await expect(verifyUpdateSignature(update, new Uint8Array(31))).rejects.toThrow(RangeError);
    const short = { ...update, signature: update.signature.subarray(0, 63) };
    expect(await allVerifiers(short, TEST_KEY.publicKey)).toEqual([false, false]);
  });
});
