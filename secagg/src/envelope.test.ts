import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import { envelopeKey, ENVELOPE_OVERHEAD, openEnvelope, sealEnvelope } from "./envelope.ts";
import { x25519 } from "./key-agreement.ts";

describe("share envelopes (secretbox under a key bound to round, sender and receiver)", async () => {
  const sender = nacl.box.keyPair();
  const receiver = nacl.box.keyPair();
  const atSender = await x25519(sender.secretKey, receiver.publicKey);
  const atReceiver = await x25519(receiver.secretKey, sender.publicKey);
  const payload = crypto.getRandomValues(new Uint8Array(66));
  const sealingKey = envelopeKey("m_1", "dev_aaaaaaaa", "dev_bbbbbbbb", atSender);
  const openingKey = envelopeKey("m_1", "dev_aaaaaaaa", "dev_bbbbbbbb", atReceiver);

  it("opens what was sealed for it, with only the tag added", () => {
    const sealed = sealEnvelope(payload, sealingKey);
    expect(sealed.length).toBe(payload.length + ENVELOPE_OVERHEAD);
    expect(Array.from(openEnvelope(sealed, openingKey))).toEqual(Array.from(payload));
  });

  it("refuses a flipped bit, another round, the other direction, another receiver, or another sender's key", () => {
    const sealed = sealEnvelope(payload, sealingKey);
    const tampered = { reason: "tampered" };
    for (const at of [0, 20, sealed.length - 1]) {
      const flipped = sealed.slice();
      flipped[at]! ^= 1;
      expect(() => openEnvelope(flipped, openingKey)).toThrow(expect.objectContaining(tampered));
    }
    for (const other of [
      envelopeKey("m_2", "dev_aaaaaaaa", "dev_bbbbbbbb", atReceiver),
      envelopeKey("m_1", "dev_bbbbbbbb", "dev_aaaaaaaa", atReceiver),
      envelopeKey("m_1", "dev_aaaaaaaa", "dev_cccccccc", atReceiver),
      envelopeKey(
        "m_1",
        "dev_aaaaaaaa",
        "dev_bbbbbbbb",
        nacl.scalarMult(receiver.secretKey, nacl.box.keyPair().publicKey),
      ),
    ]) {
      expect(() => openEnvelope(sealed, other)).toThrow(expect.objectContaining(tampered));
    }
    expect(() => openEnvelope(sealed.subarray(0, 15), openingKey)).toThrow(expect.objectContaining(tampered));
  });
});
