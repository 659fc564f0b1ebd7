import fc from "fast-check";
import * as protocol from "@fedge/protocol";
import type { ModelManifest } from "@fedge/protocol";
import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import { UntrustedModelError } from "./core/errors.ts";
import { canonicalJson, canonicalManifestBytes, verifyPinnedManifest } from "./trust.ts";

const aggregator = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(11));
const stranger = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(12));
const SHA = "ab".repeat(32);

/** A manifest signed the way the aggregator's export signs it (over @fedge/protocol `canonicalManifestBytes`). */
function signed(key: nacl.SignKeyPair, over: Partial<ModelManifest> = {}): ModelManifest {
  const unsigned: ModelManifest = {
    name: "toy",
    version: 3,
    inputs: [{ name: "input", shape: [null, 8], dtype: "float32" }],
    outputs: [{ name: "logits", shape: [null, 3], dtype: "float32" }],
    quantization: { scheme: "int8-per-channel-symmetric", weight_dtype: "int8" },
    sha256: SHA,
    size_bytes: 1234,
    created_at: "2030-01-01T00:00:00.000Z",
    privacy: { epsilon: 1.5, delta: 1e-5 },
    ...over,
  };
  const signature = nacl.sign.detached(protocol.canonicalManifestBytes(unsigned), key.secretKey);
  return {
    ...unsigned,
    aggregator: { public_key: protocol.toBase64Url(key.publicKey), signature: protocol.toBase64Url(signature) },
  };
}

const expected = { model: "toy", version: 3, sha256: SHA };
const reason = (
  m: ModelManifest | undefined,
  e: { model: string; version: number; sha256: string | undefined } = expected,
) => {
  try {
    verifyPinnedManifest(m, aggregator.publicKey, e);
    return "trusted";
  } catch (err) {
    if (!(err instanceof UntrustedModelError)) throw err;
    expect(err.code).toBe("untrusted_model");
    return err.reason;
  }
};

describe("canonical manifest bytes", () => {
  it("equal @fedge/protocol's for any JSON value and for manifests", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(canonicalJson(v)).toBe(protocol.canonicalJson(v));
      }),
    );
    const m = signed(aggregator);
    expect([...canonicalManifestBytes(m)]).toEqual([...protocol.canonicalManifestBytes(m)]);
  });
});

describe("verifyPinnedManifest", () => {
  it("trusts a manifest signed by the pinned key that describes these bytes", () => {
    expect(reason(signed(aggregator))).toBe("trusted");
  });

  it("refuses unsigned, foreign-key, tampered and mismatched manifests", () => {
    const { aggregator: _a, ...unsigned } = signed(aggregator);
    expect(reason(undefined)).toBe("unsigned");
    expect(reason(unsigned as ModelManifest)).toBe("unsigned");
    expect(reason(signed(stranger))).toBe("wrong_key");
    // Every field is covered by the signature: the ε it claims, the hash, the shapes.
    expect(reason({ ...signed(aggregator), privacy: { epsilon: 0.1, delta: 1e-5 } })).toBe("bad_signature");
    expect(reason({ ...signed(aggregator), sha256: "cd".repeat(32) }, { ...expected, sha256: "cd".repeat(32) })).toBe(
      "bad_signature",
    );
    const forged = signed(aggregator);
    forged.aggregator = {
      ...forged.aggregator!,
      signature: forged.aggregator!.signature.replace(/^./, (c) => (c === "A" ? "B" : "A")),
    };
    expect(reason(forged)).toBe("bad_signature");
    expect(reason(signed(aggregator), { ...expected, version: 4 })).toBe("mismatch");
    expect(reason(signed(aggregator), { ...expected, model: "other" })).toBe("mismatch");
    expect(reason(signed(aggregator), { ...expected, sha256: "00".repeat(32) })).toBe("mismatch");
    expect(reason(signed(aggregator), { ...expected, sha256: undefined })).toBe("integrity_unavailable");
  });
});
