import { describe, expect, it } from "vitest";
import nacl from "tweetnacl";
import { fromBase64Url } from "./common.ts";
import {
  AGGREGATOR_KEY_HEADER,
  AGGREGATOR_NONCE_HEADER,
  AGGREGATOR_SIGNATURE_HEADER,
  AGGREGATOR_TIMESTAMP_HEADER,
  aggregatorSigningBytes,
  sha256Hex,
  signAggregatorRequest,
} from "./admin-auth.ts";

const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const NONCE = "AAAAAAAAAAAAAAAAAAAAAA";

describe("aggregator request signing", () => {
  it("signs a fixed, domain-separated byte string over method, host, path, time, nonce and body digest", () => {
    const bytes = aggregatorSigningBytes(
      "post",
      "Edge.Example:8787",
      "/v1/admin/rounds?x=1",
      "2026-11-23T12:00:00.000Z",
      NONCE,
      EMPTY_SHA256,
    );
    expect(new TextDecoder().decode(bytes)).toBe(
      `fedge-admin-v2\nPOST\nedge.example:8787\n/v1/admin/rounds?x=1\n2026-11-23T12:00:00.000Z\n${NONCE}\n${EMPTY_SHA256}`,
    );
    expect(() => aggregatorSigningBytes("POST", "a\nb", "/", "t", NONCE, EMPTY_SHA256)).toThrow(RangeError);
  });

  it("hashes bodies with SHA-256", async () => {
    expect(await sha256Hex(new Uint8Array(0))).toBe(EMPTY_SHA256);
    expect(await sha256Hex(new TextEncoder().encode("abc"))).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
  });

  it("produces headers that verify with the signer's public key, a fresh nonce each time", async () => {
    const kp = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(3));
    const now = new Date("2026-11-23T12:00:00.000Z");
    const body = '{"model":"m"}';
    const input = {
      method: "POST",
      host: "127.0.0.1:8787",
      path: "/v1/admin/rounds",
      body,
      secretKey: kp.secretKey,
      now,
    };
    const h = await signAggregatorRequest(input);
    expect(fromBase64Url(h[AGGREGATOR_KEY_HEADER]!)).toEqual(kp.publicKey);
    expect(h[AGGREGATOR_TIMESTAMP_HEADER]).toBe(now.toISOString());
    expect(h[AGGREGATOR_NONCE_HEADER]).toMatch(/^[A-Za-z0-9_-]{22}$/);
    const digest = await sha256Hex(new TextEncoder().encode(body));
    const signed = (host: string) =>
      aggregatorSigningBytes("POST", host, "/v1/admin/rounds", now.toISOString(), h[AGGREGATOR_NONCE_HEADER]!, digest);
    const sig = fromBase64Url(h[AGGREGATOR_SIGNATURE_HEADER]!);
    expect(nacl.sign.detached.verify(signed("127.0.0.1:8787"), sig, kp.publicKey)).toBe(true);
    // Another host, or another body, does not verify.
    expect(nacl.sign.detached.verify(signed("127.0.0.1:8788"), sig, kp.publicKey)).toBe(false);
    const other = aggregatorSigningBytes(
      "POST",
      "127.0.0.1:8787",
      "/v1/admin/rounds",
      now.toISOString(),
      h[AGGREGATOR_NONCE_HEADER]!,
      EMPTY_SHA256,
    );
    expect(nacl.sign.detached.verify(other, sig, kp.publicKey)).toBe(false);
    // The same request signed twice carries two nonces (so the edge can refuse a replay without refusing a repeat).
    expect((await signAggregatorRequest(input))[AGGREGATOR_NONCE_HEADER]).not.toBe(h[AGGREGATOR_NONCE_HEADER]);
  });

  it("refuses a secret key of the wrong length, a missing host or a bad nonce", async () => {
    const kp = nacl.sign.keyPair();
    await expect(
      signAggregatorRequest({ method: "GET", host: "h", path: "/", secretKey: new Uint8Array(32) }),
    ).rejects.toThrow(/secretKey/);
    await expect(
      signAggregatorRequest({ method: "GET", host: "", path: "/", secretKey: kp.secretKey }),
    ).rejects.toThrow(/host/);
    await expect(
      signAggregatorRequest({ method: "GET", host: "h", path: "/", secretKey: kp.secretKey, nonce: new Uint8Array(8) }),
    ).rejects.toThrow(/nonce/);
  });
});
