/**
 * Device-side privacy through the real edge (`wrangler dev` on port 8836, fresh state) with real SDK clients
 * (@fedge/client `FedgeClient`) and the real aggregator round driver (`EdgeRoundRunner`):
 *
 * - adaptive clipping: devices with a known distribution of update norms clip on the device and report their clip
 *   bit; the aggregator's C grows from far below and settles at the γ-quantile of the norms (with the server's own
 *   count of clipped updates it could only shrink);
 * - privacy mode `none` end to end: stated in the task, taken only by devices whose policy opts in;
 * - the device's privacy policy: tasks outside it are refused and nothing reaches the edge;
 * - manifest pinning: unsigned, foreign-key and tampered manifests are refused before the model is used;
 * - update format versions 1 (no clip bit) and 2 (whole-body signature) are refused by the edge with a message naming
 *   the version.
 */
import nacl from "tweetnacl";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FedgeClient,
  PrivacyPolicyError,
  UntrustedModelError,
  memoryStorage,
  type ParticipateResult,
  type PrivacyPolicy,
} from "@fedge/client";
import { createBackend, type Backend } from "@fedge/gpu-node";
import type { MlpParams } from "@fedge/ml";
import {
  checkinSigningBytes,
  encodeUpdate,
  fromBase64Url,
  toBase64Url,
  UPDATE_MEDIA_TYPE,
  type CheckinResponse,
  type OpenRoundRequest,
  type RoundStatus,
} from "@fedge/protocol";
import { parsePopulationConfig, type PopulationConfigInput } from "fedge/config";
import { exportModel, generateSigningKey, type SigningKey } from "fedge/export";
import { EdgeAdminClient, EdgeRoundRunner, edgeRunnerStateOf } from "fedge/edge";
import { RoundEngine } from "fedge/round";
import type { LocalEdge } from "@fedge/local-edge";
import { startTestEdge, type TestEdge } from "./helpers/test-edge.ts";
import { encodeUpdateV1 } from "./helpers/update-v1.ts";

const PORT = 8836;
const ADMIN_TOKEN = `fa_${toBase64Url(crypto.getRandomValues(new Uint8Array(24)))}`;

let testEdge: TestEdge;
let edge: LocalEdge;
let key: SigningKey;
let operator: EdgeAdminClient;
let admin: EdgeAdminClient;
let backend: Backend;
let apiKey: string;

beforeAll(async () => {
  testEdge = await startTestEdge({ port: PORT, name: "device-privacy", adminToken: ADMIN_TOKEN });
  ({ edge, key, operator, admin } = testEdge);
  backend = await createBackend({ prefer: "cpu", log: () => undefined });
  apiKey = (await operator.createApiKey("device privacy e2e", 1_000_000)).key;
}, 180_000);

afterAll(async () => {
  await backend?.dispose();
  await testEdge?.stop();
});

/** A device of this app: its own identity and storage, pinned to the aggregator's key unless `pin` is false. */
function device(
  privacyPolicy?: PrivacyPolicy,
  o: { pin?: boolean; pinKey?: Uint8Array; fetch?: typeof fetch } = {},
): FedgeClient {
  return new FedgeClient({
    baseUrl: edge.url,
    apiKey,
    storage: memoryStorage(),
    platform: "e2e-node",
    ...(privacyPolicy ? { privacyPolicy } : {}),
    ...(o.pin === false ? {} : { aggregatorPublicKey: o.pinKey ?? key.publicKey }),
    ...(o.fetch ? { fetch: o.fetch } : {}),
  });
}

/** A 4 → 2 softmax regression with every weight zero. */
const zero4x2 = (): MlpParams => ({
  layers: [
    { inFeatures: 4, outFeatures: 2, weight: new Float32Array(8), bias: new Float32Array(2), activation: "none" },
  ],
});

/** Uploads `params` as version 1 (serving) of `name`, its manifest signed by `signer`, or unsigned. */
async function seed(name: string, params: MlpParams, signer: SigningKey | null = key): Promise<void> {
  const e = await exportModel({
    model: params,
    name,
    version: 1,
    backend,
    signingKey: signer ?? key,
    privacy: { epsilon: 0.5, delta: 1e-5 },
  });
  const { aggregator: _signature, ...unsigned } = e.manifest;
  await operator.uploadModelVersion(signer ? e.manifest : unsigned, e.onnx, true);
}

