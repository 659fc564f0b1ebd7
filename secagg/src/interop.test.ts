import { describe, expect, it } from "vitest";
import { SecAggClient } from "./client.ts";
import { useNativeX25519ForTesting } from "./key-agreement.ts";
import { SecAggServer } from "./server.ts";
import { simulatedIdentity } from "./testing.ts";

const N = 6;
const LENGTH = 64;
const BITS = 20;

describe("devices on WebCrypto X25519 and devices on tweetnacl in one round", () => {
  it("agree every envelope and pairwise mask; the edge rebuilds a dropped tweetnacl device's key natively", async () => {
    const roundId = "secagg-interop_1";
    const ids = Array.from({ length: N }, (_, i) => `dev_interop${String(i).padStart(2, "0")}`);
    const identities = ids.map(simulatedIdentity);
    const server = new SecAggServer({
      roundId,
      bits: BITS,
      length: LENGTH,
      identityKeyOf: (id) => identities[ids.indexOf(id)]?.publicKey,
    });
    const clients = identities.map((identity) => new SecAggClient({ roundId, identity }));
    /** Odd devices run without WebCrypto X25519 (an older browser), even ones with it. */
    const onDevice = async <T>(i: number, step: () => Promise<T>): Promise<T> => {
      useNativeX25519ForTesting(i % 2 === 1 ? false : undefined);
      try {
        return await step();
      } finally {
        useNativeX25519ForTesting(undefined);
      }
    };
    const inputs = ids.map((_, i) => new Uint32Array(LENGTH).map((_, j) => (i * 1000 + j * 7) % 2 ** BITS));
    for (const [i, c] of clients.entries()) await server.receiveAdvertise(await onDevice(i, () => c.advertiseKeys()));
    const roster = server.closeAdvertise();
    for (const [i, c] of clients.entries()) server.receiveShareKeys(await onDevice(i, () => c.shareKeys(roster)));
    server.closeShareKeys();
    // Device 3 (tweetnacl) shared its keys and then vanished before masking: the edge reconstructs its X25519 masking
    // key from the neighbours' shares, checks it against the advertised key and removes its pairwise masks, all on
    // WebCrypto.
    const dropped = 3;
    for (const [i, c] of clients.entries()) {
      if (i === dropped) continue;
      server.receiveMaskedInput(await onDevice(i, () => c.maskInput(server.relayFor(ids[i]!), inputs[i]!)));
    }
    const survivors = server.closeMaskedInput();
    for (const [i, c] of clients.entries()) {
      if (i !== dropped) await server.receiveConsistency(await onDevice(i, () => c.checkConsistency(survivors)));
    }
    server.closeConsistency();
    for (const [i, c] of clients.entries()) {
      if (i !== dropped) server.receiveUnmask(await onDevice(i, () => c.unmask(server.unmaskRequestFor(ids[i]!))));
    }
    const sum = await server.finish();
    const expected = new Uint32Array(LENGTH);
    for (const [i, x] of inputs.entries()) {
      if (i !== dropped) for (let j = 0; j < LENGTH; j++) expected[j] = (expected[j]! + x[j]!) % 2 ** BITS;
    }
    expect(Array.from(sum)).toEqual(Array.from(expected));
  });
});
