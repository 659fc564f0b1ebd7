/**
 * Every rejection path of update ingestion and check-in: the 4xx code AND no state change (the coordinator's SQLite
 * rows and the R2 listing are the same before and after).
 */
import { describe, expect, it } from "vitest";
import nacl from "tweetnacl";
import { checkinSigningBytes, toBase64Url, type RoundTask } from "@fedge/protocol";
import { decodeUpdate, int8PayloadNorm, quantizeUpdateInt8, signUpdateBytes } from "@fedge/protocol";
import {
  adminPost,
  checkinBody,
  checkinRaw,
  coordinatorState,
  createApiKey,
  errorCode,
  makeUpdate,
  openRound,
  registerDevice,
  storedKeys,
  taskFor,
  uniqueModel,
  upload,
  uploadOk,
  vectorWithNorm,
  type TestDevice,
} from "./rounds-helpers.ts";

/** A population with an open round (q = 1, update_length 8, C = 1) and two selected devices. */
async function setup(overrides: Parameters<typeof openRound>[1] = {}) {
  const model = uniqueModel("rej");
  const { key } = await createApiKey();
  const a = await registerDevice(key);
  const b = await registerDevice(key);
  const round = await openRound(model, overrides);
  const ta = await taskFor(a, model);
  const tb = await taskFor(b, model);
  return { model, round, a, b, ta, tb, key };
}

async function snapshot(model: string, roundId: string) {
  return { coordinator: await coordinatorState(model), r2: await storedKeys(roundId) };
}

async function expectRejected(
  res: Response,
  status: number,
  code: string,
  model: string,
  roundId: string,
  before: Awaited<ReturnType<typeof snapshot>>,
) {
  expect(res.status).toBe(status);
  expect(await errorCode(res)).toBe(code);
  expect(await snapshot(model, roundId)).toEqual(before);
}

/** Re-signs an encoded update after its bytes were changed. */
async function resign(bytes: Uint8Array, device: TestDevice): Promise<Uint8Array> {
  const n = bytes.length - 64;
  bytes.set(await signUpdateBytes(bytes.subarray(0, n), device.keys.secretKey), n);
  return bytes;
}

