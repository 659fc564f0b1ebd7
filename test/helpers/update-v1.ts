import nacl from "tweetnacl";

/**
 * A float32 update in the retired format version 1 of `application/vnd.fedge.update` (no clip-bit field: magic,
 * version 1, dtype, flags, round id, device id, nonce, rank, dims, count, padding, payload, Ed25519 signature), signed
 * with `secretKey`: what an SDK from before codec version 2 uploads.
 */
export function encodeUpdateV1(
  roundId: string,
  deviceId: string,
  nonce: Uint8Array,
  values: Float32Array,
  secretKey: Uint8Array,
): Uint8Array {
  const ascii = (t: string) => Uint8Array.from(t, (c) => c.charCodeAt(0));
  const round = ascii(roundId);
  const dev = ascii(deviceId);
  const payloadAt = Math.ceil((31 + round.length + dev.length + 4) / 4) * 4;
  const out = new Uint8Array(payloadAt + 4 * values.length + 64);
  const view = new DataView(out.buffer);
  out.set([0x46, 0x45, 0x44, 0x55, 1, 1, 0, 0, round.length], 0);
  out.set(round, 9);
  out[9 + round.length] = dev.length;
  out.set(dev, 10 + round.length);
  out.set(nonce, 10 + round.length + dev.length);
  const p = 26 + round.length + dev.length;
  out[p] = 1;
  view.setUint32(p + 1, values.length, true);
  view.setUint32(p + 5, values.length, true);
  values.forEach((v, i) => view.setFloat32(payloadAt + 4 * i, v, true));
  out.set(nacl.sign.detached(out.subarray(0, out.length - 64), secretKey), out.length - 64);
  return out;
}
