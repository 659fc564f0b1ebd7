import { describe, expect, it } from "vitest";
import nacl from "tweetnacl";
import { fromBase64Url } from "./common.ts";
import {
  AGGREGATOR_KEY_HEADER,
  AGGREGATOR_SIGNATURE_HEADER,
  AGGREGATOR_TIMESTAMP_HEADER,
  aggregatorSigningBytes,
  sha256Hex,
  signAggregatorRequest,
} from "./admin-auth.ts";

const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

describe("aggregator request signing", () => {
  it("signs a fixed, domain-separated byte string", () => {
    const bytes = aggregatorSigningBytes("post", "/v1/admin/rounds?x=1", "2026-11-23T12:00:00.000Z", EMPTY_SHA256);
    expect(new TextDecoder().decode(bytes)).toBe(
      `fedge-admin-v1\nPOST\n/v1/admin/rounds?x=1\n2026-11-23T12:00:00.000Z\n${EMPTY_SHA256}`,
    );
  });

  it("hashes bodies with SHA-256", async () => {
    expect(await sha256Hex(new Uint8Array(0))).toBe(EMPTY_SHA256);
    expect(await sha256Hex(new TextEncoder().encode("abc"))).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
  });

  it("produces headers that verify with the signer's public key over the body hash", async () => {
    const kp = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(3));
    const now = new Date("2026-11-23T12:00:00.000Z");
    const body = '{"model":"m"}';
    const h = await signAggregatorRequest({
      method: "POST",
      path: "/v1/admin/rounds",
      body,
      secretKey: kp.secretKey,
      now,
    });
    expect(fromBase64Url(h[AGGREGATOR_KEY_HEADER]!)).toEqual(kp.publicKey);
    expect(h[AGGREGATOR_TIMESTAMP_HEADER]).toBe(now.toISOString());
    const signed = aggregatorSigningBytes(
      "POST",
      "/v1/admin/rounds",
      now.toISOString(),
      await sha256Hex(new TextEncoder().encode(body)),
    );
    const sig = fromBase64Url(h[AGGREGATOR_SIGNATURE_HEADER]!);
    expect(nacl.sign.detached.verify(signed, sig, kp.publicKey)).toBe(true);
    const other = aggregatorSigningBytes("POST", "/v1/admin/rounds", now.toISOString(), EMPTY_SHA256);
    expect(nacl.sign.detached.verify(other, sig, kp.publicKey)).toBe(false);
  });

  it("refuses a secret key of the wrong length", async () => {
    await expect(signAggregatorRequest({ method: "GET", path: "/", secretKey: new Uint8Array(32) })).rejects.toThrow(
      /secretKey/,
    );
  });
});