describe("update ingestion rejects", () => {
  it("a bad signature (signed by another key) with 401 bad_signature", async () => {
    const { model, round, a, ta } = await setup();
    const before = await snapshot(model, round.round_id);
    const forged = await makeUpdate(ta, a, { secretKey: nacl.sign.keyPair().secretKey });
    await expectRejected(await upload(round.round_id, forged), 401, "bad_signature", model, round.round_id, before);
    // A flipped payload bit under the device's real signature fails too.
    const tampered = await makeUpdate(ta, a);
    tampered[tampered.length - 70]! ^= 1;
    await expectRejected(await upload(round.round_id, tampered), 401, "bad_signature", model, round.round_id, before);
  });

  it("a replayed nonce (a second, different update) with 409 nonce_used", async () => {
    const { model, round, a, ta } = await setup();
    await uploadOk(round.round_id, await makeUpdate(ta, a));
    const before = await snapshot(model, round.round_id);
    const second = await makeUpdate(ta, a, { payload: { dtype: "float32", values: vectorWithNorm(8, 0.25) } });
    await expectRejected(await upload(round.round_id, second), 409, "nonce_used", model, round.round_id, before);
    expect(before.coordinator.updates).toBe(1);
  });

  it("another device's nonce, or one never issued, with 403 nonce_invalid", async () => {
    const { model, round, b, ta } = await setup();
    const before = await snapshot(model, round.round_id);
    const stolen = await makeUpdate(ta, b, { deviceId: b.id });
    await expectRejected(await upload(round.round_id, stolen), 403, "nonce_invalid", model, round.round_id, before);
    const made = await makeUpdate(ta, b, { deviceId: b.id, nonce: crypto.getRandomValues(new Uint8Array(16)) });
    await expectRejected(await upload(round.round_id, made), 403, "nonce_invalid", model, round.round_id, before);
  });

  it("a device that was not sampled with 403 nonce_invalid", async () => {
    const model = uniqueModel("rej");
    const { key } = await createApiKey();
    const d = await registerDevice(key);
    const round = await openRound(model, { sampling_rate: 1e-12 });
    const answer = await checkinRaw(d, checkinBody(d, model));
    expect(await answer.json()).toMatchObject({ selected: false, reason: "not_sampled", round_id: round.round_id });
    const before = await snapshot(model, round.round_id);
    const fakeTask = {
      ...round.params,
      round_id: round.round_id,
      nonce: toBase64Url(new Uint8Array(16)),
    } as unknown as RoundTask;
    const res = await upload(round.round_id, await makeUpdate(fakeTask, d));
    await expectRejected(res, 403, "nonce_invalid", model, round.round_id, before);
  });

  it("a stale round with 409 round_closed, an unknown round with 404, a body for another round with 400", async () => {
    const { model, round, a, ta } = await setup();
    await adminPost(`/v1/admin/rounds/${round.round_id}/close`);
    const next = await openRound(model);
    const before = await snapshot(model, round.round_id);
    await expectRejected(
      await upload(round.round_id, await makeUpdate(ta, a)),
      409,
      "round_closed",
      model,
      round.round_id,
      before,
    );
    const nextBefore = await snapshot(model, next.round_id);
    // The old round's update posted to the new round's URL.
    await expectRejected(
      await upload(next.round_id, await makeUpdate(ta, a)),
      400,
      "malformed_update",
      model,
      next.round_id,
      nextBefore,
    );
    await expectRejected(
      await upload(`${model}_9`, await makeUpdate(ta, a)),
      404,
      "round_not_found",
      model,
      round.round_id,
      before,
    );
    await expectRejected(
      await upload("no-such-round", await makeUpdate(ta, a)),
      404,
      "round_not_found",
      model,
      round.round_id,
      before,
    );
  });

  it("a wrong shape, length or dtype with 400 invalid_shape", async () => {
    const { model, round, a, ta } = await setup();
    const before = await snapshot(model, round.round_id);
    const short = await makeUpdate(ta, a, {
      shape: [7],
      payload: { dtype: "float32", values: vectorWithNorm(7, 0.5) },
    });
    await expectRejected(await upload(round.round_id, short), 400, "invalid_shape", model, round.round_id, before);
    const int8 = await makeUpdate(ta, a, { payload: { dtype: "int8", values: new Int8Array(8).fill(1), scale: 0.01 } });
    await expectRejected(await upload(round.round_id, int8), 400, "invalid_shape", model, round.round_id, before);
    // A 2-D shape with the right count is the same flat vector, and accepted.
    await uploadOk(round.round_id, await makeUpdate(ta, a, { shape: [2, 4] }));
  });

  it("NaN and ±Inf values with 400 non_finite", async () => {
    const { model, round, a, ta } = await setup();
    const before = await snapshot(model, round.round_id);
    for (const bad of [NaN, Infinity, -Infinity]) {
      const bytes = await makeUpdate(ta, a);
      const view = decodeUpdate(bytes);
      if (view.payload.dtype !== "float32") throw new Error("float32 expected");
      view.payload.values[3] = bad; // a view into `bytes`
      await expectRejected(
        await upload(round.round_id, await resign(bytes, a)),
        400,
        "non_finite",
        model,
        round.round_id,
        before,
      );
    }
  });

  it("an L2 norm above C with 400 norm_exceeded (central and local mode)", async () => {
    const { model, round, a, ta } = await setup({ clip_norm: 2 });
    const before = await snapshot(model, round.round_id);
    const big = await makeUpdate(ta, a, { payload: { dtype: "float32", values: vectorWithNorm(8, 2 * 1.001) } });
    await expectRejected(await upload(round.round_id, big), 400, "norm_exceeded", model, round.round_id, before);
    // Exactly at C (float32 rounding within the 1e-4 tolerance) is accepted.
    await uploadOk(
      round.round_id,
      await makeUpdate(ta, a, { payload: { dtype: "float32", values: vectorWithNorm(8, 2) } }),
    );

    // Local mode allows C + z·C·(√d + 10), not more.
    const local = await setup({ privacy_mode: "local", local_noise_multiplier: 0.5, clip_norm: 1, update_length: 100 });
    const bound = 1 * (1 + 1e-4) + 0.5 * (Math.sqrt(100) + 10);
    const lb = await snapshot(local.model, local.round.round_id);
    const over = await makeUpdate(local.ta, local.a, {
      payload: { dtype: "float32", values: vectorWithNorm(100, bound * 1.01) },
    });
    await expectRejected(
      await upload(local.round.round_id, over),
      400,
      "norm_exceeded",
      local.model,
      local.round.round_id,
      lb,
    );
    await uploadOk(
      local.round.round_id,
      await makeUpdate(local.ta, local.a, { payload: { dtype: "float32", values: vectorWithNorm(100, bound * 0.99) } }),
    );
  });

  it("an int8 update whose dequantized norm is above C (int8 rounds), and accepts one within it", async () => {
    const { model, round, a, ta, b, tb } = await setup({ update_dtype: "int8", clip_norm: 1 });
    expect(ta.update_dtype).toBe("int8");
    const before = await snapshot(model, round.round_id);
    // 8 values of 127 · scale: norm = 127 · scale · √8.
    const over = new Int8Array(8).fill(127);
    const scaleOver = 1.01 / (127 * Math.sqrt(8));
    const bad = await makeUpdate(ta, a, { payload: { dtype: "int8", values: over, scale: scaleOver } });
    await expectRejected(await upload(round.round_id, bad), 400, "norm_exceeded", model, round.round_id, before);
    const f32 = await makeUpdate(ta, a);
    await expectRejected(await upload(round.round_id, f32), 400, "invalid_shape", model, round.round_id, before);
    await uploadOk(
      round.round_id,
      await makeUpdate(ta, a, { payload: { dtype: "int8", values: over, scale: 0.99 / (127 * Math.sqrt(8)) } }),
    );
    // A device's own path: Δ clipped to exactly C, stochastic rounding with the bound kept after dequantization.
    const clipped = vectorWithNorm(8, 1);
    const payload = quantizeUpdateInt8(clipped, { maxNorm: 1, random: (buf) => crypto.getRandomValues(buf) });
    expect(int8PayloadNorm(payload)).toBeLessThanOrEqual(1);
    await uploadOk(round.round_id, await makeUpdate(tb, b, { payload }));
  });

  it("an oversize body with 413 payload_too_large, before and while reading it", async () => {
    const { model, round, a, ta } = await setup();
    const before = await snapshot(model, round.round_id);
    // A well-formed update with far more values than the round takes.
    const huge = await makeUpdate(ta, a, {
      shape: [4096],
      payload: { dtype: "float32", values: new Float32Array(4096) },
    });
    await expectRejected(await upload(round.round_id, huge), 413, "payload_too_large", model, round.round_id, before);
    // A streamed body without Content-Length is cut off at the cap.
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 8; i++) controller.enqueue(new Uint8Array(4096));
        controller.close();
      },
    });
    const { call } = await import("./rounds-helpers.ts");
    const streamed = await call(`/v1/rounds/${round.round_id}/updates`, {
      method: "POST",
      headers: { "content-type": "application/vnd.fedge.update", authorization: `Bearer ${a.apiKey}` },
      body: stream,
      // @ts-expect-error workerd accepts duplex for streamed request bodies
      duplex: "half",
    });
    await expectRejected(streamed, 413, "payload_too_large", model, round.round_id, before);
  });

  it("a malformed header with 400 malformed_update, and a wrong media type with 415", async () => {
    const { model, round, a, ta } = await setup();
    const before = await snapshot(model, round.round_id);
    const good = await makeUpdate(ta, a);
    const badMagic = good.slice();
    badMagic[0] = 0x58;
    await expectRejected(
      await upload(round.round_id, badMagic),
      400,
      "malformed_update",
      model,
      round.round_id,
      before,
    );
    await expectRejected(
      await upload(round.round_id, good.slice(0, 20)),
      400,
      "malformed_update",
      model,
      round.round_id,
      before,
    );
    const badVersion = good.slice();
    badVersion[4] = 9;
    await expectRejected(
      await upload(round.round_id, badVersion),
      400,
      "malformed_update",
      model,
      round.round_id,
      before,
    );
    await expectRejected(
      await upload(round.round_id, new Uint8Array(0)),
      400,
      "malformed_update",
      model,
      round.round_id,
      before,
    );
    await expectRejected(
      await upload(round.round_id, good, "application/octet-stream"),
      415,
      "unsupported_media_type",
      model,
      round.round_id,
      before,
    );
  });

  it("a revoked device with 403 device_revoked, at upload and at check-in", async () => {
    const { model, round, a, ta } = await setup();
    const revoked = await adminPost(`/v1/admin/devices/${a.id}/revoke`);
    expect(revoked.status).toBe(200);
    expect(await revoked.json()).toMatchObject({ device_id: a.id, revoked_at: expect.any(String) });
    const before = await snapshot(model, round.round_id);
    await expectRejected(
      await upload(round.round_id, await makeUpdate(ta, a)),
      403,
      "device_revoked",
      model,
      round.round_id,
      before,
    );
    await expectRejected(
      await checkinRaw(a, checkinBody(a, model)),
      403,
      "device_revoked",
      model,
      round.round_id,
      before,
    );
  });

  it("an unknown device with 404 device_not_found, at upload and at check-in", async () => {
    const { model, round, a, ta, key } = await setup();
    const before = await snapshot(model, round.round_id);
    const ghost: TestDevice = { id: "dev_ghostghostghostghost00", keys: nacl.sign.keyPair(), apiKey: key };
    const res = await upload(
      round.round_id,
      await makeUpdate(ta, a, { deviceId: ghost.id, secretKey: ghost.keys.secretKey }),
    );
    await expectRejected(res, 404, "device_not_found", model, round.round_id, before);
    await expectRejected(
      await checkinRaw(ghost, checkinBody(ghost, model)),
      404,
      "device_not_found",
      model,
      round.round_id,
      before,
    );
    // A device registered under another API key is unknown to this one.
    const other = await createApiKey();
    await expectRejected(
      await checkinRaw({ ...a, apiKey: other.key }, checkinBody(a, model)),
      404,
      "device_not_found",
      model,
      round.round_id,
      before,
    );
  });
});