/** Gives `model` an edge privacy budget no test comes near (DP rounds are refused without one). */
async function budget(model: string): Promise<void> {
  const ledger = (await (await fetch(`${edge.url}/v1/populations/${model}/privacy`)).json()) as { budget: unknown };
  if (ledger.budget === null) await operator.setPrivacyBudget(model, { epsilon: 1e6, delta: 1e-5 });
}

/**
 * Opens a round of a 4 → 2 model by hand (q = 1) with `over` as the task's privacy fields. A DP round is charged its
 * mechanism (z = 1, or the devices' local noise) to the population's edge budget and keeps Poisson sampling (no
 * max_reports); a round without DP closes at 100 reports.
 */
async function openBy(model: string, over: Partial<OpenRoundRequest>): Promise<RoundStatus> {
  const mode = over.privacy_mode ?? "central";
  if (mode !== "none") await budget(model);
  return operator.openRound({
    model,
    model_version: 1,
    clip_norm: 1,
    learning_rate: 0.1,
    local_epochs: 1,
    batch_size: 4,
    privacy_mode: "central",
    trainable: "all",
    update_length: 10,
    update_dtype: "float32",
    sampling_rate: 1,
    min_reports: 1,
    ...(mode === "none"
      ? { max_reports: 100 }
      : { mechanism: { noise_multiplier: over.local_noise_multiplier ?? 1, clip_rule: "fixed" as const } }),
    duration_s: 600,
    ...over,
  });
}

const sample = { data: Float32Array.of(1, 0.5, 0, 0.25), labels: Uint8Array.of(1) };

describe("adaptive clipping through the edge", () => {
  it("C converges toward the γ-quantile of the devices' unclipped norms (device clips, signed clip bit)", async () => {
    const model = "adapt";
    // 16 devices, one example each: x = (s, 0, 0, 0), label 0. From the all-zero model (softmax (½, ½)), one SGD step
    // of learning rate 1 gives ‖Δ‖ = √((s² + 1)/2) exactly, so s = √(2n² − 1) makes the device's norm n.
    const norms = Array.from({ length: 16 }, (_, i) => 1 + 0.25 * i); // 1, 1.25, …, 4.75; median 2.875
    const devices = norms.map((n) => ({
      n,
      client: device({ maxPopulationEpsilon: 100 }),
      data: Float32Array.of(Math.sqrt(2 * n * n - 1), 0, 0, 0),
      labels: Uint8Array.of(0),
    }));
    const input: PopulationConfigInput = {
      model,
      privacy: { mode: "central", noiseMultiplier: 1, budget: { epsilon: 60, delta: 1e-5 } },
      samplingRate: 1,
      expectedClients: devices.length,
      // σ_b = m/20 = 0.8: the noised fraction b̃ has std 0.05; η_C = 1 moves C fast enough for a short test
      clipping: { clipNorm: 0.5, adaptive: { targetQuantile: 0.5, learningRate: 1 } },
      // The server step is negligible, so the model (and each device's norm) stays where it is: a known distribution.
      optimizer: { kind: "fedavg", lr: 1e-9 },
      client: { learningRate: 1, localEpochs: 1, batchSize: 1 },
      publish: { maxAccuracyDrop: 1 },
    };
    const engine = await RoundEngine.create({
      config: parsePopulationConfig(input),
      backend,
      initialModel: zero4x2(),
      log: () => undefined,
    });
    await seed(model, engine.model);
    await budget(model);
    const clip: number[] = [];
    const noisedOff: number[] = [];
    let results: ParticipateResult[] = [];
    const runner = new EdgeRoundRunner({
      engine,
      admin,
      signingKey: key,
      state: edgeRunnerStateOf(engine.config, 1),
      maxReports: devices.length,
      collect: async () => {
        results = await Promise.all(
          devices.map((d) => d.client.participate({ model, data: d.data, labels: d.labels })),
        );
      },
    });
    for (let round = 1; round <= 8; round++) {
      results = [];
      const res = await runner.runRound();
      const c = res.clipNorm!;
      clip.push(c);
      expect(res.refusedUpdates).toEqual([]);
      expect(res.accepted).toBe(devices.length);
      let reported = 0;
      results.forEach((r, i) => {
        if (!r.selected || r.status !== "uploaded") throw new Error(`device ${i}: ${JSON.stringify(r)}`);
        const s = r.stats!;
        expect(s.updateNorm).toBeCloseTo(devices[i]!.n, 4); // the known distribution
        expect(s.clipBit).toBe(s.updateNorm <= c ? 1 : 0); // b from the UNCLIPPED norm …
        if (s.updateNorm > c)
          expect(s.clipFactor).toBeLessThan(1); // … then clipped on the device
        else expect(s.clipFactor).toBe(1);
        reported += s.clipBit!;
      });
      // the aggregator counted exactly the bits the devices signed
      expect(res.unclippedCount).toBe(reported);
      expect(res.nextClipNorm).toBeGreaterThan(0);
      // The edge holds what the aggregator released: C, the next C, z, and the count noised with the charged σ_b
      // (never the exact count above); the next C is the one Alg. 1 computes from that very b̃ (η_C = 1, γ = ½).
      const release = (await admin.roundStatus(res.roundId)).release!;
      expect(release).toMatchObject({ clip_norm: c, next_clip_norm: res.nextClipNorm, noise_multiplier: 1 });
      expect(release.noise).toBe("discrete-gaussian");
      const u = release.unclipped!;
      expect(u).toMatchObject({ expected_clients: devices.length, noise_std: devices.length / 20 });
      expect(u.noised_count).toBeCloseTo(u.noised_fraction * devices.length, 9);
      expect(release.next_clip_norm).toBeCloseTo(c * Math.exp(-(u.noised_fraction - 0.5)), 9);
      noisedOff.push(u.noised_count - reported);
    }
    // The released counts carry the discrete noise (std σ_b = 0.8 on the count, on half-integers): not all exact.
    expect(noisedOff.some((d) => d !== 0)).toBe(true);
    for (const d of noisedOff) expect(Math.abs(2 * d - Math.round(2 * d))).toBeLessThan(1e-9);
    // C grew from 0.5, below every norm (a count of the clipped updates the server sees would have shrunk it) …
    expect(clip[1]!).toBeGreaterThan(clip[0]!);
    // … and the last rounds sit around the median 2.875, inside the 25 %–75 % quantile band [2, 3.75] of the norms.
    const late = clip.slice(-3);
    for (const c of late) {
      expect(c).toBeGreaterThan(2);
      expect(c).toBeLessThan(3.75);
    }
  });
});

