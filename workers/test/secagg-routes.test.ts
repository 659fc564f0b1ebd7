/**
 * Secure aggregation over the edge's HTTP API inside workerd: registered devices check in to a distributed round and
 * run SecAgg+ through `/v1/rounds/{id}/secagg/*` with their real SecAggClient, the admin closes each stage, some
 * devices drop, and the admin gets only the modular sum. Then every way in that must be refused.
 */
import { describe, expect, it } from "vitest";
import nacl from "tweetnacl";
import {
  SECAGG_DEVICE_HEADER,
  SECAGG_SIGNATURE_HEADER,
  SECAGG_TIMESTAMP_HEADER,
  secAggRequestSigningBytes,
  sha256Hex,
  toBase64Url,
  DEFAULT_SECAGG_STAGE_S,
  type SecAggConsistencyRequest,
  type SecAggOutcome,
  type SecAggRoster,
  type SecAggShareRelay,
  type SecAggUnmaskRequest,
} from "@fedge/protocol";
import { chooseParameters, decodeVector, SecAggClient } from "@fedge/secagg";
import {
  ADMIN,
  TEST_MECHANISM,
  adminGet,
  adminPost,
  call,
  checkin,
  createApiKey,
  distributedRoundFields,
  errorCode,
  makeUpdate,
  openRound,
  registerDevice,
  taskFor,
  uniqueModel,
  upload,
  type TestDevice,
} from "./rounds-helpers.ts";

const BITS = 16;
const LENGTH = 64;
/** The round's secure aggregation, the ring of its noise (`distributedRoundFields`): b = 16, d' = 64. */
const secureAggregation = { modulus_bits: BITS, encoded_length: LENGTH };
const distributedRound = { privacy_mode: "distributed", update_length: LENGTH } as const;

/** A device's signed secure-aggregation request (the SDK does the same). */
async function signed(
  device: TestDevice,
  method: "GET" | "POST",
  path: string,
  body?: unknown,
  o: { timestamp?: string; secretKey?: Uint8Array } = {},
): Promise<Response> {
  const bytes = body === undefined ? new Uint8Array(0) : new TextEncoder().encode(JSON.stringify(body));
  const timestamp = o.timestamp ?? new Date().toISOString();
  const toSign = secAggRequestSigningBytes(method, path, device.id, timestamp, await sha256Hex(bytes));
  const signature = nacl.sign.detached(toSign, o.secretKey ?? device.keys.secretKey);
  return call(path, {
    method,
    headers: {
      authorization: `Bearer ${device.apiKey}`,
      [SECAGG_DEVICE_HEADER]: device.id,
      [SECAGG_TIMESTAMP_HEADER]: timestamp,
      [SECAGG_SIGNATURE_HEADER]: toBase64Url(signature),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: bytes }),
  });
}

async function json<T>(res: Promise<Response>, status = 200): Promise<T> {
  const r = await res;
  expect(r.status, await r.clone().text()).toBe(status);
  return r.json<T>();
}

function clientFor(device: TestDevice, roundId: string): SecAggClient {
  return new SecAggClient({
    roundId,
    identity: {
      deviceId: device.id,
      publicKey: device.keys.publicKey,
      sign: (m) => nacl.sign.detached(m, device.keys.secretKey),
    },
  });
}

async function closeStage(roundId: string, expected: string, stage?: string): Promise<void> {
  const res = await adminPost(`/v1/admin/rounds/${roundId}/secagg/close${stage ? `?stage=${stage}` : ""}`);
  expect(res.status, await res.clone().text()).toBe(200);
  expect((await res.json<{ stage: string }>()).stage).toBe(expected);
}

