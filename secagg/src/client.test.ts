import { describe, expect, it } from "vitest";
import { fromBase64Url, toBase64Url, type SecAggShareRelay } from "@fedge/protocol";
import { SecAggClient } from "./client.ts";
import { envelopeKey, sealEnvelope } from "./envelope.ts";
import { x25519 } from "./key-agreement.ts";
import { SecAggServer } from "./server.ts";
import { simulatedIdentity } from "./testing.ts";

const N = 5; // the complete graph (k = 4): every device holds an envelope from every other
const LENGTH = 32;
const BITS = 16;

/** A round driven by hand up to the masked-input stage, so a test can alter what reaches a device. */
async function roundAtMasking(roundId = "secagg-client_1") {
  const ids = Array.from({ length: N }, (_, i) => `dev_client${String(i).padStart(4, "0")}`);
  const identities = ids.map(simulatedIdentity);
  const server = new SecAggServer({
    roundId,
    bits: BITS,
    length: LENGTH,
    identityKeyOf: (id) => identities[ids.indexOf(id)]?.publicKey,
  });
  const clients = identities.map((identity) => new SecAggClient({ roundId, identity }));
  for (const c of clients) await server.receiveAdvertise(await c.advertiseKeys());
  const roster = server.closeAdvertise();
  for (const c of clients) server.receiveShareKeys(await c.shareKeys(roster));
  server.closeShareKeys();
  const relays = ids.map((id) => server.relayFor(id));
  return { ids, identities, server, clients, roster, relays };
}

const input = () => new Uint32Array(LENGTH).fill(7);

function flipChar(text: string, at: number): string {
  const bytes = fromBase64Url(text);
  bytes[at]! ^= 0x01;
  return toBase64Url(bytes);
}

