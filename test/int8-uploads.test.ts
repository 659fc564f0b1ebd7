/**
 * Compressed uploads across the packages that touch them: the device pipeline (@fedge/ml `privatizeUpdate` then
 * `compressUpdate`), the codec (@fedge/protocol, v3, signed), the edge's norm check (its int8 norm is
 * `int8PayloadNorm`, workers/src/training/update-checks.ts) and the server's re-clip (the gpu-node cpu backend,
 * clipping the dequantized values). The claim: an int8 update clipped to C on the device has a dequantized norm ≤ C
 * exactly as the edge computes it, and the server's clip of what it dequantizes is exactly a no-op, so the edge and
 * the server agree and central DP's sensitivity C holds on the values the server adds before its noise.
 */
import { createBackend } from "@fedge/gpu-node";
import { compressUpdate, privatizeUpdate, xoshiroRandomBytes } from "@fedge/ml";
import {
  decodeVerifiedUpdate,
  encodeUpdate,
  int8PayloadNorm,
  quantizeUpdateInt8,
  updateToFloat32,
} from "@fedge/protocol";
import nacl from "tweetnacl";
import { afterAll, describe, expect, it } from "vitest";

const backend = await createBackend({ prefer: "cpu" });
afterAll(() => backend.dispose());
const device = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(11));

/** Δ of length n: Gaussian-ish bulk, a few large coordinates, scaled to norm `norm`. */
function delta(n: number, norm: number, random: (b: Uint8Array) => void): Float32Array {
  const raw = new Uint8Array(n);
  random(raw);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = (raw[i]! - 127.5) / 128;
  for (let i = 0; i < n; i += 997) v[i] = v[i]! * 40; // spikes make most coordinates small against the scale
  let s = 0;
  for (const x of v) s += x * x;
  const k = norm / Math.sqrt(s);
  for (let i = 0; i < n; i++) v[i] = v[i]! * k;
  return v;
}

describe("int8 uploads: the edge's norm check and the server's re-clip agree", () => {
  it("central mode: ‖deq(q)‖ ≤ C at the edge, and the server's clip to C changes nothing", async () => {
    const C = 0.8;
    const n = 20_000;
    const random = xoshiroRandomBytes(42);
    const task = { privacy_mode: "central" as const, clip_norm: C, update_dtype: "int8" as const };
    const received: Float32Array[] = [];
    for (let k = 0; k < 24; k++) {
      // Half the devices trained past C (clipped to exactly C), half stayed inside.
      const values = delta(n, k % 2 === 0 ? 3 * C : 0.9 * C, random);
      privatizeUpdate(values, task, random);
      const payload = compressUpdate(values, task, random);
      expect(payload.dtype).toBe("int8");
      const bytes = await encodeUpdate(
        { roundId: "pop_1", deviceId: `dev_${k}`, nonce: new Uint8Array(16), shape: [n], payload },
        device.secretKey,
      );
      expect(bytes.length).toBeLessThan(0.26 * (4 * n));
      const decoded = await decodeVerifiedUpdate(bytes, device.publicKey);
      if (decoded.payload.dtype !== "int8") throw new Error("int8 expected");
      // The edge: its norm of an int8 payload, with no tolerance spent.
      expect(int8PayloadNorm(decoded.payload)).toBeLessThanOrEqual(C);
      received.push(updateToFloat32(decoded));
    }
    // The server: clip to C then sum, against the plain sum (no clipping), bit for bit.
    const sum = async (clipNorm: number) => {
      const acc = await backend.createAccumulator({ length: n, clipNorm });
      await acc.add(received);
      const stats = acc.stats();
      return { out: await acc.finish({ noiseStd: 0, denominator: 1 }), stats };
    };
    const clipped = await sum(C);
    const plain = await sum(Infinity);
    expect(Buffer.from(clipped.out.buffer).equals(Buffer.from(plain.out.buffer))).toBe(true);
    for (const norm of clipped.stats.norms) expect(norm).toBeLessThanOrEqual(C * (1 + 2 ** -40));
  });

  it("without the bound, quantizing a clipped Δ can push it over C (what compressUpdate prevents)", () => {
    const C = 1;
    const random = xoshiroRandomBytes(7);
    let over = 0;
    for (let k = 0; k < 20; k++) {
      const values = delta(20_000, C, random);
      if (int8PayloadNorm(quantizeUpdateInt8(values, { random })) > C * (1 + 1e-4)) over++;
      expect(int8PayloadNorm(quantizeUpdateInt8(values, { random, maxNorm: C }))).toBeLessThanOrEqual(C);
    }
    expect(over).toBeGreaterThan(0); // the edge (tolerance 1e-4) would have refused these honest devices
  });

  it("local mode: quantization after the noise never grows the norm; float32 rounds are untouched", () => {
    const random = xoshiroRandomBytes(3);
    const task = { privacy_mode: "local" as const, clip_norm: 1, local_noise_multiplier: 0.5 };
    const values = delta(5_000, 2, random);
    privatizeUpdate(values, task, random);
    let s = 0;
    for (const x of values) s += x * x;
    const q = compressUpdate(values, { ...task, update_dtype: "int8" }, random);
    if (q.dtype !== "int8") throw new Error("int8 expected");
    expect(int8PayloadNorm(q)).toBeLessThanOrEqual(Math.sqrt(s));
    const f = compressUpdate(values, { ...task, update_dtype: "float32" }, random);
    expect(f).toEqual({ dtype: "float32", values });
  });
});
