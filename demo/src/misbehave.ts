/**
 * @module
 * Misbehaving simulated devices: each is a registered FedgeClient (its own Ed25519 key, its own storage) that, when
 * the edge's coin selects it, sends something a correct SDK never would. The edge must refuse every one of these
 * with a 4xx and change nothing (no accepted update, no spent nonce of an honest device):
 *
 * - `bad_signature`: a well-formed update for its own task and nonce, signed with a key the edge never saw → 401;
 * - `replay`: uploads its real update through the SDK (accepted), then a second, different update reusing the same
 *   single-use nonce → 409 `nonce_used`;
 * - `nan`: a correctly signed update with a NaN value → 400 `non_finite`;
 * - `oversize`: a correctly signed update 8× the task's length, beyond the round's byte cap → 413;
 * - `dropout`: checks in, is selected, never uploads (the fixed-denominator estimator does not care).
 */
import nacl from "tweetnacl";
import {
  encodeUpdate,
  fromBase64Url,
  quantizeUpdateInt8,
  signUpdateBytes,
  UPDATE_MEDIA_TYPE,
  type RoundTask,
  type UpdateFields,
} from "@fedge/protocol";
import type { FedgeStorage } from "@fedge/client";

export const MISBEHAVIOURS = ["bad_signature", "replay", "nan", "oversize", "dropout"] as const;
export type Misbehaviour = (typeof MISBEHAVIOURS)[number];

/** The device's own identity, read from its own SDK storage (the format of @fedge/client `device/identity`). */
export async function readOwnIdentity(storage: FedgeStorage): Promise<{ deviceId: string; secretKey: Uint8Array }> {
  const raw = await storage.get("device/identity");
  if (!raw) throw new Error("device has no identity yet: register() first");
  const j = JSON.parse(new TextDecoder().decode(raw)) as { device_id?: string; secret_key: string };
  if (!j.device_id) throw new Error("device is not registered");
  return { deviceId: j.device_id, secretKey: fromBase64Url(j.secret_key) };
}

/**
 * A signed update for `task` whose values are `values` (signed by `secretKey`), in the dtype the task asks for (int8
 * rounds get the values quantized, as the SDK sends them), so the edge refuses it for the misbehaviour itself.
 */
export function craftUpdate(
  task: RoundTask,
  deviceId: string,
  values: Float32Array,
  secretKey: Uint8Array,
): Promise<Uint8Array> {
  return encodeUpdate(
    fieldsFor(task, deviceId, task.update_dtype === "int8" ? quantizeUpdateInt8(values) : { dtype: "float32", values }),
    secretKey,
  );
}

function fieldsFor(task: RoundTask, deviceId: string, payload: UpdateFields["payload"]): UpdateFields {
  return {
    roundId: task.round_id,
    deviceId,
    nonce: fromBase64Url(task.nonce),
    shape: [payload.values.length],
    payload,
    // what a correct SDK reports in an adaptive-clipping round, so the edge refuses for the misbehaviour itself
    ...(task.report_clip_bit ? { clipBit: 1 as const } : {}),
  };
}

/** A small, valid-looking update (norm well under any clip norm). */
function smallValues(length: number, value = 1e-3): Float32Array {
  return new Float32Array(length).fill(value / Math.sqrt(length));
}

/**
 * A correctly signed update with a NaN value: encoded with a marker value (float32: the first value; int8: the scale),
 * the marker's bytes replaced by NaN, and the signature made again over the changed bytes (the codec itself refuses to
 * encode NaN).
 */
export async function craftNanUpdate(task: RoundTask, deviceId: string, secretKey: Uint8Array): Promise<Uint8Array> {
  const marker = 12345.5;
  const values = smallValues(task.update_length);
  let bytes: Uint8Array;
  if (task.update_dtype === "int8") {
    const payload = { dtype: "int8" as const, values: new Int8Array(task.update_length).fill(1), scale: marker };
    bytes = await encodeUpdate(fieldsFor(task, deviceId, payload), secretKey);
  } else {
    values[0] = marker;
    bytes = await craftUpdate(task, deviceId, values, secretKey);
  }
  const pattern = new Uint8Array(new Float32Array([marker]).buffer);
  const nan = new Uint8Array(new Float32Array([Number.NaN]).buffer);
  const end = bytes.length - 64;
  let at = -1;
  for (let i = 0; i + 4 <= end && at < 0; i++) {
    if (
      bytes[i] === pattern[0] &&
      bytes[i + 1] === pattern[1] &&
      bytes[i + 2] === pattern[2] &&
      bytes[i + 3] === pattern[3]
    )
      at = i;
  }
  if (at < 0) throw new Error("marker not found in the encoded update");
  bytes.set(nan, at);
  bytes.set(await signUpdateBytes(bytes.subarray(0, end), secretKey), end);
  return bytes;
}

/** What a misbehaving upload got back. */
export interface RefusalRecord {
  kind: Misbehaviour;
  status: number;
  code: string;
}

/** POSTs raw update bytes to the round (with the fleet's API key, as the SDK sends it) and returns the status and code. */
export async function postUpdate(
  baseUrl: string,
  apiKey: string,
  roundId: string,
  bytes: Uint8Array,
): Promise<{ status: number; code: string }> {
  const res = await fetch(`${baseUrl}/v1/rounds/${encodeURIComponent(roundId)}/updates`, {
    method: "POST",
    headers: { "content-type": UPDATE_MEDIA_TYPE, authorization: `Bearer ${apiKey}` },
    body: bytes as Uint8Array<ArrayBuffer>,
  });
  const text = await res.text();
  let code = res.ok ? "accepted" : "http_error";
  try {
    code = (JSON.parse(text) as { error?: { code?: string } }).error?.code ?? code;
  } catch {
    /* not JSON */
  }
  return { status: res.status, code };
}

/** The bytes a `bad_signature`, `nan`, `oversize` or (second upload of) `replay` device sends for `task`. */
export function misbehavingBytes(
  kind: Exclude<Misbehaviour, "dropout">,
  task: RoundTask,
  deviceId: string,
  secretKey: Uint8Array,
): Promise<Uint8Array> {
  switch (kind) {
    case "bad_signature": {
      const stranger = nacl.sign.keyPair.fromSeed(crypto.getRandomValues(new Uint8Array(32)));
      return craftUpdate(task, deviceId, smallValues(task.update_length), stranger.secretKey);
    }
    case "nan":
      return craftNanUpdate(task, deviceId, secretKey);
    case "oversize":
      return craftUpdate(task, deviceId, smallValues(task.update_length * 8), secretKey);
    case "replay":
      return craftUpdate(task, deviceId, smallValues(task.update_length, 2e-3), secretKey);
  }
}
