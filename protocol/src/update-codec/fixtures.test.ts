/**
 * Byte-for-byte fixtures: the format cannot drift without these failing. If a change is intended, bump
 * UPDATE_FORMAT_VERSION and regenerate with `node_modules/.bin/node protocol/src/update-codec/fixtures/generate.ts`.
 * The frozen `v1-*.hex` and `v2-*.hex` bodies (the retired versions) must be refused with a message naming their version.
 */
import { createHash, createPublicKey, verify } from "node:crypto";
import { readFileSync } from "node:fs";
import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import { toBase64Url } from "../common.ts";
import { UpdateCodecError } from "./errors.ts";
import { FIXTURE_SEED, FIXTURES } from "./fixtures/fixtures.ts";
import { parseAnnotatedHex, rawBytes, toHex } from "./test-helpers.ts";
import { verifyUpdateSignature } from "./signature.ts";
import { decodeUpdate, decodeVerifiedUpdate } from "./update-codec.ts";
import { encodeUpdate } from "./encode.ts";

const key = nacl.sign.keyPair.fromSeed(FIXTURE_SEED);

describe("committed byte fixtures", () => {
  it("the fixture key is the one named in the files", () => {
    expect(toHex(key.publicKey)).toBe("03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8");
  });

  for (const [name, fields] of Object.entries(FIXTURES)) {
    const text = readFileSync(new URL(`./fixtures/${name}.hex`, import.meta.url), "utf8");
    const expected = parseAnnotatedHex(text);

    it(`${name}: encodeUpdate reproduces the fixture byte for byte`, async () => {
      expect(toHex(await encodeUpdate(fields, key.secretKey))).toBe(toHex(expected));
    });

    it(`${name}: decodeUpdate reads the fixture back to its fields`, async () => {
      const decoded = await decodeVerifiedUpdate(expected, key.publicKey);
      expect(decoded.roundId).toBe(fields.roundId);
      expect(decoded.deviceId).toBe(fields.deviceId);
      expect(toHex(decoded.nonce)).toBe(toHex(fields.nonce));
      expect(decoded.shape).toEqual(fields.shape);
      expect(decoded.clipBit).toBe(fields.clipBit ?? null);
      expect(decoded.payload.dtype).toBe(fields.payload.dtype);
      expect(toHex(rawBytes(decoded.payload.values))).toBe(toHex(rawBytes(fields.payload.values)));
      if (decoded.payload.dtype === "int8" && fields.payload.dtype === "int8") {
        expect(decoded.payload.scale).toBe(fields.payload.scale);
      }
      expect(await verifyUpdateSignature(decoded, key.publicKey)).toBe(true);
    });

    it(`${name}: the signature verifies under an independent Ed25519 (node:crypto) over the context and the SHA-256 of all preceding bytes`, () => {
      const publicKey = createPublicKey({
        key: { kty: "OKP", crv: "Ed25519", x: toBase64Url(key.publicKey) },
        format: "jwk",
      });
      const body = expected.subarray(0, expected.length - 64);
      const signature = expected.subarray(expected.length - 64);
      const message = (b: Uint8Array) =>
        Buffer.concat([Buffer.from("fedge-update-v3\n"), createHash("sha256").update(b).digest()]);
      expect(verify(null, message(body), publicKey, signature)).toBe(true);
      const tampered = body.slice();
      tampered[body.length - 1]! ^= 1;
      expect(verify(null, message(tampered), publicKey, signature)).toBe(false);
    });
  }

  it("float32 fixture: header fields sit where the byte table says (hand-checked values)", () => {
    const b = parseAnnotatedHex(readFileSync(new URL("./fixtures/float32-2x3.hex", import.meta.url), "utf8"));
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    expect(new TextDecoder().decode(b.subarray(0, 4))).toBe("FEDU");
    expect([b[4], b[5], dv.getUint16(6, true)]).toEqual([3, 1, 0]);
    expect(b[8]).toBe(3); // clip bit reported, b = 1
    expect(b[9]).toBe(5);
    expect(new TextDecoder().decode(b.subarray(10, 15))).toBe("r-001");
    expect(b[15]).toBe(13);
    expect(b[45]).toBe(2); // rank
    expect([dv.getUint32(46, true), dv.getUint32(50, true), dv.getUint32(54, true)]).toEqual([2, 3, 6]);
    expect(Array.from(b.subarray(58, 60))).toEqual([0, 0]); // padding to 60
    expect(dv.getFloat32(60, true)).toBe(0.5);
    expect(dv.getFloat32(80, true)).toBe(-1024);
    expect(b.length).toBe(60 + 24 + 64);
  });

  const retired: [string, number, RegExp][] = [
    ["v1-float32-2x3", 1, /reads version 3 only; version 1 has no clip-bit field and signs the whole body/],
    ["v1-int8-5", 1, /reads version 3 only; version 1 has no clip-bit field/],
    ["v2-float32-2x3", 2, /reads version 3 only; version 2 signs the whole body, not its SHA-256 digest/],
    ["v2-float32-clipped", 2, /reads version 3 only; version 2 signs the whole body/],
    ["v2-int8-5", 2, /reads version 3 only; version 2 signs the whole body/],
  ];
  for (const [name, version, why] of retired) {
    it(`${name}: a retired version ${version} body is refused, and the message names its version`, async () => {
      const old = parseAnnotatedHex(readFileSync(new URL(`./fixtures/${name}.hex`, import.meta.url), "utf8"));
      expect(old[4]).toBe(version);
      // A version 2 body is genuinely signed (over the whole body) by the fixture key.
      if (version === 2) {
        expect(nacl.sign.detached.verify(old.subarray(0, -64), old.subarray(-64), key.publicKey)).toBe(true);
      }
      for (const publicKey of [undefined, key.publicKey]) {
        let err: unknown;
        try {
          if (publicKey) await decodeVerifiedUpdate(old, publicKey);
          else decodeUpdate(old);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(UpdateCodecError);
        expect((err as UpdateCodecError).reason).toBe("unsupported_version");
        expect((err as UpdateCodecError).offset).toBe(4);
        expect((err as UpdateCodecError).message).toMatch(
          new RegExp(`update format version ${version} is not supported`),
        );
        expect((err as UpdateCodecError).message).toMatch(why);
        const fe = (err as UpdateCodecError).toFedgeError();
        expect([fe.status, fe.code]).toEqual([400, "malformed_update"]);
        expect(fe.message).toMatch(new RegExp(`format version ${version}`));
      }
    });
  }
});
