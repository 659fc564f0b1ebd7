/**
 * The SecAggRound Durable Object inside workerd: real SecAggClient devices run a round against it over RPC, with
 * drops after masking, an eviction in the middle (the object rebuilds its server from its log), refusals that change
 * no state, a clean abort, and only the modular sum kept at the end.
 */
import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import nacl from "tweetnacl";
import { SECAGG_MAX_ENCODED_LENGTH, toBase64Url } from "@fedge/protocol";
import { decodeVector, SecAggClient, type DeviceIdentity } from "@fedge/secagg";
import { secAggStub } from "../src/durable-objects/secagg-round.ts";

const BITS = 16;
const LENGTH = 64;

function devices(n: number, tag: string) {
  return Array.from({ length: n }, (_, i) => {
    const keys = nacl.sign.keyPair();
    const identity: DeviceIdentity = {
      deviceId: `dev_${tag}${String(i).padStart(6, "0")}`,
      publicKey: keys.publicKey,
      sign: (m) => nacl.sign.detached(m, keys.secretKey),
    };
    const input = new Uint32Array(LENGTH).map(() => Math.floor(Math.random() * 2 ** BITS));
    return { identity, input };
  });
}

function ok<R extends { ok: boolean }>(r: R): Extract<R, { ok: true }> {
  if (!r.ok) throw new Error(`expected success, got ${JSON.stringify(r)}`);
  return r as Extract<R, { ok: true }>;
}

