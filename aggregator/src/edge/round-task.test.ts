import { describe, expect, it } from "vitest";
import { createBackend } from "@fedge/gpu-node";
import nacl from "tweetnacl";
import {
  OpenRoundRequest,
  UPDATE_STREAM_MEDIA_TYPE,
  encodeUpdate,
  encodeUpdateStreamFrameHeader,
  type UpdateFields,
} from "@fedge/protocol";
import { distributedSharesOf } from "@fedge/privacy";
import { EdgeAdminClient } from "./admin-client.ts";
import { parsePopulationConfig, type PopulationConfigInput } from "../config.ts";
import { RoundEngine } from "../round.ts";
import { openRoundRequest, taskPrivacyFields, verifiedUpdates } from "./round-task.ts";

// The edge round drivers (`fedge aggregate`, the demo) run end to end in test/aggregate-edge.test.ts and
// test/device-privacy-edge.test.ts; this pins the task they open.
const backend = await createBackend({ prefer: "cpu" });
const model = {
  layers: [
    {
      inFeatures: 3,
      outFeatures: 2,
      weight: new Float32Array(6),
      bias: new Float32Array(2),
      activation: "none" as const,
    },
  ],
};

async function opened(input: Omit<PopulationConfigInput, "model" | "samplingRate" | "expectedClients">) {
  const config = parsePopulationConfig({ model: "pop", samplingRate: 0.5, expectedClients: 10, ...input });
  const engine = await RoundEngine.create({ config, backend, initialModel: model, log: () => {} });
  const round = await engine.openRound("pop_1");
  return { engine, request: openRoundRequest(engine, round.instructions, { modelVersion: 3 }), round };
}

