/**
 * The SecAggRound Durable Object inside workerd: real SecAggClient devices run a round against it over RPC, with
 * drops after masking, an eviction in the middle (the object rebuilds its server from its log), refusals that change
 * no state, a clean abort, only the modular sum kept at the end, and stages closed by the object's alarm at their
 * deadlines (a silent device dropped, a late message refused with `stage_closed`).
 */
import { env, evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
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

/** Stage deadlines an hour apart: tests that close every stage themselves. */
const far = () => [1, 2, 3, 4, 5].map((h) => Date.now() + h * 3_600_000);

/** Deadlines `gapsMs` apart from now, one per stage. */
function deadlinesIn(...gapsMs: number[]): number[] {
  let at = Date.now();
  return gapsMs.map((gap) => (at += gap));
}

const sleepUntil = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms - Date.now()) + 50));

/** The alarm's work, seen from storage (no call that would close an overdue stage itself): closes logged, next alarm. */
function alarmView(stub: ReturnType<typeof secAggStub>) {
  return runInDurableObject(stub, async (_instance, state) => ({
    closes: state.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM log WHERE body = '{"kind":"close"}'`).one()
      .n,
    rows: state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM log").one().n,
    alarm: await state.storage.getAlarm(),
  }));
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
    ok(await stub.open({ roundId, bits: BITS, length: LENGTH, stageDeadlines: far() }));
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
      code: "stage_closed",
      status: 409,
    });
  });

  it("refuses forged, replayed and out-of-stage messages without recording them", async () => {
    const roundId = "secagg-do_2";
    const stub = secAggStub(env, roundId);
    const devs = devices(4, "dorefuse");
    const clients = devs.map((d) => new SecAggClient({ roundId, identity: d.identity }));
    ok(await stub.open({ roundId, bits: BITS, length: LENGTH, stageDeadlines: far() }));
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
    expect(await stub.open({ roundId, bits: 8, length: LENGTH, stageDeadlines: far() })).toMatchObject({
      ok: false,
      code: "conflict",
    });
  });

  it("aborts cleanly below the threshold and says so afterwards", async () => {
    const roundId = "secagg-do_3";
    const stub = secAggStub(env, roundId);
    const devs = devices(6, "doabort");
    const clients = devs.map((d) => new SecAggClient({ roundId, identity: d.identity }));
    ok(await stub.open({ roundId, bits: BITS, length: LENGTH, stageDeadlines: far() }));
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
    ok(await stub.open({ roundId, bits: BITS, length, stageDeadlines: far() }));
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

  it("closes each stage at its deadline by its alarm: a silent device drops, a late message changes nothing", async () => {
    const roundId = "secagg-do_5";
    const stub = secAggStub(env, roundId);
    const devs = devices(9, "doalarm");
    const clients = devs.map((d) => new SecAggClient({ roundId, identity: d.identity }));
    // advertise, share-keys, masked-input (closed early below), consistency, unmask: fixed now, whatever comes
    const deadlines = deadlinesIn(5000, 4000, 6000, 4000, 4000);
    ok(await stub.open({ roundId, bits: BITS, length: LENGTH, stageDeadlines: deadlines }));
    expect(await stub.progress()).toMatchObject({
      stage: "advertise",
      deadline: new Date(deadlines[0]!).toISOString(),
    });
    for (const [i, c] of clients.entries()) {
      ok(await stub.advertise(await c.advertiseKeys(), toBase64Url(devs[i]!.identity.publicKey)));
    }
    expect((await alarmView(stub)).alarm).toBe(deadlines[0]);

    // The advertise deadline passes: the alarm closes the stage and waits for the next deadline.
    await sleepUntil(deadlines[0]!);
    await runDurableObjectAlarm(stub); // runs it now if workerd has not already
    expect(await alarmView(stub)).toMatchObject({ closes: 1, alarm: deadlines[1] });
    const { roster } = ok(await stub.roster());
    const shares = await Promise.all(clients.map((c) => c.shareKeys(roster)));
    for (const message of shares.slice(0, 8)) ok(await stub.shareKeys(message)); // device 8 stays silent

    await sleepUntil(deadlines[1]!);
    await runDurableObjectAlarm(stub);
    const before = await alarmView(stub);
    expect(before).toMatchObject({ closes: 2, alarm: deadlines[2] });
    // Device 8 answers late: refused, not recorded; the round goes on without it.
    expect(await stub.shareKeys(shares[8]!)).toMatchObject({ ok: false, code: "stage_closed", status: 409 });
    expect(await stub.roster()).toMatchObject({ ok: false, code: "stage_closed" });
    expect((await alarmView(stub)).rows).toBe(before.rows);
    expect(await stub.progress()).toMatchObject({ stage: "masked-input", answered: 0, expected: 8 });

    for (const [i, c] of clients.slice(0, 8).entries()) {
      const { relay } = ok(await stub.relay(devs[i]!.identity.deviceId));
      ok(await stub.maskedInput(await c.maskInput(relay, devs[i]!.input)));
    }
    // Every device still in the round masked: the driver closes the stage early, naming it; naming it again (a
    // close racing the deadline) leaves the next stage alone.
    expect(ok(await stub.closeStage("masked-input")).stage).toBe("consistency");
    expect(ok(await stub.closeStage("masked-input")).stage).toBe("consistency");
    expect((await alarmView(stub)).alarm).toBe(deadlines[3]);
    const { request } = ok(await stub.consistencyRequest());
    for (const c of clients.slice(0, 6)) ok(await stub.consistency(await c.checkConsistency(request))); // 6, 7 drop

    await sleepUntil(deadlines[3]!);
    await runDurableObjectAlarm(stub);
    expect(await alarmView(stub)).toMatchObject({ closes: 4, alarm: deadlines[4] });
    for (const [i, c] of clients.slice(0, 6).entries()) {
      const { request: unmask } = ok(await stub.unmaskRequest(devs[i]!.identity.deviceId));
      ok(await stub.unmask(await c.unmask(unmask)));
    }
    // The unmask deadline passes: the alarm finishes the round, with the eight masked inputs in the sum.
    await sleepUntil(deadlines[4]!);
    await runDurableObjectAlarm(stub);
    const after = await runInDurableObject(stub, async (_instance, state) => ({
      alarm: await state.storage.getAlarm(),
      finished: state.storage.sql.exec<{ finished: number }>("SELECT finished FROM outcome").one().finished,
    }));
    expect(after).toEqual({ alarm: null, finished: 1 });
    const { outcome } = ok(await stub.outcome());
    expect(outcome.survivors).toEqual(
      devs
        .slice(0, 8)
        .map((d) => d.identity.deviceId)
        .sort(),
    );
    const expected = new Uint32Array(LENGTH);
    for (const d of devs.slice(0, 8)) {
      for (let j = 0; j < LENGTH; j++) expected[j] = (expected[j]! + d.input[j]!) % 2 ** BITS;
    }
    expect(Array.from(decodeVector(outcome.sum, LENGTH, BITS))).toEqual(Array.from(expected));
    expect(await stub.closeStage("unmask")).toMatchObject({ ok: true, stage: "finished" });
  }, 60_000);

  it("aborts by its alarm when too few devices answered by a deadline, and opens nothing past the first", async () => {
    const roundId = "secagg-do_6";
    const stub = secAggStub(env, roundId);
    const devs = devices(6, "doalarmabort");
    const clients = devs.map((d) => new SecAggClient({ roundId, identity: d.identity }));
    const deadlines = deadlinesIn(3000, 2000, 60_000, 60_000, 60_000);
    ok(await stub.open({ roundId, bits: BITS, length: LENGTH, stageDeadlines: deadlines }));
    for (const [i, c] of clients.entries()) {
      ok(await stub.advertise(await c.advertiseKeys(), toBase64Url(devs[i]!.identity.publicKey)));
    }
    await sleepUntil(deadlines[0]!);
    await runDurableObjectAlarm(stub);
    const { roster } = ok(await stub.roster());
    for (const c of clients.slice(0, 3)) ok(await stub.shareKeys(await c.shareKeys(roster))); // 3 of 6 share
    await sleepUntil(deadlines[1]!);
    await runDurableObjectAlarm(stub);
    const after = await runInDurableObject(stub, async (_instance, state) => ({
      alarm: await state.storage.getAlarm(),
      finished: state.storage.sql.exec<{ finished: number }>("SELECT finished FROM outcome").one().finished,
      log: state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM log").one().n,
    }));
    expect(after).toEqual({ alarm: null, finished: 0, log: 0 });
    expect(await stub.stage()).toBe("aborted");
    expect(await stub.relay(devs[0]!.identity.deviceId)).toMatchObject({ ok: false, code: "round_closed" });

    // A round whose advertise deadline has passed opens nothing and keeps no storage.
    const lateId = "secagg-do_7";
    const late = secAggStub(env, lateId);
    const past = deadlinesIn(-1000, 60_000, 60_000, 60_000, 60_000);
    expect(await late.open({ roundId: lateId, bits: BITS, length: LENGTH, stageDeadlines: past })).toMatchObject({
      ok: false,
      code: "stage_closed",
    });
    expect(await late.stage()).toBe("not_open");
  }, 30_000);
});
