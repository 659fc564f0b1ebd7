import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import { envelopeKey, openEnvelope, sealEnvelope } from "./envelope.ts";
import { shareHeader } from "./transcript.ts";

describe("share envelopes (nacl.box bound to round, stage, sender, receiver)", () => {
  const sender = nacl.box.keyPair();
  const receiver = nacl.box.keyPair();
  const header = shareHeader("m_1", "dev_aaaaaaaa", "dev_bbbbbbbb");
  const payload = crypto.getRandomValues(new Uint8Array(132));
  const sealingKey = envelopeKey(receiver.publicKey, sender.secretKey);
  const openingKey = envelopeKey(sender.publicKey, receiver.secretKey);

  it("opens what was sealed for it", () => {
    const sealed = sealEnvelope(header, payload, sealingKey);
    expect(Array.from(openEnvelope(header, sealed, openingKey))).toEqual(Array.from(payload));
  });

  it("refuses a flipped bit, another round, another receiver named, or another sender's key", () => {
    const sealed = sealEnvelope(header, payload, sealingKey);
    const flipped = sealed.slice();
    flipped[30]! ^= 1;
    const tampered = { reason: "tampered" };
    expect(() => openEnvelope(header, flipped, openingKey)).toThrow(expect.objectContaining(tampered));
    for (const other of [
      shareHeader("m_2", "dev_aaaaaaaa", "dev_bbbbbbbb"),
      shareHeader("m_1", "dev_aaaaaaaa", "dev_cccccccc"),
    ]) {
      expect(() => openEnvelope(other, sealed, openingKey)).toThrow(expect.objectContaining(tampered));
    }
    expect(() => openEnvelope(header, sealed, envelopeKey(nacl.box.keyPair().publicKey, receiver.secretKey))).toThrow(
      expect.objectContaining(tampered),
    );
    expect(() => openEnvelope(header, sealed.subarray(0, 20), openingKey)).toThrow(expect.objectContaining(tampered));
  });
});
