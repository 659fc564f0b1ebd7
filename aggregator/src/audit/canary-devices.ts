/**
 * @module
 * Canary devices against a real edge, for `fedge audit` (Andrew et al. 2024, arXiv 2302.03098 §3). Each inserted
 * canary of a {@link CanarySet} is a registered device with its own Ed25519 key (under the app's API key, as any
 * device): every round it checks in, the edge's Poisson coin decides whether it takes part, and a selected canary
 * builds its update the way the SDK does after training (`@fedge/ml` `privatizeUpdate`: clip bit, clip to C, local
 * noise in local mode; int8 when the round asks for it), signs it with the update codec and uploads it. Only the
 * training step differs: the update is the canary's direction scaled to the task's clip norm. (The aggregator may not
 * import the SDK, so the few requests are written here with the protocol's schemas and signing bytes.)
 */
import nacl from "tweetnacl";
import {
  checkinSigningBytes,
  CheckinResponse,
  encodeUpdate,
  fromBase64Url,
  RegisterDeviceResponse,
  toBase64Url,
  UPDATE_MEDIA_TYPE,
  type RoundTask,
} from "@fedge/protocol";
import { compressUpdate, privatizeUpdate } from "@fedge/ml";
import { cryptoRandomBytes, type RandomBytes } from "@fedge/privacy";
import { EdgeAdminError, EdgeClientError, type EdgeAdminClient } from "../edge/admin-client.ts";
import type { CanarySet } from "./canaries.ts";

/** Options of {@link CanaryDevices.register}. */
export interface CanaryDevicesOptions {
  baseUrl: string;
  /** The app API key devices register and report under. */
  apiKey: string;
  canaries: CanarySet;
  /** Requests in flight at most. @default 8 */
  concurrency?: number;
  /** Local noise (local mode). @default cryptoRandomBytes */
  random?: RandomBytes;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
}

/** What the canaries did in one round. */
export interface CanaryRoundResult {
  checkedIn: number;
  /** Canaries the edge's coin selected (each uploaded its update). */
  selected: number;
}

interface CanaryDevice {
  index: number;
  deviceId: string;
  keys: nacl.SignKeyPair;
}

async function inPool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** What {@link CanaryDevices.deleteAll} did. */
export interface CanaryDeletion {
  /** Canaries deleted (or found already gone). */
  deleted: number;
  /** Canaries that are still registered, each with why. */
  failed: { deviceId: string; error: Error }[];
}

/** How often a canary's delete is tried while the edge answers 503 `revocation_pending` (5 s apart). */
const DELETE_TRIES = 6;

export class CanaryDevices {
  private readonly o: CanaryDevicesOptions;
  private readonly devices: CanaryDevice[];

  private constructor(o: CanaryDevicesOptions, devices: CanaryDevice[]) {
    this.o = o;
    this.devices = devices;
  }

  /**
   * Registers one device per inserted canary (`POST /v1/devices`). When a registration fails, the canaries already
   * registered are handed to `registered` before the error is rethrown, so the caller can delete them.
   */
  static async register(
    o: CanaryDevicesOptions,
    registered: (devices: CanaryDevices) => void = () => undefined,
  ): Promise<CanaryDevices> {
    const devices: CanaryDevice[] = [];
    const self = new CanaryDevices(o, devices);
    const indices = Array.from({ length: o.canaries.count }, (_, i) => i);
    try {
      await inPool(indices, o.concurrency ?? 8, async (index) => {
        const keys = nacl.sign.keyPair.fromSeed(crypto.getRandomValues(new Uint8Array(32)));
        const res = await self.post("/v1/devices", "application/json", {
          public_key: toBase64Url(keys.publicKey),
          platform: "fedge-audit-canary",
        });
        const body = RegisterDeviceResponse.parse(res);
        devices.push({ index, deviceId: body.device_id, keys });
      });
    } finally {
      devices.sort((a, b) => a.index - b.index);
      registered(self);
    }
    return self;
  }

  /** The registered canaries' device ids, in canary order. */
  get deviceIds(): string[] {
    return this.devices.map((d) => d.deviceId);
  }

