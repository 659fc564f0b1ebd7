import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { UpdateCodecError } from "./errors.ts";
import { verifyUpdateSignature, verifyUpdateSignatureAsync } from "./signature.ts";
import { fieldsArb, OTHER_KEY, TEST_KEY } from "./test-helpers.ts";
import { decodeUpdate, encodeUpdate, type DecodedUpdate } from "./update-codec.ts";

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

async function allVerifiers(update: DecodedUpdate, publicKey: Uint8Array): Promise<boolean[]> {
  return [
    verifyUpdateSignature(update, publicKey),
    await verifyUpdateSignatureAsync(update, publicKey),
    await verifyUpdateSignatureAsync(update, publicKey, { subtle: null }),
  ];
}

describe("signature verification", () => {
  it("sync (tweetnacl), async WebCrypto and async fallback agree on genuine, foreign-key and tampered updates", async () => {
    await fc.assert(
      fc.asyncProperty(fieldsArb(), fc.nat(), async (fields, pick) => {
        const bytes = encodeUpdate(fields, TEST_KEY.secretKey);
        const update = decodeUpdate(bytes, { copy: true });
        expect(await allVerifiers(update, TEST_KEY.publicKey)).toEqual([true, true, true]);
        expect(await allVerifiers(update, OTHER_KEY.publicKey)).toEqual([false, false, false]);
        update.signedBytes[pick % update.signedBytes.length]! ^= 0x20;
        expect(await allVerifiers(update, TEST_KEY.publicKey)).toEqual([false, false, false]);
      }),
      { numRuns: 20 },
    );
  });

  it("refuses the malleated signature S + L that plain tweetnacl accepts, in every verifier and in decodeUpdate", async () => {
    const fields = {
      roundId: "r",
      deviceId: "dev_malleable",
      nonce: new Uint8Array(16),
      shape: [3],
      payload: { dtype: "float32" as const, values: new Float32Array([1, 2, 3]) },
    };
    const bytes = encodeUpdate(fields, TEST_KEY.secretKey);
    const update = decodeUpdate(bytes);
    const forged = { ...update, signature: malleate(update.signature) };
    const nacl = (await import("tweetnacl")).default;
    expect(nacl.sign.detached.verify(forged.signedBytes, forged.signature, TEST_KEY.publicKey)).toBe(true);
    expect(await allVerifiers(forged, TEST_KEY.publicKey)).toEqual([false, false, false]);
    const forgedBytes = bytes.slice();
    forgedBytes.set(forged.signature, bytes.length - 64);
    let err: unknown;
    try {
      decodeUpdate(forgedBytes, { publicKey: TEST_KEY.publicKey });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UpdateCodecError);
    expect((err as UpdateCodecError).reason).toBe("bad_signature");
  });

  it("falls back to tweetnacl when WebCrypto cannot import Ed25519 keys", async () => {
    const update = decodeUpdate(
      encodeUpdate(
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
    const noEd25519 = {
      importKey: () => Promise.reject(new DOMException("Unrecognized name.", "NotSupportedError")),
      verify: () => Promise.reject(new Error("must not be called")),
    } as unknown as SubtleCrypto;
    expect(await verifyUpdateSignatureAsync(update, TEST_KEY.publicKey, { subtle: noEd25519 })).toBe(true);
    expect(await verifyUpdateSignatureAsync(update, OTHER_KEY.publicKey, { subtle: noEd25519 })).toBe(false);
  });

  it("rejects malformed keys with RangeError and malformed signatures with false", async () => {
    const update = decodeUpdate(
      encodeUpdate(
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
    expect(() => verifyUpdateSignature(update, new Uint8Array(33))).toThrow(RangeError);
    await expect(verifyUpdateSignatureAsync(update, new Uint8Array(31))).rejects.toThrow(RangeError);
    const short = { ...update, signature: update.signature.subarray(0, 63) };
    expect(await allVerifiers(short, TEST_KEY.publicKey)).toEqual([false, false, false]);
  });
});