describe("openRoundRequest", () => {
  it("a non-private population opens an explicit none round: no clip norm, no ε, nothing to report", async () => {
    const { request } = await opened({ privacy: { mode: "none" } });
    expect(request.privacy_mode).toBe("none");
    expect(request).not.toHaveProperty("clip_norm");
    expect(request).not.toHaveProperty("population_privacy");
    expect(request).not.toHaveProperty("report_clip_bit");
    expect(OpenRoundRequest.safeParse(request).success).toBe(true);
  });

  it("central + adaptive: devices report their clip bit; the task states the ledger's ε and the budget", async () => {
    const { request, round, engine } = await opened({
      privacy: { mode: "central", noiseMultiplier: 1.1, budget: { epsilon: 6, delta: 1e-5 } },
      clipping: { clipNorm: 0.7, adaptive: { targetQuantile: 0.6, countNoiseStd: 5 } },
    });
    expect(request).toMatchObject({
      model: "pop",
      model_version: 3,
      privacy_mode: "central",
      clip_norm: 0.7,
      report_clip_bit: true,
      population_privacy: { epsilon: round.epsilon, planned_epsilon: 6, delta: 1e-5 },
    });
    expect(request.population_privacy!.epsilon).toBe(engine.privacySpent()!.epsilon);
    expect(request.population_privacy!.epsilon).toBeGreaterThan(0);
    expect(OpenRoundRequest.safeParse(request).success).toBe(true);
  });

  it("central with a fixed clip norm asks for no clip bit; local mode carries z and never a clip bit", async () => {
    const central = await opened({
      privacy: { mode: "central", noiseMultiplier: 1, budget: { epsilon: 6, delta: 1e-5 } },
      clipping: { clipNorm: 1 },
    });
    expect(central.request).not.toHaveProperty("report_clip_bit");
    const local = await opened({
      privacy: { mode: "local", noiseMultiplier: 2, budget: { epsilon: 60, delta: 1e-5 } },
      clipping: { clipNorm: 1 },
    });
    expect(local.request).toMatchObject({ privacy_mode: "local", clip_norm: 1, local_noise_multiplier: 2 });
    expect(local.request).not.toHaveProperty("report_clip_bit");
    expect(OpenRoundRequest.safeParse(local.request).success).toBe(true);
  });

  it("asks devices for int8 uploads by default, float32 when the population says so", async () => {
    const dp = { privacy: { mode: "central" as const, noiseMultiplier: 1, budget: { epsilon: 6, delta: 1e-5 } } };
    expect((await opened(dp)).request.update_dtype).toBe("int8");
    expect((await opened({ ...dp, updateDtype: "float32" })).request.update_dtype).toBe("float32");
  });

  it("distributed with colluding devices: the open request states them, and the edge's charge equals the engine's", async () => {
    const { request, engine } = await opened({
      privacy: {
        mode: "distributed",
        noiseMultiplier: 1,
        budget: { epsilon: 60, delta: 1e-5 },
        distributed: { bits: 20, minClients: 8, maxClients: 20, corruptFraction: 0.1 },
      },
      clipping: { clipNorm: 1 },
    });
    const noise = request.mechanism!.distributed!;
    expect(noise).toMatchObject({ noise_shares: 8, corrupt_devices: 2 }); // ⌊0.1 · 20⌋
    expect(OpenRoundRequest.safeParse(request).success).toBe(true);
    // what the edge will charge from the wire is what the engine charged its own ledger: 8 − 1 − 2 shares
    expect(distributedSharesOf(noise)).toEqual(engine.checkpoint.ledger!.rounds[0]!.distributed);
    expect(distributedSharesOf(noise).clients).toBe(5);
  });

  it("a checked-in cohort's round states n_max as the edge's cap on check-ins; a sampled one leaves it unset", async () => {
    const { engine, round, request } = await opened({
      privacy: {
        mode: "distributed",
        noiseMultiplier: 1,
        budget: { epsilon: 60, delta: 1e-5 },
        distributed: { bits: 20, minClients: 8, maxClients: 20, cohort: "sampled" },
      },
      clipping: { clipNorm: 1 },
    });
    expect(request.secure_aggregation).not.toHaveProperty("max_devices");
    const d = round.instructions.distributed!;
    // the strategy's instructions for a checked-in cohort name it beside the noise (`distributedNoiseOf`)
    const covered = { ...round.instructions, distributed: { ...d, cohort: "checked-in" } as typeof d };
    const capped = openRoundRequest(engine, covered, { modelVersion: 3 });
    expect(capped.secure_aggregation).toMatchObject({ max_devices: 20 }); // the config's maxClients
    expect(OpenRoundRequest.safeParse(capped).success).toBe(true);
    const given = openRoundRequest(engine, covered, { modelVersion: 3, secureAggregationMaxDevices: 1e6 });
    expect(given.secure_aggregation!.max_devices).toBe(65_535); // SecAgg+'s roster limit
  });

  it("taskPrivacyFields is the device's view of the instructions", () => {
    expect(taskPrivacyFields({ privacyMode: "none", clipNorm: Infinity })).toEqual({ privacy_mode: "none" });
    expect(taskPrivacyFields({ privacyMode: "central", clipNorm: 2, reportClipBit: true })).toEqual({
      privacy_mode: "central",
      clip_norm: 2,
      report_clip_bit: true,
    });
  });
});

/** A float32 update in the retired format version 1 (no clip-bit field), signed: what an old SDK uploaded. */
function encodeV1(f: UpdateFields, secretKey: Uint8Array): Uint8Array {
  const values = f.payload.values as Float32Array;
  const ascii = (t: string) => Uint8Array.from(t, (c) => c.charCodeAt(0));
  const [round, dev] = [ascii(f.roundId), ascii(f.deviceId)];
  const payloadAt = Math.ceil((31 + round.length + dev.length + 4) / 4) * 4;
  const out = new Uint8Array(payloadAt + 4 * values.length + 64);
  const view = new DataView(out.buffer);
  out.set([0x46, 0x45, 0x44, 0x55, 1, 1, 0, 0, round.length], 0);
  out.set(round, 9);
  out[9 + round.length] = dev.length;
  out.set(dev, 10 + round.length);
  out.set(f.nonce, 10 + round.length + dev.length);
  const p = 26 + round.length + dev.length;
  out[p] = 1;
  view.setUint32(p + 1, values.length, true);
  view.setUint32(p + 5, values.length, true);
  values.forEach((v, i) => view.setFloat32(payloadAt + 4 * i, v, true));
  out.set(nacl.sign.detached(out.subarray(0, out.length - 64), secretKey), out.length - 64);
  return out;
}

