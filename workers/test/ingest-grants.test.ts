/**
 * Uploads that skip the coordinator's preflight: the isolate that answered a device's check-in remembers its key, nonce
 * and tenant (training/checkin-grants.ts), and the coordinator's commit then checks what the preflight would have. A
 * commit refused there accepts nothing, and the route removes the payload it stored.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { decodeUpdate, toBase64Url, updateDigestHex } from "@fedge/protocol";
import {
  CHECKIN_GRANTS_MAX,
  forgetGrant,
  grantFor,
  rememberGrant,
  type CheckinGrant,
} from "../src/training/checkin-grants.ts";
import { updateStorageKey } from "../src/durable-objects/update-store.ts";
import {
  adminPost,
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
} from "./rounds-helpers.ts";

const grant = (nonce: string, tenant = "default"): CheckinGrant => ({
  publicKey: "pk",
  apiKeyId: "key1",
  nonce,
  tenant,
});

describe("check-in grants", () => {
  it("match an upload only with the nonce and tenant of the check-in, and are forgotten when spent", () => {
    const round = uniqueModel("grant") + "_1";
    rememberGrant(round, "dev_a", grant("n-a"));
    expect(grantFor(round, "dev_a", "n-a", "default")).toEqual(grant("n-a"));
    expect(grantFor(round, "dev_a", "n-b", "default")).toBeNull();
    expect(grantFor(round, "dev_a", "n-a", "acme")).toBeNull();
    expect(grantFor(round, "dev_b", "n-a", "default")).toBeNull();
    expect(grantFor(`${round}0`, "dev_a", "n-a", "default")).toBeNull();
    forgetGrant(round, "dev_a");
    expect(grantFor(round, "dev_a", "n-a", "default")).toBeNull();
  });

  it(`keep at most ${CHECKIN_GRANTS_MAX} per isolate, dropping the oldest`, () => {
    const round = uniqueModel("bound") + "_1";
    for (let i = 0; i <= CHECKIN_GRANTS_MAX; i++) rememberGrant(round, `dev_${i}`, grant(`n-${i}`));
    expect(grantFor(round, "dev_0", "n-0", "default")).toBeNull();
    expect(grantFor(round, "dev_1", "n-1", "default")).not.toBeNull();
    expect(grantFor(round, `dev_${CHECKIN_GRANTS_MAX}`, `n-${CHECKIN_GRANTS_MAX}`, "default")).not.toBeNull();
  });
});

describe("a commit that skipped the preflight", () => {
  /** A device checked in to a fresh round, its update, and the commit input the route would send. */
  async function checkedIn() {
    const model = uniqueModel("grantc");
    const { key } = await createApiKey();
    const device = await registerDevice(key);
    const round = await openRound(model);
    const task = await taskFor(device, model);
    const bytes = await makeUpdate(task, device);
    const sha256 = await updateDigestHex(bytes);
    const storageKey = updateStorageKey(round.round_id, device.id, sha256);
    const input = {
      roundId: round.round_id,
      deviceId: device.id,
      nonce: toBase64Url(decodeUpdate(bytes).nonce),
      sha256,
      payload: bytes,
      publicKey: toBase64Url(device.keys.publicKey),
      storageKey,
      now: Date.now(),
      unchecked: { tenant: "default" },
    };
    return { model, round, device, task, bytes, input, coordinator: env.ROUNDS.getByName(model) };
  }

  it("is refused under a key other than the one the device checked in with, and for another tenant, accepting nothing", async () => {
    const { model, input, coordinator } = await checkedIn();
    const before = await coordinatorState(model);
    const other = await coordinator.commitUpload({ ...input, publicKey: toBase64Url(new Uint8Array(32).fill(7)) });
    expect(other).toMatchObject({ ok: false, code: "bad_signature", status: 401 });
    const tenant = await coordinator.commitUpload({ ...input, unchecked: { tenant: "acme" } });
    expect(tenant).toMatchObject({ ok: false, code: "forbidden", status: 403 });
    expect(await coordinatorState(model)).toEqual(before);
    // The same commit under the device's own key and tenant is accepted.
    expect(await coordinator.commitUpload(input)).toMatchObject({ ok: true, receipt: { duplicate: false } });
    expect((await coordinatorState(model)).updates).toBe(before.updates + 1);
  });

  it("when the round closed after the check-in: the upload is 409 round_closed and nothing is stored", async () => {
    const { model, round, bytes } = await checkedIn();
    expect((await adminPost(`/v1/admin/rounds/${round.round_id}/close`)).status).toBe(200);
    const before = await coordinatorState(model);
    const res = await upload(round.round_id, bytes);
    expect(res.status).toBe(409);
    expect(await errorCode(res)).toBe("round_closed");
    expect(await coordinatorState(model)).toEqual(before);
    expect(await storedKeys(round.round_id)).toEqual([]);
  });

  it("spends the grant: a resend is answered with the first receipt, a second update is 409 nonce_used", async () => {
    const { model, round, device, task, bytes } = await checkedIn();
    const first = await uploadOk(round.round_id, bytes);
    const again = await upload(round.round_id, bytes);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ ...first, duplicate: true });
    const second = await makeUpdate(task, device, {
      payload: { dtype: "float32", values: new Float32Array(task.update_length).fill(0.01) },
    });
    const refused = await upload(round.round_id, second);
    expect(refused.status).toBe(409);
    expect(await errorCode(refused)).toBe("nonce_used");
    expect((await coordinatorState(model)).updates).toBe(1);
    expect(await storedKeys(round.round_id)).toEqual([updateStorageKey(round.round_id, device.id, first.sha256)]);
  });
});
