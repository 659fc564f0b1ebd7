/**
 * @module
 * Devices: registered devices per API key against the key's quota, the total, and revocation: look a device up by
 * its id and revoke it (a POST with the session's CSRF token; its next check-in or upload is refused). Registration
 * totals are a property of the keys, not of any training population: nothing here says which devices took part in
 * which round.
 */
import type { FC } from "hono/jsx";
import type { DeviceInfo } from "@fedge/protocol";
import type { Bindings } from "../../env.ts";
import { listKeyIds } from "../../middleware/auth/index.ts";
import { deviceStub, ownerStub } from "../../durable-objects/device-registry.ts";
import { defaultDeviceQuota } from "../../routes/devices.ts";
import { deviceInfo } from "../../routes/admin-devices.ts";
import { CsrfField, Page, when } from "../layout.tsx";
import type { DashboardSession } from "../session.ts";

export interface KeyDevices {
  keyId: string;
  active: number;
  max: number;
}

export async function loadDeviceTotals(env: Bindings): Promise<KeyDevices[]> {
  const ids = await listKeyIds(env);
  const max = defaultDeviceQuota(env);
  return Promise.all(
    ids.map(async (keyId) => {
      const q = await ownerStub(env, keyId).getQuota(max);
      return { keyId, active: q.active_devices, max: q.max_devices };
    }),
  );
}

export async function loadDevice(env: Bindings, deviceId: string): Promise<DeviceInfo | null> {
  const record = await deviceStub(env, deviceId).getDevice();
  return record ? deviceInfo(record) : null;
}

const Device: FC<{ session: DashboardSession; device: DeviceInfo }> = ({ session, device }) => (
  <table>
    <tbody>
      <tr>
        <th>Device</th>
        <td class="mono" id="device-id">
          {device.device_id}
        </td>
      </tr>
      <tr>
        <th>API key</th>
        <td class="mono">{device.api_key_id}</td>
      </tr>
      <tr>
        <th>Platform</th>
        <td>{device.platform ?? "—"}</td>
      </tr>
      <tr>
        <th>Registered</th>
        <td>{when(device.created_at)}</td>
      </tr>
      <tr>
        <th>Status</th>
        <td id="device-status">
          {device.revoked_at === null ? (
            <span class="badge ok">active</span>
          ) : (
            <span class="badge warn">revoked {when(device.revoked_at)}</span>
          )}
        </td>
      </tr>
    </tbody>
    {device.revoked_at === null && (
      <tfoot>
        <tr>
          <td colspan={2}>
            <form method="post" action={`/dashboard/devices/${device.device_id}/revoke`}>
              <CsrfField session={session} />
              <button type="submit" class="danger" id="revoke-device">
                Revoke this device
              </button>
            </form>
          </td>
        </tr>
      </tfoot>
    )}
  </table>
);

export const DevicesPage: FC<{
  session: DashboardSession;
  totals: KeyDevices[];
  lookup: { id: string; device: DeviceInfo | null } | null;
}> = (props) => {
  const active = props.totals.reduce((s, k) => s + k.active, 0);
  return (
    <Page title="Devices" current="/dashboard/devices" session={props.session}>
      <section class="card">
        <h2>Registered devices</h2>
        <div class="stats">
          <div>
            <span class="muted">active, all keys</span>
            <b id="devices-total">{active}</b>
          </div>
          <div>
            <span class="muted">API keys</span>
            <b>{props.totals.length}</b>
          </div>
        </div>
        <table>
          <thead>
            <tr>
              <th>API key</th>
              <th class="num">Active devices</th>
              <th class="num">Quota</th>
            </tr>
          </thead>
          <tbody>
            {props.totals.map((k) => (
              <tr data-key={k.keyId}>
                <td class="mono">{k.keyId}</td>
                <td class="num">{k.active}</td>
                <td class="num">{k.max}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <section class="card">
        <h2>Find and revoke a device</h2>
        <form method="get" action="/dashboard/devices">
          <input type="text" name="device" placeholder="dev_…" value={props.lookup?.id ?? ""} aria-label="Device id" />{" "}
          <button type="submit" id="find-device">
            Find
          </button>
        </form>
        {props.lookup &&
          (props.lookup.device ? (
            <Device session={props.session} device={props.lookup.device} />
          ) : (
            <p class="error">No device {props.lookup.id}.</p>
          ))}
      </section>
    </Page>
  );
};