/**
 * The same update in the retired format version 2: version 3's layout with version byte 2, Ed25519 (tweetnacl) over
 * the whole body instead of its SHA-256 digest. What an SDK from before codec version 3 uploaded.
 */
async function encodeV2(f: UpdateFields, secretKey: Uint8Array): Promise<Uint8Array> {
  const out = await encodeUpdate(f, secretKey);
  out[4] = 2;
  out.set(nacl.sign.detached(out.subarray(0, out.length - 64), secretKey), out.length - 64);
  return out;
}

describe("verifiedUpdates (the aggregator's re-verification)", () => {
  it("refuses version 1 and 2 bodies naming their version, and a clip bit that does not match the round", async () => {
    const device = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(5));
    const fields = (deviceId: string, clipBit?: 0 | 1): UpdateFields => ({
      roundId: "pop_1",
      deviceId,
      nonce: new Uint8Array(16).fill(1),
      shape: [2],
      payload: { dtype: "float32", values: Float32Array.of(0.25, -0.5) },
      ...(clipBit === undefined ? {} : { clipBit }),
    });
    const bodies = [
      encodeV1(fields("dev_old"), device.secretKey),
      await encodeV2(fields("dev_v2", 1), device.secretKey),
      await encodeUpdate(fields("dev_nobit"), device.secretKey),
      await encodeUpdate(fields("dev_ok", 1), device.secretKey),
      await encodeUpdate(fields("dev_ok2", 0), device.secretKey),
    ];
    const frames = bodies.map((b) => {
      const h = encodeUpdateStreamFrameHeader(device.publicKey, b.length);
      const f = new Uint8Array(h.length + b.length);
      f.set(h);
      f.set(b, h.length);
      return f;
    });
    // Stands in for an edge that still holds updates uploaded before the upgrade (the current edge refuses v1/v2 bodies at
    // upload, see workers/test/ingest-privacy.test.ts): the round's status and its update stream, as the edge serves them.
    const edgeState: typeof fetch = async (input) => {
      const url = new URL(String(input));
      if (url.pathname === "/v1/admin/rounds/pop_1") return Response.json({ params: { report_clip_bit: true } });
      if (url.pathname === "/v1/admin/rounds/pop_1/update-stream") {
        return new Response(new Blob(frames as Uint8Array<ArrayBuffer>[]), {
          headers: { "content-type": UPDATE_STREAM_MEDIA_TYPE },
        });
      }
      return Response.json({ error: { code: "not_found", message: url.pathname } }, { status: 404 });
    };
    const admin = new EdgeAdminClient({ baseUrl: "http://edge.invalid", adminToken: "t", fetch: edgeState });
    const refused: { deviceId: string; reason: string }[] = [];
    const got = [];
    for await (const u of verifiedUpdates(admin, "pop_1", 2, refused)) got.push(u);
    expect(got.map((u) => [u.deviceId, u.clipBit])).toEqual([
      ["dev_ok", 1],
      ["dev_ok2", 0],
    ]);
    expect(refused).toHaveLength(3);
    expect(refused[0]!.reason).toMatch(/update format version 1 is not supported \(this codec reads version 3 only/);
    expect(refused[1]!.reason).toMatch(
      /update format version 2 is not supported \(this codec reads version 3 only; version 2 signs the whole body/,
    );
    expect(refused[2]).toEqual({ deviceId: "dev_nobit", reason: "no clip bit in an adaptive-clipping round" });
  });
});