describe("secure aggregation through the edge", () => {
  it("runs a distributed round with drops before and after masking; the admin gets only the modular sum", async () => {
    const model = uniqueModel("sa");
    const { key } = await createApiKey();
    const devices = await Promise.all(Array.from({ length: 9 }, () => registerDevice(key)));
    const round = await openRound(model, distributedRound);
    const roundId = round.round_id;
    const base = `/v1/rounds/${roundId}/secagg`;
    // The task states every stage's deadline: advertise ends with collecting, each later stage 60 s after the one before.
    const at = (k: number) => new Date(Date.parse(round.deadline) + k * DEFAULT_SECAGG_STAGE_S * 1000).toISOString();
    const stageDeadlines = {
      advertise: at(0),
      "share-keys": at(1),
      "masked-input": at(2),
      consistency: at(3),
      unmask: at(4),
    };
    for (const d of devices) {
      const task = await taskFor(d, model);
      expect(task.secure_aggregation).toEqual({ ...secureAggregation, stage_deadlines: stageDeadlines });
    }
    // Before the first advertisement (nothing stored yet) the device is told when advertising ends.
    expect(await json(signed(devices[0]!, "GET", base))).toEqual({
      round_id: roundId,
      stage: "not_open",
      deadline: stageDeadlines.advertise,
    });
    const clients = devices.map((d) => clientFor(d, roundId));
    const inputs = devices.map(() => new Uint32Array(LENGTH).map(() => Math.floor(Math.random() * 2 ** BITS)));

    for (const [i, c] of clients.entries())
      await json(signed(devices[i]!, "POST", `${base}/advertise`, await c.advertiseKeys()), 202);
    expect(await json(signed(devices[0]!, "GET", base))).toEqual({
      round_id: roundId,
      stage: "advertise",
      deadline: stageDeadlines.advertise,
    });
    await closeStage(roundId, "share-keys");

    const sharing = [0, 1, 2, 3, 4, 5, 6, 7]; // device 8 drops before sharing
    const roster = await json<SecAggRoster>(signed(devices[8]!, "GET", `${base}/share-keys`));
    for (const i of sharing) {
      const roster = await json<SecAggRoster>(signed(devices[i]!, "GET", `${base}/share-keys`));
      await json(signed(devices[i]!, "POST", `${base}/share-keys`, await clients[i]!.shareKeys(roster)), 202);
    }
    await closeStage(roundId, "masked-input", "share-keys");
    // A close naming a stage that has already closed changes nothing (a driver racing the deadline).
    await closeStage(roundId, "masked-input", "share-keys");
    // Device 8 shares too late: a clear 409 stage_closed, and nothing recorded.
    const late = await clients[8]!.shareKeys(roster);
    const refused = await signed(devices[8]!, "POST", `${base}/share-keys`, late);
    expect([refused.status, await errorCode(refused)]).toEqual([409, "stage_closed"]);
    expect(await json(adminGet(`/v1/admin/rounds/${roundId}/secagg`))).toMatchObject({
      stage: "masked-input",
      answered: 0,
      expected: 8,
    });

    const masking = [0, 1, 2, 3, 4, 5, 6]; // device 7 drops before masking
    for (const i of masking) {
      const relay = await json<SecAggShareRelay>(signed(devices[i]!, "GET", `${base}/masked-input`));
      const masked = await clients[i]!.maskInput(relay, inputs[i]!);
      await json(signed(devices[i]!, "POST", `${base}/masked-input`, masked), 202);
    }
    await closeStage(roundId, "consistency");

    const staying = [0, 1, 3, 4, 5, 6]; // device 2 drops after masking: 3 of 9 dropped in all
    for (const i of staying) {
      const request = await json<SecAggConsistencyRequest>(signed(devices[i]!, "GET", `${base}/consistency`));
      await json(signed(devices[i]!, "POST", `${base}/consistency`, await clients[i]!.checkConsistency(request)), 202);
    }
    await closeStage(roundId, "unmask");
    expect(await errorCode(await adminGet(`/v1/admin/rounds/${roundId}/secagg/sum`))).toBe("conflict");
    for (const i of staying) {
      const request = await json<SecAggUnmaskRequest>(signed(devices[i]!, "GET", `${base}/unmask`));
      await json(signed(devices[i]!, "POST", `${base}/unmask`, await clients[i]!.unmask(request)), 202);
    }
    await closeStage(roundId, "finished");

    const outcome = await json<SecAggOutcome>(adminGet(`/v1/admin/rounds/${roundId}/secagg/sum`));
    expect(outcome.survivors).toEqual(masking.map((i) => devices[i]!.id).sort());
    const expected = new Uint32Array(LENGTH);
    for (const i of masking) for (let j = 0; j < LENGTH; j++) expected[j] = (expected[j]! + inputs[i]![j]!) % 2 ** BITS;
    expect(Array.from(decodeVector(outcome.sum, LENGTH, BITS))).toEqual(Array.from(expected));
    expect((await json<{ stage: string }>(adminGet(`/v1/admin/rounds/${roundId}/secagg`))).stage).toBe("finished");
    // Once the round stops collecting, advertising (which ends with collecting) is refused as a closed stage.
    await json(adminPost(`/v1/admin/rounds/${roundId}/close`));
    const lateKeys = await clientFor(devices[0]!, roundId).advertiseKeys();
    const afterClose = await signed(devices[0]!, "POST", `${base}/advertise`, lateKeys);
    expect([afterClose.status, await errorCode(afterClose)]).toEqual([409, "stage_closed"]);
  });

  it("finds each device's selection on its coordinator shard when the population runs several", async () => {
    const model = uniqueModel("sash");
    const sharding = await call(`/v1/admin/populations/${model}/sharding`, {
      method: "PUT",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ shards: 4 }),
    });
    expect(sharding.status, await sharding.clone().text()).toBe(200);
    const { key } = await createApiKey();
    const devices = await Promise.all(Array.from({ length: 6 }, () => registerDevice(key)));
    const outsider = await registerDevice(key);
    const round = await openRound(model, distributedRound);
    expect(round.shards).toBe(4);
    const base = `/v1/rounds/${round.round_id}/secagg`;
    for (const d of devices) await taskFor(d, model);
    for (const d of devices) {
      await json(signed(d, "POST", `${base}/advertise`, await clientFor(d, round.round_id).advertiseKeys()), 202);
    }
    // a device of the tenant that never checked in was selected on no shard
    const refused = await signed(
      outsider,
      "POST",
      `${base}/advertise`,
      await clientFor(outsider, round.round_id).advertiseKeys(),
    );
    expect(refused.status).toBe(403);
    expect(await errorCode(refused)).toBe("forbidden");
    const status = await json<{ answered: number }>(adminGet(`/v1/admin/rounds/${round.round_id}/secagg`));
    expect(status.answered).toBe(6);
  });

  it("refuses unsigned, forged, stale, foreign, unselected, replayed and misaddressed requests, and plain uploads", async () => {
    const model = uniqueModel("sb");
    const { key } = await createApiKey();
    const [a, b, outsider] = await Promise.all([registerDevice(key), registerDevice(key), registerDevice(key)]);
    const round = await openRound(model, distributedRound);
    const roundId = round.round_id;
    const base = `/v1/rounds/${roundId}/secagg`;
    const taskA = await taskFor(a, model);
    await taskFor(b, model);
    const advertA = await clientFor(a, roundId).advertiseKeys();

    // A plain update is never accepted in a distributed round.
    expect(await errorCode(await upload(roundId, await makeUpdate(taskA, a)))).toBe("conflict");
    // No device headers: refused before anything is looked up.
    const bare = await call(`${base}/advertise`, {
      method: "POST",
      headers: { authorization: `Bearer ${a.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify(advertA),
    });
    expect(bare.status).toBe(400);
    const res = (r: Response) => errorCode(r);
    expect(await res(await signed(a, "POST", `${base}/advertise`, advertA, { secretKey: b.keys.secretKey }))).toBe(
      "bad_signature",
    );
    const old = new Date(Date.now() - 10 * 60 * 1000).toISOString();
    expect(await res(await signed(a, "POST", `${base}/advertise`, advertA, { timestamp: old }))).toBe(
      "stale_timestamp",
    );
    // Checked in? No: a registered device that the coin never selected is not a member.
    const outsiderKeys = await clientFor(outsider, roundId).advertiseKeys();
    expect(await res(await signed(outsider, "POST", `${base}/advertise`, outsiderKeys))).toBe("forbidden");
    // Device b posting device a's message.
    expect(await res(await signed(b, "POST", `${base}/advertise`, advertA))).toBe("bad_request");
    // The real thing, then its replay.
    await json(signed(a, "POST", `${base}/advertise`, advertA), 202);
    const again = await json<{ duplicate: boolean }>(signed(a, "POST", `${base}/advertise`, advertA), 200);
    expect(again.duplicate).toBe(true);
    const other = await clientFor(a, roundId).advertiseKeys();
    expect(await res(await signed(a, "POST", `${base}/advertise`, other))).toBe("conflict");
    // Out of stage.
    expect(await res(await signed(a, "GET", `${base}/share-keys`))).toBe("conflict");
    // Another tenant's device cannot even ask.
    const { key: otherKey } = await createApiKey("other-tenant");
    const foreign = await registerDevice(otherKey);
    expect(await res(await signed(foreign, "GET", base))).toBe("forbidden");
    // A central round has no secure aggregation.
    const central = uniqueModel("sc");
    const centralRound = await openRound(central);
    await checkin(a, central);
    expect(await res(await signed(a, "GET", `/v1/rounds/${centralRound.round_id}/secagg`))).toBe("conflict");
  });

  it("aborts below threshold, says so to devices and admin, and keeps the round charged", async () => {
    const model = uniqueModel("sd");
    const { key } = await createApiKey();
    const devices = await Promise.all(Array.from({ length: 6 }, () => registerDevice(key)));
    const round = await openRound(model, distributedRound);
    const roundId = round.round_id;
    const base = `/v1/rounds/${roundId}/secagg`;
    for (const d of devices) await taskFor(d, model);
    const clients = devices.map((d) => clientFor(d, roundId));
    for (const [i, c] of clients.entries())
      await json(signed(devices[i]!, "POST", `${base}/advertise`, await c.advertiseKeys()), 202);
    await closeStage(roundId, "share-keys");
    for (const i of [0, 1, 2]) {
      const roster = await json<SecAggRoster>(signed(devices[i]!, "GET", `${base}/share-keys`));
      await json(signed(devices[i]!, "POST", `${base}/share-keys`, await clients[i]!.shareKeys(roster)), 202);
    }
    const closing = await adminPost(`/v1/admin/rounds/${roundId}/secagg/close`);
    expect(closing.status).toBe(409);
    expect(await errorCode(closing)).toBe("round_closed");
    expect((await json<{ stage: string }>(signed(devices[0]!, "GET", base))).stage).toBe("aborted");
    expect(await errorCode(await signed(devices[0]!, "GET", `${base}/masked-input`))).toBe("round_closed");
    expect(await errorCode(await adminGet(`/v1/admin/rounds/${roundId}/secagg/sum`))).toBe("round_closed");
    const ledger = await (await call(`/v1/populations/${model}/privacy`)).json<{ rounds: unknown[] }>();
    expect(JSON.stringify(ledger)).toContain(roundId);
  });

  it("releases no sum with fewer masked inputs than the noise shares the round was charged for", async () => {
    const model = uniqueModel("sn");
    const { key } = await createApiKey();
    const devices = await Promise.all(Array.from({ length: 9 }, () => registerDevice(key)));
    // 9 devices tolerate 3 drops (min_survivors 6), but the charge counts 7 noise shares: the roster needs 7.
    const noise = distributedRoundFields(LENGTH).mechanism.distributed;
    const round = await openRound(model, {
      ...distributedRound,
      mechanism: { ...TEST_MECHANISM, distributed: { ...noise, noise_shares: 7 } },
    });
    const roundId = round.round_id;
    const base = `/v1/rounds/${roundId}/secagg`;
    for (const d of devices) await taskFor(d, model);
    const clients = devices.map((d) => clientFor(d, roundId));
    for (const [i, c] of clients.entries())
      await json(signed(devices[i]!, "POST", `${base}/advertise`, await c.advertiseKeys()), 202);
    await closeStage(roundId, "share-keys");
    for (const [i, c] of clients.entries()) {
      const roster = await json<SecAggRoster>(signed(devices[i]!, "GET", `${base}/share-keys`));
      expect(roster.parameters.min_survivors).toBe(7);
      await json(signed(devices[i]!, "POST", `${base}/share-keys`, await c.shareKeys(roster)), 202);
    }
    await closeStage(roundId, "masked-input");
    for (const i of [0, 1, 2, 3, 4, 5]) {
      const relay = await json<SecAggShareRelay>(signed(devices[i]!, "GET", `${base}/masked-input`));
      const masked = await clients[i]!.maskInput(relay, new Uint32Array(LENGTH).fill(1));
      await json(signed(devices[i]!, "POST", `${base}/masked-input`, masked), 202);
    }
    // 6 masked inputs ≥ SecAgg+'s 6, < the 7 shares charged: aborted, no sum, the charge stands
    const closing = await adminPost(`/v1/admin/rounds/${roundId}/secagg/close`);
    expect(closing.status).toBe(409);
    expect(await errorCode(closing)).toBe("round_closed");
    expect(await errorCode(await adminGet(`/v1/admin/rounds/${roundId}/secagg/sum`))).toBe("round_closed");
    const ledger = await (await call(`/v1/populations/${model}/privacy`)).json<{ rounds: { round_id: string }[] }>();
    expect(ledger.rounds.map((r) => r.round_id)).toContain(roundId);
  });

  it("advertises a larger degree and threshold when the round states devices that may collude with the edge", async () => {
    const { key } = await createApiKey();
    const devices = await Promise.all(Array.from({ length: 12 }, () => registerDevice(key)));
    // 5 noise shares: the charge needs noise_shares ≥ corrupt_devices + 2 for every round below
    const noise = { ...distributedRoundFields(LENGTH).mechanism.distributed, noise_shares: 5 };
    /** The roster parameters the edge advertises for these 12 devices in a round whose noise states `corrupt`. */
    const advertised = async (corrupt?: number) => {
      const model = uniqueModel("sc");
      const distributed = corrupt === undefined ? noise : { ...noise, corrupt_devices: corrupt };
      const round = await openRound(model, { ...distributedRound, mechanism: { ...TEST_MECHANISM, distributed } });
      const base = `/v1/rounds/${round.round_id}/secagg`;
      for (const d of devices) await taskFor(d, model);
      for (const d of devices) {
        await json(signed(d, "POST", `${base}/advertise`, await clientFor(d, round.round_id).advertiseKeys()), 202);
      }
      return {
        roundId: round.round_id,
        base,
        closing: await adminPost(`/v1/admin/rounds/${round.round_id}/secagg/close`),
      };
    };
    const rosterOf = async (base: string) =>
      (await json<SecAggRoster>(signed(devices[0]!, "GET", `${base}/share-keys`))).parameters;

    const honest = await advertised();
    expect(honest.closing.status).toBe(200);
    // no colluder: a sparse graph, t = k/2 + 1, as chooseParameters has always chosen for 12 devices
    expect(await rosterOf(honest.base)).toMatchObject({ devices: 12, neighbours: 10, threshold: 6 });
    expect(chooseParameters(12, BITS, LENGTH)).toMatchObject({ neighbours: 10, threshold: 6 });

    // two colluders could hold both shares of a device's secrets at t = 6 (2 + ⌈8/2⌉ ≥ 6): the edge needs k = 11, t = 7
    const colluding = await advertised(2);
    expect(colluding.closing.status).toBe(200);
    expect(await rosterOf(colluding.base)).toMatchObject({ devices: 12, neighbours: 11, threshold: 7 });

    // three cannot be tolerated by 12 devices with 4 dropping out: the round aborts before any secret is shared
    const refused = await advertised(3);
    expect(refused.closing.status).toBe(409);
    const { error } = await refused.closing.json<{ error: { code: string; message: string } }>();
    expect(error.code).toBe("round_closed");
    expect(error.message).toContain("corruptDevices: 12 devices cannot survive 4 dropouts with 3 corrupt devices");
    expect((await json<{ stage: string }>(signed(devices[0]!, "GET", refused.base))).stage).toBe("aborted");
  });
});