describe("check-in rejects", () => {
  it("a stale or future timestamp with 401 stale_timestamp", async () => {
    const { model, round, b } = await setup();
    const before = await snapshot(model, round.round_id);
    for (const offset of [-6 * 60_000, 6 * 60_000]) {
      const ts = new Date(Date.now() + offset).toISOString();
      await expectRejected(
        await checkinRaw(b, checkinBody(b, model, ts)),
        401,
        "stale_timestamp",
        model,
        round.round_id,
        before,
      );
    }
  });

  it("a bad signature with 401 bad_signature and records no coin", async () => {
    const model = uniqueModel("rej");
    const { key } = await createApiKey();
    const d = await registerDevice(key);
    const round = await openRound(model);
    const before = await snapshot(model, round.round_id);
    const body = checkinBody(d, model);
    const wrong = nacl.sign.detached(checkinSigningBytes(model, d.id, body.timestamp), nacl.sign.keyPair().secretKey);
    await expectRejected(
      await checkinRaw(d, { ...body, signature: toBase64Url(wrong) }),
      401,
      "bad_signature",
      model,
      round.round_id,
      before,
    );
    // Signed for another population.
    const moved = checkinBody(d, "other-model");
    await expectRejected(await checkinRaw(d, { ...moved, model }), 401, "bad_signature", model, round.round_id, before);
    expect(before.coordinator.checkins).toBe(0);
  });

  it("a missing API key with 401", async () => {
    const { model, round, b } = await setup();
    const before = await snapshot(model, round.round_id);
    await expectRejected(
      await checkinRaw({ ...b, apiKey: "" }, checkinBody(b, model)),
      401,
      "unauthorized",
      model,
      round.round_id,
      before,
    );
  });
});
