import { describe, expect, it } from "vitest";
import { fromBase64Url, toBase64Url } from "@fedge/protocol";
import { modulusMask } from "./modular.ts";
import { SecAggClient } from "./client.ts";
import { chooseParameters } from "./parameters.ts";
import { SecAggServer } from "./server.ts";
import { simulatedIdentity, simulateRound, type DropPoint } from "./testing.ts";
import { decodePackedVector, encodePackedVector, encodeVector } from "./vector-codec.ts";

const dropAll = (ids: number[], at: DropPoint) => new Map(ids.map((i) => [i, at] as const));

describe("SecAggServer with SecAggClient devices", () => {
  it("returns the plain sum mod 2^b exactly when every device stays", async () => {
    const round = await simulateRound({ devices: 8, bits: 16, length: 1000 });
    const sum = await round.finish();
    expect(round.server.survivors).toHaveLength(8);
    expect(Array.from(sum)).toEqual(Array.from(round.expectedSum));
    // The masked inputs alone do not add up to it: the masks are really there.
    expect(Array.from(sum)).not.toEqual(Array.from(round.inputs[0]!));
  });

  it("wraps at 2^32 with b = 32 and at 2^b with b = 7", async () => {
    for (const bits of [32, 7]) {
      const big = modulusMask(bits);
      const inputs = Array.from({ length: 5 }, () => new Uint32Array(64).fill(big));
      const round = await simulateRound({ devices: 5, bits, length: 64, inputs });
      const sum = await round.finish();
      expect(sum[0]).toBe((5 * big) % 2 ** bits); // 5·(2^b − 1) ≡ −5
      expect(Array.from(sum)).toEqual(Array.from(round.expectedSum));
    }
  });

  it("finishes when a third of the devices drop after masking, summing those that masked", async () => {
    const n = 30;
    const dropped = [1, 4, 7, 10, 13, 16, 19, 22, 25, 28];
    const round = await simulateRound({ devices: n, bits: 20, length: 300, drops: dropAll(dropped, "consistency") });
    const sum = await round.finish();
    expect(round.server.survivors).toHaveLength(n);
    expect(Array.from(sum)).toEqual(Array.from(round.expectedSum));
  });

  it("finishes when devices drop before sharing keys and before masking, leaving them out of the sum", async () => {
    const drops = new Map<number, DropPoint>([
      [0, "share-keys"],
      [3, "share-keys"],
      [5, "masked-input"],
      [8, "masked-input"],
      [11, "unmask"],
    ]);
    const round = await simulateRound({ devices: 15, bits: 24, length: 200, drops });
    const sum = await round.finish();
    expect(round.server.survivors).toHaveLength(11);
    expect(round.maskedInputs.has(5)).toBe(false);
    expect(Array.from(sum)).toEqual(Array.from(round.expectedSum));
  });

  it("runs SecAgg+ on a sparse graph (k < n − 1) with dropouts after masking", async () => {
    const options = { devices: 40, bits: 16, length: 100, dropoutFraction: 0.1 };
    const p = chooseParameters(options.devices, options.bits, options.length, options);
    expect(p.neighbours).toBeLessThan(options.devices - 1);
    const round = await simulateRound({ ...options, drops: dropAll([2, 9, 17, 30], "consistency") });
    expect(Array.from(await round.finish())).toEqual(Array.from(round.expectedSum));
  });

  it("aborts cleanly when more than a third drop before masking", async () => {
    const dropped = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const round = simulateRound({ devices: 30, bits: 16, length: 50, drops: dropAll(dropped, "masked-input") });
    await expect(round).rejects.toMatchObject({ name: "SecAggError", reason: "below-threshold" });
  });

  it("aborts when a survivor's self-mask seed has fewer than t shares, though the round keeps its majority", async () => {
    // k = 8, t = 5, at most 4 of 20 may drop: the 4 neighbours of device 0 stay silent in the unmask stage.
    const options = { devices: 20, bits: 16, length: 50, dropoutFraction: 0.2, failureBits: 1 };
    const p = chooseParameters(20, 16, 50, options);
    expect([p.neighbours, p.threshold, p.minSurvivors]).toEqual([8, 5, 16]);
    const round = await simulateRound({
      ...options,
      dropsFor: (roster) => {
        const silent = roster.graph.neighboursOf(0).slice(0, p.neighbours - p.threshold + 1);
        return new Map(silent.map((v) => [v, "unmask"] as const));
      },
    });
    await expect(round.finish()).rejects.toMatchObject({ name: "SecAggError", reason: "below-threshold" });
    expect(round.server.stage).toBe("aborted");
    await expect(round.server.finish()).rejects.toThrow(/aborted/);
  });

  it("shows the edge a masked input that passes a uniformity test, even for a constant input", async () => {
    const length = 65_536;
    const bits = 16;
    const inputs = Array.from({ length: 5 }, () => new Uint32Array(length).fill(12_345));
    const round = await simulateRound({ devices: 5, bits, length, inputs });
    const seen = decodePackedVector(round.maskedInputs.get(0)!.masked, length, bits);
    // χ² over 256 cells of the high and of the low byte: 255 degrees of freedom, P[χ² > 400] < 1e-9 for uniform data.
    expect(chiSquared(seen, (v) => v >> 8)).toBeLessThan(400);
    expect(chiSquared(seen, (v) => v & 0xff)).toBeLessThan(400);
    // The same test does see the structure of an unmasked input, or of a half-masked one.
    expect(chiSquared(inputs[0]!, (v) => v >> 8)).toBeGreaterThan(400);
    const halfMasked = seen.map((v, i) => (i % 2 === 0 ? v : 12_345));
    expect(chiSquared(halfMasked, (v) => v & 0xff)).toBeGreaterThan(400);
    expect(Array.from(await round.finish())).toEqual(Array.from(round.expectedSum));
  });
});