describe("SecAggRound (Durable Object)", () => {
  it("keeps no storage for a round that was never opened", async () => {
    const stub = secAggStub(env, "secagg-do_404");
    expect(await stub.stage()).toBe("not_open");
    expect(await stub.roster()).toMatchObject({ ok: false, code: "round_not_found", status: 404 });
    expect(await stub.outcome()).toMatchObject({ ok: false, code: "round_not_found" });
    const tables = await runInDurableObject(stub, (_instance, state) =>
      state.storage.sql
        .exec(
          "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_cf_%' AND name NOT LIKE 'sqlite_%'",
        )
        .toArray(),
    );
    expect(tables).toEqual([]);
  });

  it("runs a round with a third dropping after masking, survives eviction, and keeps only the sum", async () => {
    const roundId = "secagg-do_1";
    const stub = secAggStub(env, roundId);
    const devs = devices(9, "doround");
    const clients = devs.map((d) => new SecAggClient({ roundId, identity: d.identity }));
    ok(await stub.open({ roundId, bits: BITS, length: LENGTH }));
    for (const [i, c] of clients.entries()) {
      ok(await stub.advertise(await c.advertiseKeys(), toBase64Url(devs[i]!.identity.publicKey)));
    }
    ok(await stub.closeStage());
    const { roster } = ok(await stub.roster());
    for (const c of clients) ok(await stub.shareKeys(await c.shareKeys(roster)));
    ok(await stub.closeStage());
    await evictDurableObject(stub); // the next call rebuilds the server from the log
    for (const [i, c] of clients.entries()) {
      const { relay } = ok(await stub.relay(devs[i]!.identity.deviceId));
      ok(await stub.maskedInput(await c.maskInput(relay, devs[i]!.input)));
    }
    ok(await stub.closeStage());
    const { request } = ok(await stub.consistencyRequest());
    const dropped = new Set([0, 4, 7]); // a third, after masking
    const stayed = clients.filter((_, i) => !dropped.has(i));
    for (const c of stayed) ok(await stub.consistency(await c.checkConsistency(request)));
    ok(await stub.closeStage());
    await evictDurableObject(stub);
    for (const [i, c] of clients.entries()) {
      if (dropped.has(i)) continue;
      const { request: unmask } = ok(await stub.unmaskRequest(devs[i]!.identity.deviceId));
      ok(await stub.unmask(await c.unmask(unmask)));
    }
    expect(await stub.stage()).toBe("unmask");
    const closed = ok(await stub.closeStage());
    expect(closed.stage).toBe("finished");

    const { outcome } = ok(await stub.outcome());
    const expected = new Uint32Array(LENGTH);
    for (const d of devs) for (let j = 0; j < LENGTH; j++) expected[j] = (expected[j]! + d.input[j]!) % 2 ** BITS;
    expect(Array.from(decodeVector(outcome.sum, LENGTH, BITS))).toEqual(Array.from(expected));
    expect(outcome.survivors).toHaveLength(9);
    // Nothing but the outcome is left: no masked input, no share.
    const rows = await runInDurableObject(stub, (_instance, state) =>
      state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM log").one(),
    );
    expect(rows.n).toBe(0);
    const late = await new SecAggClient({ roundId, identity: devs[0]!.identity }).advertiseKeys();
    expect(await stub.advertise(late, toBase64Url(devs[0]!.identity.publicKey))).toMatchObject({
      ok: false,
      code: "round_closed",
    });
  });

  it("refuses forged, replayed and out-of-stage messages without recording them", async () => {
    const roundId = "secagg-do_2";
    const stub = secAggStub(env, roundId);
    const devs = devices(4, "dorefuse");
    const clients = devs.map((d) => new SecAggClient({ roundId, identity: d.identity }));
    ok(await stub.open({ roundId, bits: BITS, length: LENGTH }));
    const first = await clients[0]!.advertiseKeys();
    const key0 = toBase64Url(devs[0]!.identity.publicKey);
    // Signed by device 0, presented under device 1's registered key.
    expect(await stub.advertise(first, toBase64Url(devs[1]!.identity.publicKey))).toMatchObject({
      ok: false,
      code: "bad_signature",
      status: 401,
    });
    ok(await stub.advertise(first, key0));
    // The very same message again is a duplicate (a retry) and changes nothing; another one from the device conflicts.
    expect(await stub.advertise(first, key0)).toMatchObject({ ok: true, duplicate: true });
    const second = await new SecAggClient({ roundId, identity: devs[0]!.identity }).advertiseKeys();
    expect(await stub.advertise(second, key0)).toMatchObject({ ok: false, code: "conflict", status: 409 });
    expect(await stub.roster()).toMatchObject({ ok: false, code: "conflict" });
    for (const [i, c] of clients.slice(1).entries()) {
      ok(await stub.advertise(await c.advertiseKeys(), toBase64Url(devs[i + 1]!.identity.publicKey)));
    }
    ok(await stub.closeStage());
    const { roster } = ok(await stub.roster());
    expect(roster.devices).toHaveLength(4); // the refused advertisements left no trace
    expect(await stub.open({ roundId, bits: 8, length: LENGTH })).toMatchObject({ ok: false, code: "conflict" });
  });

  it("aborts cleanly below the threshold and says so afterwards", async () => {
    const roundId = "secagg-do_3";
    const stub = secAggStub(env, roundId);
    const devs = devices(6, "doabort");
    const clients = devs.map((d) => new SecAggClient({ roundId, identity: d.identity }));
    ok(await stub.open({ roundId, bits: BITS, length: LENGTH }));
    for (const [i, c] of clients.entries()) {
      ok(await stub.advertise(await c.advertiseKeys(), toBase64Url(devs[i]!.identity.publicKey)));
    }
    ok(await stub.closeStage());
    const { roster } = ok(await stub.roster());
    for (const c of clients.slice(0, 3)) ok(await stub.shareKeys(await c.shareKeys(roster))); // 3 of 6 share
    expect(await stub.closeStage()).toMatchObject({ ok: false, code: "round_closed", status: 409 });
    expect(await stub.stage()).toBe("aborted");
    expect(await stub.outcome()).toMatchObject({ ok: false, code: "round_closed" });
    await evictDurableObject(stub);
    expect(await stub.stage()).toBe("aborted");
    expect(await stub.relay(devs[0]!.identity.deviceId)).toMatchObject({ ok: false, code: "round_closed" });
  });

  it("logs a masked input of the largest encoded length in one row and still sums exactly", async () => {
    const roundId = "secagg-do_4";
    const length = SECAGG_MAX_ENCODED_LENGTH;
    const stub = secAggStub(env, roundId);
    const devs = devices(4, "dolarge"); // the fewest that survive a dropout with t > k/2
    const inputs = devs.map(() => new Uint32Array(length).map((_, j) => (j * 7919) % 2 ** BITS));
    const clients = devs.map((d) => new SecAggClient({ roundId, identity: d.identity }));
    ok(await stub.open({ roundId, bits: BITS, length }));
    for (const [i, c] of clients.entries()) {
      ok(await stub.advertise(await c.advertiseKeys(), toBase64Url(devs[i]!.identity.publicKey)));
    }
    ok(await stub.closeStage());
    const { roster } = ok(await stub.roster());
    for (const c of clients) ok(await stub.shareKeys(await c.shareKeys(roster)));
    ok(await stub.closeStage());
    for (const [i, c] of clients.entries()) {
      const { relay } = ok(await stub.relay(devs[i]!.identity.deviceId));
      ok(await stub.maskedInput(await c.maskInput(relay, inputs[i]!)));
    }
    ok(await stub.closeStage());
    await evictDurableObject(stub); // the rows are read back
    const { request } = ok(await stub.consistencyRequest());
    for (const c of clients) ok(await stub.consistency(await c.checkConsistency(request)));
    ok(await stub.closeStage());
    for (const [i, c] of clients.entries()) {
      const { request: unmask } = ok(await stub.unmaskRequest(devs[i]!.identity.deviceId));
      ok(await stub.unmask(await c.unmask(unmask)));
    }
    expect(ok(await stub.closeStage()).stage).toBe("finished");
    const { outcome } = ok(await stub.outcome());
    const sum = decodeVector(outcome.sum, length, BITS);
    for (const j of [0, 1, 12345, length - 1]) expect(sum[j]).toBe((4 * ((j * 7919) % 2 ** BITS)) % 2 ** BITS);
  });
});
