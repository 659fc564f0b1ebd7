/**
 * Issue 17, item 5 (the edge's half): partial failures. A registration whose `createDevice` answer is lost keeps its
 * quota slot and is finished by the client's retry (same device, no second one); a revocation is one call that
 * records what it still owes (populations, the quota slot) and delivers it from its alarm.
 */
import { env, runDurableObjectAlarm } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import nacl from "tweetnacl";
import { toBase64Url } from "@fedge/protocol";
import { DeviceRegistry, deviceStub } from "../src/durable-objects/device-registry.ts";
import { adminGet, adminPost, call, createApiKey, errorCode } from "./rounds-helpers.ts";

const restore: (() => void)[] = [];
afterEach(() => {
  while (restore.length > 0) restore.pop()!();
});

/** Replaces `DeviceRegistry.prototype[name]` until the test ends. */
function patch<K extends "createDevice" | "releaseSlot">(
  name: K,
  impl: (original: DeviceRegistry[K]) => DeviceRegistry[K],
) {
  const original = DeviceRegistry.prototype[name];
  DeviceRegistry.prototype[name] = impl(original);
  restore.push(() => {
    DeviceRegistry.prototype[name] = original;
  });
}

function register(apiKey: string, publicKey: string): Promise<Response> {
  return call("/v1/devices", {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ public_key: publicKey, platform: "node" }),
  });
}

describe("partial failures", () => {
  it("a lost createDevice answer keeps the slot, and the retry finishes the same device", async () => {
    const { id, key } = await createApiKey();
    const publicKey = toBase64Url(nacl.sign.keyPair().publicKey);
    const created: string[] = [];
    let lose = true;
    patch(
      "createDevice",
      (original) =>
        async function (this: DeviceRegistry, record) {
          created.push(record.device_id);
          const ok = await original.call(this, record);
          if (lose) {
            lose = false;
            throw new Error("injected: the answer was lost after the device was stored");
          }
          return ok;
        },
    );
    const first = await register(key, publicKey);
    expect(first.status).toBe(500);
    const retry = await register(key, publicKey);
    expect(retry.status, await retry.clone().text()).toBeLessThan(300);
    const { device_id } = await retry.json<{ device_id: string }>();
    // The device the lost call created is the one the retry answers with; one slot, one device.
    expect(device_id).toBe(created[0]);
    expect(await deviceStub(env, device_id).getDevice()).toMatchObject({ device_id, public_key: publicKey });
    expect(await (await adminGet(`/v1/admin/device-quotas/${id}`)).json()).toMatchObject({ active_devices: 1 });
  });

  it("a registration whose device was never stored is finished by the retry too", async () => {
    const { id, key } = await createApiKey();
    const publicKey = toBase64Url(nacl.sign.keyPair().publicKey);
    let fail = true;
    patch(
      "createDevice",
      (original) =>
        async function (this: DeviceRegistry, record) {
          if (fail) {
            fail = false;
            throw new Error("injected: the device's registry is unreachable");
          }
          return original.call(this, record);
        },
    );
    expect((await register(key, publicKey)).status).toBe(500);
    const retry = await register(key, publicKey);
    expect(retry.status).toBeLessThan(300);
    const { device_id } = await retry.json<{ device_id: string }>();
    expect(await deviceStub(env, device_id).getDevice()).not.toBeNull();
    expect(await (await adminGet(`/v1/admin/device-quotas/${id}`)).json()).toMatchObject({ active_devices: 1 });
  });

  it("a revocation whose slot release fails answers 200 and releases the slot from its alarm", async () => {
    const { id, key } = await createApiKey();
    const res = await register(key, toBase64Url(nacl.sign.keyPair().publicKey));
    const { device_id } = await res.json<{ device_id: string }>();
    let fail = true;
    patch(
      "releaseSlot",
      (original) =>
        async function (this: DeviceRegistry, deviceId) {
          if (fail) {
            fail = false;
            throw new Error("injected: the owner instance is unreachable");
          }
          return original.call(this, deviceId);
        },
    );
    const revoked = await adminPost(`/v1/admin/devices/${device_id}/revoke`);
    expect(revoked.status).toBe(200);
    expect(await revoked.json()).toMatchObject({ device_id, revoked_at: expect.any(String) });
    const stub = deviceStub(env, device_id);
    expect(await stub.pendingRevocations()).toEqual([`owner:${id}`]);
    expect(await (await adminGet(`/v1/admin/device-quotas/${id}`)).json()).toMatchObject({ active_devices: 1 });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await stub.pendingRevocations()).toEqual([]);
    expect(await (await adminGet(`/v1/admin/device-quotas/${id}`)).json()).toMatchObject({ active_devices: 0 });
    // Revoking again changes nothing.
    const again = await adminPost(`/v1/admin/devices/${device_id}/revoke`);
    expect(again.status).toBe(200);
    expect(await errorCode(await adminPost("/v1/admin/devices/dev_nobodynobodynobody00/revoke"))).toBe(
      "device_not_found",
    );
  });
});