describe("SecAggServer refuses what it must, and records nothing when it does", () => {
  const roundId = "secagg-server_1";
  const ids = Array.from({ length: 5 }, (_, i) => `dev_server${String(i).padStart(4, "0")}`);
  const identities = ids.map(simulatedIdentity);
  const newServer = () =>
    new SecAggServer({ roundId, bits: 8, length: 16, identityKeyOf: (id) => identities[ids.indexOf(id)]?.publicKey });

  it("refuses unknown devices, forged and replayed advertisements", async () => {
    const server = newServer();
    const clients = identities.map((identity) => new SecAggClient({ roundId, identity }));
    const first = await clients[0]!.advertiseKeys();
    await server.receiveAdvertise(first);
    await expect(server.receiveAdvertise(first)).rejects.toMatchObject({ reason: "replayed" });
    const stranger = await new SecAggClient({ roundId, identity: simulatedIdentity("dev_stranger01") }).advertiseKeys();
    await expect(server.receiveAdvertise(stranger)).rejects.toMatchObject({ reason: "bad-message" });
    const spare = await new SecAggClient({ roundId, identity: identities[1]! }).advertiseKeys();
    const forged = { ...spare, masking_key: first.masking_key };
    await expect(server.receiveAdvertise(forged)).rejects.toMatchObject({ reason: "bad-signature" });
    const otherRound = await new SecAggClient({ roundId: "secagg-server_2", identity: identities[2]! }).advertiseKeys();
    await expect(server.receiveAdvertise(otherRound)).rejects.toMatchObject({ reason: "bad-message" });
    await expect(server.receiveAdvertise({ ...otherRound, round_id: roundId })).rejects.toMatchObject({
      reason: "bad-signature",
    });
    for (const c of clients.slice(1)) await server.receiveAdvertise(await c.advertiseKeys());
    expect(server.closeAdvertise().devices.map((d) => d.device_id)).toEqual(ids);
  });

  it("refuses replayed, short and out-of-range masked inputs and shares of the wrong kind", async () => {
    const server = newServer();
    const clients = identities.map((identity) => new SecAggClient({ roundId, identity }));
    for (const c of clients) await server.receiveAdvertise(await c.advertiseKeys());
    const roster = server.closeAdvertise();
    for (const c of clients) server.receiveShareKeys(await c.shareKeys(roster));
    server.closeShareKeys();
    const masked = await Promise.all(
      clients.map((c, i) => c.maskInput(server.relayFor(ids[i]!), new Uint32Array(16).fill(i))),
    );
    server.receiveMaskedInput(masked[0]!);
    expect(() => server.receiveMaskedInput(masked[0]!)).toThrow(expect.objectContaining({ reason: "replayed" }));
    const short = { ...masked[1]!, masked: encodePackedVector(new Uint32Array(15), 8) };
    expect(() => server.receiveMaskedInput(short)).toThrow(expect.objectContaining({ reason: "bad-message" }));
    // 32-bit words where b = 8 bits a value are expected: 4× too long, refused before anything is added
    const words = { ...masked[1]!, masked: encodeVector(new Uint32Array(16)) };
    expect(() => server.receiveMaskedInput(words)).toThrow(expect.objectContaining({ reason: "bad-message" }));
    for (const m of masked.slice(1, 4)) server.receiveMaskedInput(m); // device 4 drops after sharing
    const request = server.closeMaskedInput();
    for (const c of clients.slice(0, 4)) await server.receiveConsistency(await c.checkConsistency(request));
    server.closeConsistency();
    const shares = await clients[0]!.unmask(server.unmaskRequestFor(ids[0]!));
    expect(shares.key_shares.map((s) => s.of)).toEqual([ids[4]]);
    // Asking for a survivor's masking-key share (with its self-mask share) would hand the edge both secrets.
    const greedy = {
      ...shares,
      key_shares: [...shares.key_shares, { of: ids[1]!, share: shares.self_mask_shares[0]!.share }],
    };
    expect(() => server.receiveUnmask(greedy)).toThrow(expect.objectContaining({ reason: "bad-message" }));
    // A device of the earlier release sends share format v1 (one value of GF(2^256 + 297), first byte 0 or 1):
    // refused by name before anything is recorded, so the same device's v2 shares are still taken afterwards.
    const v1 = (share: string) => toBase64Url(Uint8Array.of(0, ...fromBase64Url(share).subarray(1)));
    const old = {
      ...shares,
      self_mask_shares: shares.self_mask_shares.map((s) => ({ ...s, share: v1(s.share) })),
      key_shares: shares.key_shares.map((s) => ({ ...s, share: v1(s.share) })),
    };
    expect(() => server.receiveUnmask(old)).toThrow(
      expect.objectContaining({ reason: "bad-message", message: expect.stringMatching(/format v1/) }),
    );
    server.receiveUnmask(shares);
    expect(() => server.receiveUnmask(shares)).toThrow(expect.objectContaining({ reason: "replayed" }));
    for (const c of clients.slice(1, 4))
      server.receiveUnmask(await c.unmask(server.unmaskRequestFor(ids[clients.indexOf(c)]!)));
    const sum = await server.finish();
    expect(Array.from(sum)).toEqual(new Array(16).fill(0 + 1 + 2 + 3));
  });

  it("refuses everything once aborted", async () => {
    const server = newServer();
    const clients = identities.map((identity) => new SecAggClient({ roundId, identity }));
    for (const c of clients.slice(0, 2)) await server.receiveAdvertise(await c.advertiseKeys());
    expect(() => server.closeAdvertise()).toThrow(expect.objectContaining({ reason: "below-threshold" }));
    expect(server.stage).toBe("aborted");
    await expect(server.receiveAdvertise(await clients[2]!.advertiseKeys())).rejects.toMatchObject({
      reason: "below-threshold",
    });
    await expect(server.finish()).rejects.toMatchObject({ reason: "below-threshold" });
  });
});

/** Pearson's χ² statistic of `values` mapped into 256 cells, against the uniform law. */
function chiSquared(values: Uint32Array, cell: (v: number) => number): number {
  const counts = new Float64Array(256);
  for (const v of values) counts[cell(v)]!++;
  const expected = values.length / 256;
  let chi = 0;
  for (const c of counts) chi += (c - expected) ** 2 / expected;
  return chi;
}