describe("privacy mode none end to end", () => {
  it("the task says none (no clip norm); only devices that opted in train and upload, unclipped", async () => {
    const model = "plain";
    const engine = await RoundEngine.create({
      config: parsePopulationConfig({
        model,
        privacy: { mode: "none" },
        samplingRate: 1,
        expectedClients: 3,
        client: { learningRate: 1, localEpochs: 1, batchSize: 1 },
        publish: { maxAccuracyDrop: 1 },
      }),
      backend,
      initialModel: zero4x2(),
      log: () => undefined,
    });
    await seed(model, engine.model);
    const optIn = [device({ allowedModes: ["none"] }), device({ allowedModes: ["central", "local", "none"] })];
    const byDefault = device();
    const big = { data: Float32Array.of(60, 0, 0, 0), labels: Uint8Array.of(0) }; // ‖Δ‖ ≈ 42: nothing clips it
    let results: PromiseSettledResult<ParticipateResult>[] = [];
    let task: RoundStatus["params"] | undefined;
    const res = await new EdgeRoundRunner({
      engine,
      admin,
      signingKey: key,
      state: edgeRunnerStateOf(engine.config, 1),
      collect: async (status) => {
        task = status.params;
        results = await Promise.allSettled([...optIn, byDefault].map((c) => c.participate({ model, ...big })));
      },
    }).runRound();
    expect(task).toMatchObject({ privacy_mode: "none" });
    expect(task).not.toHaveProperty("clip_norm");
    expect(task).not.toHaveProperty("population_privacy");
    for (const r of results.slice(0, 2)) {
      if (r.status !== "fulfilled" || !r.value.selected || r.value.status !== "uploaded")
        throw new Error(JSON.stringify(r));
      expect(r.value.stats!.clipFactor).toBe(1);
      expect(r.value.stats!.updateNorm).toBeGreaterThan(40);
      expect(r.value.stats!.clipBit).toBeUndefined();
    }
    const refused = results[2]!;
    expect(refused.status).toBe("rejected");
    expect((refused as PromiseRejectedResult).reason).toBeInstanceOf(PrivacyPolicyError);
    expect((refused as PromiseRejectedResult).reason).toMatchObject({ reason: "mode_not_allowed" });
    expect(res).toMatchObject({ selected: 3, accepted: 2, aggregated: 2, clipNorm: null, noiseStd: 0 });
    expect(res.refusedUpdates).toEqual([]);
    expect(res.epsilon).toBeNull();
  });
});