  /**
   * Deletes every canary from the edge (`DELETE /v1/admin/devices/:id`, admin token): a failed audit leaves no device
   * registered. A canary already gone counts as deleted; while the edge answers 503 `revocation_pending` (the
   * revocation has not reached every population yet) the delete is repeated after its `Retry-After`, a few times.
   */
  async deleteAll(admin: EdgeAdminClient, sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))) {
    const result: CanaryDeletion = { deleted: 0, failed: [] };
    await inPool(this.devices, this.o.concurrency ?? 8, async ({ deviceId }) => {
      for (let attempt = 1; ; attempt++) {
        try {
          await admin.deleteDevice(deviceId);
          result.deleted++;
          return;
        } catch (e) {
          if (e instanceof EdgeAdminError && e.status === 404) {
            result.deleted++;
            return;
          }
          const pending = e instanceof EdgeAdminError && e.edgeCode === "revocation_pending";
          if (!pending || attempt >= DELETE_TRIES) {
            result.failed.push({ deviceId, error: e as Error });
            return;
          }
          await sleep((e.retryAfterS ?? 5) * 1000);
        }
      }
    });
    return result;
  }

  private async post(path: string, contentType: string, body: unknown): Promise<unknown> {
    const f = this.o.fetch ?? globalThis.fetch;
    const res = await f(`${this.o.baseUrl}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${this.o.apiKey}`, "content-type": contentType },
      body: body instanceof Uint8Array ? (body as Uint8Array<ArrayBuffer>) : JSON.stringify(body),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const err = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new EdgeAdminError(res.status, err?.code ?? "internal", err?.message ?? text.slice(0, 300), "POST", path);
    }
    if (json === undefined) throw new EdgeClientError("unexpected_response", `POST ${path}: not JSON`);
    return json;
  }

  /** The signed update a selected canary sends for `task` (the SDK's post-training steps on the canary's Δ). */
  private updateBytes(device: CanaryDevice, task: RoundTask): Promise<Uint8Array> {
    if (task.update_length !== this.o.canaries.length)
      throw new EdgeClientError(
        "unexpected_response",
        `round ${task.round_id} wants ${task.update_length} values, the canaries have ${this.o.canaries.length}`,
      );
    const values = new Float32Array(task.update_length);
    // Mode none has no clip norm: a canary still has norm 1 (it is never scaled by the data).
    this.o.canaries.update(device.index, task.clip_norm ?? 1, values);
    const random = this.o.random ?? cryptoRandomBytes;
    const r = privatizeUpdate(values, task, random);
    // the device pipeline's step 5: int8 rounds get stochastic rounding with the norm bound kept after dequantization
    const payload = compressUpdate(values, task, random);
    return encodeUpdate(
      {
        roundId: task.round_id,
        deviceId: device.deviceId,
        nonce: fromBase64Url(task.nonce),
        shape: [values.length],
        payload,
        ...(r.clipBit !== undefined ? { clipBit: r.clipBit } : {}),
      },
      device.keys.secretKey,
    );
  }

  /** Every canary checks in to `model`'s open round; the selected ones upload. */
  async runRound(model: string): Promise<CanaryRoundResult> {
    let checkedIn = 0;
    let selected = 0;
    await inPool(this.devices, this.o.concurrency ?? 8, async (device) => {
      const timestamp = new Date().toISOString();
      const signature = toBase64Url(
        nacl.sign.detached(checkinSigningBytes(model, device.deviceId, timestamp), device.keys.secretKey),
      );
      const answer = CheckinResponse.parse(
        await this.post("/v1/rounds/checkin", "application/json", {
          model,
          device_id: device.deviceId,
          timestamp,
          signature,
        }),
      );
      checkedIn++;
      if (!answer.selected) return;
      selected++;
      const bytes = await this.updateBytes(device, answer.task);
      await this.post(`/v1/rounds/${encodeURIComponent(answer.task.round_id)}/updates`, UPDATE_MEDIA_TYPE, bytes);
    });
    return { checkedIn, selected };
  }
}
