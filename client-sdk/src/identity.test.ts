import { describe, expect, it } from "vitest";
import nacl from "tweetnacl";
import { decodeUpdate, encodeUpdate, verifyUpdateSignature } from "@fedge/protocol";
import { memoryStorage, type CryptoKeyStore, type FedgeStorage } from "./storage/storage.ts";
import {
  IDENTITY_KEY,
  createIdentity,
  loadIdentity,
  placeholderSecretKey,
  resignUpdate,
  saveIdentity,
  signWith,
} from "./identity.ts";

const random = (b: Uint8Array) => void crypto.getRandomValues(b as Uint8Array<ArrayBuffer>);

/** Memory storage that keeps key pairs as objects, the way IndexedDB does (Node has WebCrypto Ed25519). */
function keyStoringMemory(): FedgeStorage & CryptoKeyStore {
  const pairs = new Map<string, CryptoKeyPair>();
  return {
    ...memoryStorage(),
    getKeyPair: async (k) => pairs.get(k),
    setKeyPair: async (k, p) => void pairs.set(k, p),
  };
}

describe("device identity", () => {
  it("keeps a non-extractable WebCrypto key where the storage keeps key pairs, and never writes it as bytes", async () => {
    const storage = keyStoringMemory();
    const id = await createIdentity(storage, random, "https://edge.example");
    expect(id.secretKey).toBeUndefined();
    expect(id.privateKey).toMatchObject({ extractable: false, algorithm: { name: "Ed25519" } });
    const stored = new TextDecoder().decode((await storage.get(IDENTITY_KEY))!);
    expect(JSON.parse(stored)).toMatchObject({ v: 2, key: "webcrypto" });
    expect(stored).not.toMatch(/secret_key/);
    await expect(crypto.subtle.exportKey("pkcs8", id.privateKey!)).rejects.toThrow();

    // Its signatures are plain Ed25519: check-ins and updates verify with the public key.
    const message = new TextEncoder().encode("fedge-checkin");
    expect(nacl.sign.detached.verify(message, await signWith(id, message), id.publicKey)).toBe(true);
    const fields = {
      roundId: "m_1",
      deviceId: "dev_aaaaaaaaaaaaaaaa",
      nonce: new Uint8Array(16),
      shape: [4],
      payload: { dtype: "float32" as const, values: new Float32Array([0.1, 0.2, 0.3, 0.4]) },
    };
    const bytes = await resignUpdate(id, await encodeUpdate(fields, placeholderSecretKey()));
    expect(await verifyUpdateSignature(decodeUpdate(bytes), id.publicKey)).toBe(true);

    // A reload finds the same key.
    await saveIdentity(storage, { ...id, deviceId: "dev_aaaaaaaaaaaaaaaa" });
    const again = await loadIdentity(storage);
    expect(again).toMatchObject({ deviceId: "dev_aaaaaaaaaaaaaaaa", publicKey: id.publicKey });
    expect(again!.privateKey).toBe(id.privateKey);
  });

  it("falls back to a tweetnacl key stored as bytes where the storage cannot keep key pairs", async () => {
    const storage = memoryStorage();
    const id = await createIdentity(storage, random, "https://edge.example");
    expect(id.privateKey).toBeUndefined();
    expect(id.secretKey).toHaveLength(64);
    const loaded = await loadIdentity(storage);
    expect(loaded!.secretKey).toEqual(id.secretKey);
    // Signed natively where WebCrypto has Ed25519, byte for byte what tweetnacl signs (Ed25519 is deterministic).
    for (const text of ["fedge-checkin", "another message"]) {
      const message = new TextEncoder().encode(text);
      const signature = await signWith(loaded!, message);
      expect(signature).toEqual(nacl.sign.detached(message, id.secretKey!));
      expect(nacl.sign.detached.verify(message, signature, id.publicKey)).toBe(true);
    }
  });
});