describe("the device's privacy policy through the edge", () => {
  /** Participates and returns the error (the participation must fail). */
  async function refusal(client: FedgeClient, model: string): Promise<PrivacyPolicyError> {
    const e = await client.participate({ model, ...sample }).then(
      (r) => {
        throw new Error(`expected a refusal, got ${JSON.stringify(r)}`);
      },
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(PrivacyPolicyError);
    return e as PrivacyPolicyError;
  }

  it("refuses local noise too weak for its ε cap, uploads nothing; a device allowing it reports", async () => {
    const model = "pol-local";
    await seed(model, zero4x2());
    // z = 0.5: one report costs ε ≈ 24 (replace-one, δ = 1e-5) > the default cap 8
    const round = await openBy(model, { privacy_mode: "local", local_noise_multiplier: 0.5 });
    expect((await refusal(device(), model)).reason).toBe("epsilon_too_high");
    expect((await refusal(device({ minLocalNoiseMultiplier: 1, maxLocalEpsilon: 30 }), model)).reason).toBe(
      "noise_too_low",
    );
    expect((await refusal(device({ allowedModes: ["central"] }), model)).reason).toBe("mode_not_allowed");
    let status = await operator.roundStatus(round.round_id);
    expect(status).toMatchObject({ checked_in: 3, selected: 3, accepted: 0 });
    const willing = await device({ maxLocalEpsilon: 30 }).participate({ model, ...sample });
    expect(willing).toMatchObject({ selected: true, status: "uploaded" });
    status = await operator.roundStatus(round.round_id);
    expect(status.accepted).toBe(1);
  });

  it("refuses a central population over its ε cap, or one that states no ε", async () => {
    const model = "pol-central";
    await seed(model, zero4x2());
    const first = await openBy(model, { population_privacy: { epsilon: 2, planned_epsilon: 50, delta: 1e-5 } });
    expect((await refusal(device(), model)).reason).toBe("epsilon_too_high");
    expect((await operator.roundStatus(first.round_id)).accepted).toBe(0);
    await operator.closeRound(first.round_id);
    const second = await openBy(model, {});
    const e = await refusal(device(), model);
    expect(e.reason).toBe("epsilon_missing");
    expect(e.message).toMatch(/does not state the population's \(ε, δ\)/);
    expect((await operator.roundStatus(second.round_id)).accepted).toBe(0);
  });
});

describe("manifest pinning", () => {
  it("runs and trains on a model signed by the pinned aggregator key", async () => {
    await seed("pin-ok", zero4x2());
    const c = device();
    const local = await c.predictLocal("pin-ok", [[1, 2, 3, 4]]);
    expect(local.outputs[0]).toHaveLength(2);
    expect((await c.loadModel("pin-ok", 1)).manifest!.aggregator!.public_key).toBe(toBase64Url(key.publicKey));
  });

  it("refuses an unsigned or foreign-signed model, for predictLocal and participate, and uploads nothing", async () => {
    await seed("pin-unsigned", zero4x2(), null);
    // The edge refuses a manifest signed by a key it does not trust, so the foreign case is a device pinned to
    // another aggregator (`stranger`) than the one that signed what this edge serves.
    const stranger = generateSigningKey();
    await seed("pin-stranger", zero4x2());
    for (const [model, reason, pinKey] of [
      ["pin-unsigned", "unsigned", key.publicKey],
      ["pin-stranger", "wrong_key", stranger.publicKey],
    ] as const) {
      // the edge serves both (an operator may upload unsigned models), the pinned device does not run them
      expect(await device(undefined, { pin: false }).predictLocal(model, [[1, 2, 3, 4]])).toBeTruthy();
      const e = await device(undefined, { pinKey })
        .predictLocal(model, [[1, 2, 3, 4]])
        .catch((err: unknown) => err);
      expect(e).toBeInstanceOf(UntrustedModelError);
      expect(e).toMatchObject({ code: "untrusted_model", reason });
      const round = await openBy(model, { population_privacy: { epsilon: 1, delta: 1e-5 } });
      const p = await device(undefined, { pinKey })
        .participate({ model, ...sample })
        .catch((err: unknown) => err);
      expect(p).toMatchObject({ code: "untrusted_model", reason });
      expect((await operator.roundStatus(round.round_id)).accepted).toBe(0);
    }
  });

  it("refuses a manifest tampered with in flight, and model bytes that do not match it", async () => {
    // An adversary between the device and the edge rewrites what the edge serves.
    const tamperManifest: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      const url = String(input);
      if (!url.endsWith("/v1/models/pin-ok") && !url.endsWith("/v1/models/pin-ok/versions/1")) return res;
      const body = (await res.json()) as Record<string, unknown> & { serving?: Record<string, unknown> };
      const m = (body.serving ?? body) as Record<string, unknown>;
      m.privacy = { epsilon: 0.01, delta: 1e-5 }; // claims far less privacy spent than the aggregator signed
      return Response.json(body, { status: res.status, headers: { etag: res.headers.get("etag") ?? "" } });
    };
    for (const run of [
      (c: FedgeClient) => c.predictLocal("pin-ok", [[1, 2, 3, 4]]),
      (c: FedgeClient) => c.loadModel("pin-ok", 1),
    ]) {
      const e = await run(device(undefined, { fetch: tamperManifest })).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(UntrustedModelError);
      expect(e).toMatchObject({ reason: "bad_signature" });
    }
    const tamperBytes: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (!String(input).endsWith("/model.onnx") || res.status !== 200) return res;
      const bytes = new Uint8Array(await res.arrayBuffer());
      bytes[bytes.length - 5]! ^= 0x40;
      return new Response(bytes, { status: 200, headers: res.headers });
    };
    const e = await device(undefined, { fetch: tamperBytes })
      .loadModel("pin-ok", 1)
      .catch((err: unknown) => err);
    expect((e as { code: string }).code).toMatch(/^(integrity_error|untrusted_model)$/);
  });
});

