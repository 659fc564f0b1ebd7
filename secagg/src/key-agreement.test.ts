import nacl from "tweetnacl";
import { afterEach, describe, expect, it } from "vitest";
import {
  generateX25519KeyPair,
  hasNativeX25519,
  pairwiseSeed,
  useNativeX25519ForTesting,
  x25519,
  x25519Many,
  x25519PublicKey,
} from "./key-agreement.ts";

const hex = (s: string) => Uint8Array.from(s.match(/../g)!, (b) => parseInt(b, 16));
const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/** RFC 7748 §6.1. */
const alice = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
const alicePublic = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
const bob = hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
const bobPublic = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
const shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";

/** Points of order 1, 2, 4 and 8 on Curve25519 (and a non-canonical one): X25519 with them is all zeros. */
const LOW_ORDER = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
  "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
].map(hex);

afterEach(() => useNativeX25519ForTesting(undefined));

describe("X25519 key agreement", () => {
  it("runs natively in WebCrypto here (Node 24)", async () => {
    expect(await hasNativeX25519()).toBe(true);
  });

  for (const path of ["WebCrypto", "tweetnacl"] as const) {
    it(`${path}: RFC 7748 §6.1 public keys and shared secret`, async () => {
      if (path === "tweetnacl") useNativeX25519ForTesting(false);
      expect(toHex(await x25519PublicKey(alice))).toBe(alicePublic);
      expect(toHex(await x25519PublicKey(bob))).toBe(bobPublic);
      expect(toHex(await x25519(alice, hex(bobPublic)))).toBe(shared);
      expect(toHex(await x25519(bob, hex(alicePublic)))).toBe(shared);
    });

    it(`${path}: refuses every low-order public key`, async () => {
      if (path === "tweetnacl") useNativeX25519ForTesting(false);
      const mine = await generateX25519KeyPair();
      for (const point of LOW_ORDER) {
        await expect(x25519(mine.secretKey, point)).rejects.toMatchObject({ reason: "bad-message" });
        await expect(pairwiseSeed("r_1", mine.secretKey, point)).rejects.toMatchObject({ reason: "bad-message" });
      }
      await expect(x25519Many(mine.secretKey, [hex(bobPublic), LOW_ORDER[2]!])).rejects.toMatchObject({
        reason: "bad-message",
      });
    });
  }

  it("a WebCrypto device and a tweetnacl device agree on the same keys and seeds (raw 32-byte keys)", async () => {
    for (let trial = 0; trial < 20; trial++) {
      const native = await generateX25519KeyPair();
      useNativeX25519ForTesting(false);
      const js = await generateX25519KeyPair();
      const jsSide = await pairwiseSeed("r_1", js.secretKey, native.publicKey);
      const jsPublicOfNative = await x25519PublicKey(native.secretKey);
      useNativeX25519ForTesting(undefined);
      expect(Array.from(js.publicKey)).toEqual(Array.from(nacl.scalarMult.base(js.secretKey)));
      expect(Array.from(jsPublicOfNative)).toEqual(Array.from(native.publicKey));
      const nativeSide = await pairwiseSeed("r_1", native.secretKey, js.publicKey);
      expect(Array.from(nativeSide)).toEqual(Array.from(jsSide));
      // and both equal tweetnacl's own box key agreement
      expect(Array.from(await x25519(native.secretKey, js.publicKey))).toEqual(
        Array.from(nacl.scalarMult(js.secretKey, native.publicKey)),
      );
    }
  });

  it("refuses keys that are not 32 bytes", async () => {
    await expect(x25519(new Uint8Array(31), hex(bobPublic))).rejects.toMatchObject({ reason: "bad-message" });
    await expect(x25519(alice, new Uint8Array(33))).rejects.toMatchObject({ reason: "bad-message" });
  });
});
