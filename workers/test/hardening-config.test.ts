/**
 * Issue 17, item 6 (the edge's half): a base64url public key has 2 spare bits in its last character, so four strings
 * decode to one key. Keys are stored and compared in their one canonical spelling: a device key registers once, and an
 * aggregator key is trusted whichever spelling an admin registered.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import nacl from "tweetnacl";
import { canonicalKey32, fromBase64Url, signAggregatorRequest, toBase64Url } from "@fedge/protocol";
import { ADMIN, adminGet, call, createApiKey, uniqueModel } from "./rounds-helpers.ts";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** The other spellings of a canonical 32-byte key (the last character's 2 spare bits set). */
function spellings(canonical: string): string[] {
  const last = ALPHABET.indexOf(canonical.at(-1)!);
  return [1, 2, 3].map((spare) => canonical.slice(0, -1) + ALPHABET[last | spare]);
}

describe("canonical public keys", () => {
  it("the four spellings decode to the same key and canonicalise to one", () => {
    const key = toBase64Url(nacl.sign.keyPair().publicKey);
    for (const s of spellings(key)) {
      expect(s).not.toBe(key);
      expect(fromBase64Url(s)).toEqual(fromBase64Url(key));
      expect(canonicalKey32(s)).toBe(key);
    }
    expect(canonicalKey32("A".repeat(42))).toBeNull();
  });

  it("a device key registers once, whichever spelling a retry sends", async () => {
    const { id, key } = await createApiKey();
    const publicKey = toBase64Url(nacl.sign.keyPair().publicKey);
    const register = (pk: string) =>
      call("/v1/devices", {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ public_key: pk }),
      });
    const first = await register(spellings(publicKey)[2]!);
    expect(first.status).toBe(201);
    const { device_id } = await first.json<{ device_id: string }>();
    for (const pk of [publicKey, ...spellings(publicKey)]) {
      const again = await register(pk);
      expect(again.status, pk).toBe(200);
      expect(await again.json()).toMatchObject({ device_id });
    }
    expect(await (await adminGet(`/v1/admin/devices/${device_id}`)).json()).toMatchObject({ public_key: publicKey });
    expect(await (await adminGet(`/v1/admin/device-quotas/${id}`)).json()).toMatchObject({ active_devices: 1 });
  });

  it("an aggregator key registered in another spelling is trusted (and stored canonically)", async () => {
    const kp = nacl.sign.keyPair();
    const canonical = toBase64Url(kp.publicKey);
    const put = await call(`/v1/admin/aggregator-keys/${spellings(canonical)[0]}`, { method: "PUT", headers: ADMIN });
    expect(put.status).toBe(201);
    expect(await put.json()).toMatchObject({ public_key: canonical });
    expect(await env.REGISTRY.get(`aggregator-key:${canonical}`)).not.toBeNull();
    const path = `/v1/admin/rounds?model=${uniqueModel("canon")}`;
    const headers = await signAggregatorRequest({ method: "GET", host: "edge", path, secretKey: kp.secretKey });
    // A client that sends its key in another spelling is the same signer.
    headers["x-fedge-aggregator-key"] = spellings(canonical)[1]!;
    expect((await call(path, { headers })).status).toBe(200);
  });
});