describe("SecAggClient refuses what it must", () => {
  it("refuses a tampered envelope, keeps its state, and masks once given the true relay", async () => {
    const { ids, clients, relays } = await roundAtMasking();
    const relay = relays[0]!;
    const tampered: SecAggShareRelay = {
      ...relay,
      shares: relay.shares.map((s, i) => (i === 0 ? { ...s, ciphertext: flipChar(s.ciphertext, 40) } : s)),
    };
    await expect(clients[0]!.maskInput(tampered, input())).rejects.toMatchObject({ reason: "tampered" });
    expect(clients[0]!.stage).toBe("masked-input");
    const masked = await clients[0]!.maskInput(relay, input());
    expect(masked.device_id).toBe(ids[0]);
    expect(clients[0]!.stage).toBe("consistency");
  });

  it("refuses by name the shares of a neighbour of the earlier release (format v1), and keeps its state", async () => {
    const roundId = "secagg-client_v1";
    const ids = Array.from({ length: N }, (_, i) => `dev_client${String(i).padStart(4, "0")}`);
    const identities = ids.map(simulatedIdentity);
    const server = new SecAggServer({
      roundId,
      bits: BITS,
      length: LENGTH,
      identityKeyOf: (id) => identities[ids.indexOf(id)]?.publicKey,
    });
    // Device 1's first random draw is its encryption secret: kept, so the test can seal as device 1 would.
    let secretOfOne: Uint8Array | undefined;
    const random = (length: number) => {
      const bytes = crypto.getRandomValues(new Uint8Array(length));
      secretOfOne ??= bytes.slice();
      return bytes;
    };
    const clients = identities.map(
      (identity, i) => new SecAggClient({ roundId, identity, ...(i === 1 ? { random } : {}) }),
    );
    for (const c of clients) await server.receiveAdvertise(await c.advertiseKeys());
    const roster = server.closeAdvertise();
    for (const c of clients) server.receiveShareKeys(await c.shareKeys(roster));
    server.closeShareKeys();
    const relay = server.relayFor(ids[0]!);
    // A v1 envelope: two 33-byte big-endian values of GF(2^256 + 297), whose first byte is 0 or 1.
    const v1Payload = new Uint8Array(66);
    v1Payload.set(crypto.getRandomValues(new Uint8Array(32)), 1);
    v1Payload.set(crypto.getRandomValues(new Uint8Array(32)), 34);
    const shared = await x25519(secretOfOne!, fromBase64Url(roster.devices[0]!.encryption_key));
    const sealed = sealEnvelope(v1Payload, envelopeKey(roundId, ids[1]!, ids[0]!, shared));
    const fromOld: SecAggShareRelay = {
      ...relay,
      shares: relay.shares.map((e) => (e.from === ids[1] ? { ...e, ciphertext: toBase64Url(sealed) } : e)),
    };
    await expect(clients[0]!.maskInput(fromOld, input())).rejects.toMatchObject({
      reason: "bad-message",
      message: expect.stringMatching(/format v1/),
    });
    expect(clients[0]!.stage).toBe("masked-input");
    await clients[0]!.maskInput(relay, input());
    expect(clients[0]!.stage).toBe("consistency");
  });

  it("refuses an envelope replayed into another device's mailbox or another round", async () => {
    const a = await roundAtMasking();
    // Device 1's envelope from device 2, handed to device 0 as if device 2 had sealed it for 0.
    const fromTwoToOne = a.relays[1]!.shares.find((s) => s.from === a.ids[2])!;
    const relay0 = a.relays[0]!;
    const misdirected: SecAggShareRelay = {
      ...relay0,
      shares: relay0.shares.map((s) => (s.from === a.ids[2] ? { ...s, ciphertext: fromTwoToOne.ciphertext } : s)),
    };
    await expect(a.clients[0]!.maskInput(misdirected, input())).rejects.toMatchObject({ reason: "tampered" });
    // The same envelope relayed twice in one stage.
    const doubled: SecAggShareRelay = { ...relay0, shares: [...relay0.shares, relay0.shares[0]!] };
    await expect(a.clients[0]!.maskInput(doubled, input())).rejects.toMatchObject({ reason: "replayed" });
    // An envelope from an earlier round of the same devices (fresh keys each round) does not open.
    const b = await roundAtMasking("secagg-client_2");
    const old = a.relays[0]!.shares[0]!;
    const relayB = b.relays[0]!;
    const replayed: SecAggShareRelay = {
      ...relayB,
      shares: relayB.shares.map((s) => (s.from === old.from ? { ...s, ciphertext: old.ciphertext } : s)),
    };
    await expect(b.clients[0]!.maskInput(replayed, input())).rejects.toMatchObject({ reason: "tampered" });
    await expect(b.clients[0]!.maskInput(a.relays[0]!, input())).rejects.toMatchObject({ reason: "bad-message" });
  });

  it("refuses a stage answered twice, and a relay that hides a neighbour's envelope", async () => {
    const { clients, relays, roster } = await roundAtMasking();
    await expect(clients[1]!.shareKeys(roster)).rejects.toMatchObject({ reason: "replayed" });
    const relay = relays[1]!;
    const hidden = { ...relay, shares: relay.shares.slice(1) };
    await expect(clients[1]!.maskInput(hidden, input())).rejects.toMatchObject({ reason: "inconsistent" });
    await clients[1]!.maskInput(relay, input());
    await expect(clients[1]!.maskInput(relay, input())).rejects.toMatchObject({ reason: "replayed" });
  });

  it("refuses a roster whose advertised keys were swapped by the edge", async () => {
    const { ids, identities } = await roundAtMasking();
    const roundId = "secagg-client_3";
    const server = new SecAggServer({
      roundId,
      bits: BITS,
      length: LENGTH,
      identityKeyOf: (id) => identities[ids.indexOf(id)]?.publicKey,
    });
    const clients = identities.map((identity) => new SecAggClient({ roundId, identity }));
    for (const c of clients) await server.receiveAdvertise(await c.advertiseKeys());
    const roster = server.closeAdvertise();
    const [first, second] = [roster.devices[1]!, roster.devices[2]!];
    const swapped = {
      ...roster,
      devices: roster.devices.map((d, i) =>
        i === 1 ? { ...d, masking_key: second.masking_key } : i === 2 ? { ...d, masking_key: first.masking_key } : d,
      ),
    };
    await expect(clients[0]!.shareKeys(swapped)).rejects.toMatchObject({ reason: "bad-signature" });
    expect(clients[0]!.stage).toBe("share-keys");
  });

  it("refuses a roster whose threshold does not hold against the colluders its round states", async () => {
    // 12 devices: without colluders k = 10, t = 6; with 2 stated colluders the edge must run k = 11, t = 7.
    const ids = Array.from({ length: 12 }, (_, i) => `dev_collude${String(i).padStart(4, "0")}`);
    const identities = ids.map(simulatedIdentity);
    const rosterFor = async (roundId: string, corruptDevices: number) => {
      const server = new SecAggServer({
        roundId,
        bits: BITS,
        length: LENGTH,
        dropoutFraction: 1 / 5,
        corruptDevices,
        identityKeyOf: (id) => identities[ids.indexOf(id)]?.publicKey,
      });
      const clients = identities.map((identity) => new SecAggClient({ roundId, identity, corruptDevices: 2 }));
      for (const c of clients) await server.receiveAdvertise(await c.advertiseKeys());
      return { roster: server.closeAdvertise(), clients };
    };
    const weak = await rosterFor("secagg-client_c0", 0); // an edge that charges for 2 colluders but runs t for none
    expect(weak.roster.parameters.threshold).toBeLessThan(7);
    await expect(weak.clients[0]!.shareKeys(weak.roster)).rejects.toMatchObject({ reason: "bad-message" });
    expect(weak.clients[0]!.stage).toBe("share-keys");
    const honest = await rosterFor("secagg-client_c2", 2);
    expect(honest.roster.parameters.threshold).toBeGreaterThan(weak.roster.parameters.threshold);
    await expect(honest.clients[0]!.shareKeys(honest.roster)).resolves.toBeDefined();
  });

  it("refuses to unmask when the edge tells it another survivor set or forges signatures", async () => {
    const { ids, clients, relays, server } = await roundAtMasking();
    for (const [i, c] of clients.entries()) server.receiveMaskedInput(await c.maskInput(relays[i]!, input()));
    const request = server.closeMaskedInput();
    for (const c of clients) await server.receiveConsistency(await c.checkConsistency(request));
    server.closeConsistency();
    const honest = server.unmaskRequestFor(ids[0]!);
    const fewer = { ...honest, survivors: honest.survivors.slice(1) };
    await expect(clients[0]!.unmask(fewer)).rejects.toMatchObject({ reason: "inconsistent" });
    const forged = {
      ...honest,
      signatures: honest.signatures.map((s, i) => (i === 0 ? { ...s, signature: flipChar(s.signature, 3) } : s)),
    };
    await expect(clients[0]!.unmask(forged)).rejects.toMatchObject({ reason: "bad-signature" });
    const shares = await clients[0]!.unmask(honest);
    // Every device survived, so it reveals self-mask seed shares and no key share.
    expect(shares.key_shares).toEqual([]);
    expect(shares.self_mask_shares.length).toBe(honest.signatures.length);
  });

  it("refuses to sign survivors that include a device the relay said never shared", async () => {
    const { ids, clients, relays } = await roundAtMasking();
    const relay = relays[0]!;
    const withoutFour: SecAggShareRelay = {
      ...relay,
      senders: relay.senders.filter((id) => id !== ids[4]),
      shares: relay.shares.filter((s) => s.from !== ids[4]),
    };
    await clients[0]!.maskInput(withoutFour, input());
    const request = { round_id: relay.round_id, survivors: [...ids] };
    await expect(clients[0]!.checkConsistency(request)).rejects.toMatchObject({ reason: "inconsistent" });
    expect(clients[0]!.stage).toBe("consistency");
  });
});