describe("update format version", () => {
  it("the edge refuses version 1 (no clip bit) and 2 (whole-body signature) bodies with 400 naming the version; v3 is accepted", async () => {
    const model = "v1-check";
    await seed(model, zero4x2());
    const round = await openBy(model, { population_privacy: { epsilon: 1, delta: 1e-5 } });
    const keys = nacl.sign.keyPair();
    const reg = await fetch(`${edge.url}/v1/devices`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ public_key: toBase64Url(keys.publicKey), platform: "old-sdk" }),
    });
    const { device_id } = (await reg.json()) as { device_id: string };
    const timestamp = new Date().toISOString();
    const signature = toBase64Url(nacl.sign.detached(checkinSigningBytes(model, device_id, timestamp), keys.secretKey));
    const answer = (await (
      await fetch(`${edge.url}/v1/rounds/checkin`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ model, device_id, timestamp, signature }),
      })
    ).json()) as CheckinResponse;
    if (!answer.selected) throw new Error(JSON.stringify(answer));
    const nonce = fromBase64Url(answer.task.nonce);
    const values = new Float32Array(10).fill(0.1);
    const post = (body: Uint8Array) =>
      fetch(`${edge.url}/v1/rounds/${round.round_id}/updates`, {
        method: "POST",
        headers: { "content-type": UPDATE_MEDIA_TYPE, authorization: `Bearer ${apiKey}` },
        body: body as Uint8Array<ArrayBuffer>,
      });
    const old = await post(encodeUpdateV1(round.round_id, device_id, nonce, values, keys.secretKey));
    expect(old.status).toBe(400);
    const body = (await old.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("malformed_update");
    expect(body.error.message).toMatch(/update format version 1 is not supported \(this codec reads version 3 only/);
    const v3 = await encodeUpdate(
      { roundId: round.round_id, deviceId: device_id, nonce, shape: [10], payload: { dtype: "float32", values } },
      keys.secretKey,
    );
    // Version 2: the same layout with version byte 2, Ed25519 over the whole body.
    const v2 = v3.slice();
    v2[4] = 2;
    v2.set(nacl.sign.detached(v2.subarray(0, v2.length - 64), keys.secretKey), v2.length - 64);
    const refused = await post(v2);
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(
      /update format version 2 is not supported \(this codec reads version 3 only; version 2 signs the whole body/,
    );
    expect((await operator.roundStatus(round.round_id)).accepted).toBe(0);
    expect((await post(v3)).status).toBe(201);
  });
});
