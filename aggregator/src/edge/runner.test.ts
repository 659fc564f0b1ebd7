import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import nacl from "tweetnacl";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCpuBackend, type Backend } from "@fedge/gpu-node";
import type { MlpParams } from "@fedge/ml";
import {
  ModelManifest,
  UPDATE_STREAM_MEDIA_TYPE,
  encodeUpdate,
  encodeUpdateStreamFrameHeader,
  type OpenRoundRequest,
  type RoundStatus,
} from "@fedge/protocol";
import { CheckpointStore } from "../checkpoint.ts";
import { parsePopulationConfig, type PopulationConfig } from "../config.ts";
import { exportModel, generateSigningKey } from "../export.ts";
import { RoundEngine } from "../round.ts";
import { EdgeAdminClient } from "./admin-client.ts";
import { EdgeRoundRunner, type EdgeRoundRunnerOptions } from "./runner.ts";
import { edgeRunnerStateOf, loadEdgeRunnerState, type EdgeRunnerState } from "./runner-state.ts";

// The runner against the real edge (wrangler dev: resume after SIGKILL at each step, gate refusal, abandon at the
// deadline) is exercised end to end by test/aggregate-edge.test.ts; the demo drives its fleet through `collect`
// (test/e2e-demo.test.ts). Here an in-memory edge answers the admin and registry routes the runner calls.
const state: EdgeRunnerState = {
  version: 1,
  model: "m",
  config: { model: "m" },
  modelVersion: 3,
  pending: { roundId: "m_4", modelVersion: 3, nextVersion: 5, servingVersion: 2, servingAccuracy: 0.5 },
};

describe("EdgeRoundRunner options", () => {
  it("names the bad option, and refuses a state for another model", async () => {
    const backend = createCpuBackend();
    const config = parsePopulationConfig({
      model: "m",
      privacy: { mode: "none" },
      samplingRate: 1,
      expectedClients: 2,
    });
    const engine = await RoundEngine.create({
      config,
      backend,
      initialModel: {
        layers: [
          { inFeatures: 2, outFeatures: 2, weight: new Float32Array(4), bias: new Float32Array(2), activation: "none" },
        ],
      },
    });
    const base = {
      engine,
      admin: new EdgeAdminClient({ baseUrl: "http://127.0.0.1:1", adminToken: "t" }),
      signingKey: generateSigningKey(),
      state: { ...state, pending: null },
    };
    try {
      expect(() => new EdgeRoundRunner({ ...base, pollMs: 0 })).toThrow(/pollMs must be an integer ≥ 1/);
      expect(() => new EdgeRoundRunner({ ...base, pollMs: 0 })).toThrow(RangeError);
      expect(() => new EdgeRoundRunner({ ...base, durationS: 1.5 })).toThrow(/durationS/);
      expect(() => new EdgeRoundRunner({ ...base, minReports: 5, maxReports: 2 })).toThrow(/minReports must be ≤/);
      expect(() => new EdgeRoundRunner({ ...base, state: { ...base.state, model: "other" } })).toThrow(
        /runner state is for "other"/,
      );
      expect(() => new EdgeRoundRunner({ ...base, state: { ...base.state, model: "other" } })).toThrow(
        expect.objectContaining({ reason: "state_mismatch" }),
      );
      expect(new EdgeRoundRunner(base).runnerState.modelVersion).toBe(3);
    } finally {
      engine.dispose();
      await backend.dispose();
    }
  });
});

/** The routes the runner calls, answered from memory; `log` records them in order. */
class FakeEdge {
  readonly log: string[] = [];
  readonly rounds: RoundStatus[] = [];
  readonly updates = new Map<string, Uint8Array[]>();
  readonly versions = new Map<number, { manifest: ModelManifest; onnx: Uint8Array }>();
  serving: number | null = null;
  readonly fetch = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input));
    const method = init?.method ?? "GET";
    const path = url.pathname;
    this.log.push(`${method} ${path}`);
    const json = (body: unknown, status = 200) => Response.json(body, { status });
    const error = (status: number, code: string) => json({ error: { code, message: code } }, status);
    const round = (id: string) => this.rounds.find((r) => r.round_id === id);
    let m: RegExpMatchArray | null;
    if (method === "GET" && path === "/v1/admin/rounds") return json({ rounds: [...this.rounds].reverse() });
    if (method === "GET" && (m = path.match(/^\/v1\/populations\/([^/]+)\/privacy$/))) {
      // A population without DP: no budget, nothing charged (the runner reads the edge's ledger every round).
      return json({
        model: m[1],
        accountant: "rdp",
        budget: null,
        epsilon_spent: null,
        epsilon_remaining: null,
        epsilon_against_edge: null,
        delta: null,
        rounds: [],
      });
    }
    if (method === "POST" && path === "/v1/admin/rounds") {
      const req = JSON.parse(new TextDecoder().decode(init!.body as Uint8Array)) as OpenRoundRequest;
      const now = new Date().toISOString();
      const status = {
        round_id: `${req.model}_${this.rounds.length + 1}`,
        model: req.model,
        state: "collecting",
        params: req,
        opened_at: now,
        deadline: new Date(Date.now() + (req.duration_s ?? 600) * 1000).toISOString(),
        closed_at: null,
        close_reason: null,
        aggregated_at: null,
        published_version: null,
        payloads_purged_at: null,
        checked_in: 0,
        selected: 0,
        accepted: 0,
      } as unknown as RoundStatus;
      this.rounds.push(status);
      return json(status, 201);
    }
    if ((m = path.match(/^\/v1\/admin\/rounds\/([^/]+)(\/[a-z-]+)?$/))) {
      const r = round(decodeURIComponent(m[1]!));
      if (!r) return error(404, "round_not_found");
      if (method === "GET" && !m[2]) return json(r);
      if (method === "POST" && m[2] === "/close") {
        if (r.state === "collecting") Object.assign(r, { state: "closed", closed_at: new Date().toISOString() });
        return json(r);
      }
      if (method === "GET" && m[2] === "/update-stream") {
        const frames = (this.updates.get(r.round_id) ?? []).flatMap((u) => [
          encodeUpdateStreamFrameHeader(DEVICE.publicKey, u.length),
          u,
        ]);
        return new Response(new Blob(frames as Uint8Array<ArrayBuffer>[]), {
          headers: { "content-type": UPDATE_STREAM_MEDIA_TYPE },
        });
      }
      if (method === "POST" && m[2] === "/publish") {
        const { model_version } = JSON.parse(new TextDecoder().decode(init!.body as Uint8Array));
        Object.assign(r, { state: "aggregated", published_version: model_version });
        return json(r);
      }
    }
    if (method === "POST" && (m = path.match(/^\/v1\/admin\/models\/([^/]+)\/versions$/))) {
      const form = await new Request(url, {
        method,
        headers: init!.headers as Record<string, string>,
        body: init!.body as Uint8Array<ArrayBuffer>,
      }).formData();
      const manifest = ModelManifest.parse(JSON.parse(form.get("manifest") as string));
      if (this.versions.has(manifest.version)) return error(409, "conflict");
      const onnx = new Uint8Array(await (form.get("model") as File).arrayBuffer());
      this.versions.set(manifest.version, { manifest, onnx });
      if (form.get("promote") === "true") this.serving = manifest.version;
      return json({}, 201);
    }
    if (method === "POST" && path.endsWith("/serving")) {
      this.serving = JSON.parse(new TextDecoder().decode(init!.body as Uint8Array)).version;
      return json({});
    }
    if (method === "GET" && (m = path.match(/^\/v1\/models\/([^/]+)\/versions\/(\d+)\/model\.onnx$/))) {
      const v = this.versions.get(Number(m[2]));
      return v ? new Response(v.onnx as Uint8Array<ArrayBuffer>) : error(404, "version_not_found");
    }
    if (method === "GET" && (m = path.match(/^\/v1\/models\/([^/]+)\/versions\/(\d+)$/))) {
      const v = this.versions.get(Number(m[2]));
      return v ? json(v.manifest) : error(404, "version_not_found");
    }
    if (method === "GET" && (m = path.match(/^\/v1\/models\/([^/]+)$/))) {
      const versions = [...this.versions.values()].map(({ manifest: x }) => ({
        version: x.version,
        sha256: x.sha256,
        size_bytes: x.size_bytes,
        created_at: x.created_at,
        quantization: x.quantization,
      }));
      return json({
        name: decodeURIComponent(m[1]!),
        serving_version: this.serving,
        serving_history: [],
        versions,
        updated_at: new Date().toISOString(),
        serving: null,
      });
    }
    return error(404, "not_found");
  }) as typeof fetch;

  /** A device's signed update into round `roundId` (what an accepted upload leaves on the edge). */
  async accept(roundId: string, values: number[]): Promise<void> {
    const update = await encodeUpdate(
      {
        roundId,
        deviceId: `dev_${(this.updates.get(roundId)?.length ?? 0) + 1}`,
        nonce: new Uint8Array(16),
        shape: [values.length],
        payload: { dtype: "float32", values: Float32Array.from(values) },
      },
      DEVICE.secretKey,
    );
    this.updates.set(roundId, [...(this.updates.get(roundId) ?? []), update]);
    const r = this.rounds.find((x) => x.round_id === roundId)!;
    Object.assign(r, { checked_in: r.checked_in + 2, selected: r.selected + 1, accepted: r.accepted + 1 });
  }
}

const DEVICE = nacl.sign.keyPair();

describe("EdgeRoundRunner against an in-memory edge", () => {
  let backend: Backend;
  let dir: string;
  const signingKey = generateSigningKey();
  const config: PopulationConfig = parsePopulationConfig({
    model: "m",
    privacy: { mode: "none" },
    samplingRate: 1,
    expectedClients: 1,
  });
  const initialModel = () => ({
    layers: [
      {
        inFeatures: 2,
        outFeatures: 2,
        weight: new Float32Array([1, 0, 0, 1]),
        bias: new Float32Array(2),
        activation: "none" as const,
      },
    ],
  });

  beforeAll(async () => {
    backend = createCpuBackend();
    dir = await mkdtemp(join(tmpdir(), "fedge-runner-"));
  });
  afterAll(async () => {
    await backend.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  /** An edge with v1 serving, and a runner over a fresh engine (or the checkpoint in `stateDir`). */
  async function setUp(edge: FakeEdge, over: Partial<EdgeRoundRunnerOptions> = {}, stateDir?: string) {
    if (edge.versions.size === 0) {
      const seed = await exportModel({ model: initialModel(), name: "m", version: 1, backend, signingKey });
      edge.versions.set(1, { manifest: seed.manifest, onnx: seed.onnx });
      edge.serving = 1;
    }
    const store = stateDir ? new CheckpointStore({ dir: stateDir }) : undefined;
    const engine = await RoundEngine.create({
      config,
      backend,
      ...(store ? { store } : {}),
      initialModel: initialModel(),
      log: () => undefined,
    });
    const state = (stateDir ? await loadEdgeRunnerState(stateDir) : null) ?? edgeRunnerStateOf(config, 1);
    const runner = new EdgeRoundRunner({
      engine,
      admin: new EdgeAdminClient({ baseUrl: "http://edge.test", adminToken: "t", fetch: edge.fetch }),
      signingKey,
      state,
      fetch: edge.fetch,
      ...(stateDir ? { stateDir } : {}),
      ...over,
    });
    return { engine, runner };
  }

  it("runs collect while the round is open, then closes, aggregates, uploads and publishes", async () => {
    const edge = new FakeEdge();
    const seen: RoundStatus[] = [];
    const { engine, runner } = await setUp(edge, {
      collect: async (status) => {
        seen.push({ ...status });
        await edge.accept(status.round_id, [0.5, 0, 0, 0.5, 1, -1]);
      },
    });
    try {
      const r = await runner.runRound();
      expect(seen.map((s) => [s.round_id, s.state])).toEqual([["m_1", "collecting"]]);
      expect(r).toMatchObject({
        roundId: "m_1",
        outcome: "published",
        resumed: false,
        checkedIn: 2,
        selected: 1,
        accepted: 1,
        aggregated: 1,
        refusedUpdates: [],
        version: 2,
        servingVersion: 2,
        alreadyUploaded: false,
      });
      // the devices ran before the close, the close before the stream, the upload before the publish
      const order = [
        "POST /v1/admin/rounds",
        "POST /v1/admin/rounds/m_1/close",
        "GET /v1/admin/rounds/m_1/update-stream",
      ];
      const at = (step: string) => edge.log.indexOf(step);
      expect(order.map(at)).toEqual([...order.map(at)].sort((a, b) => a - b));
      expect(at("POST /v1/admin/models/m/versions")).toBeLessThan(at("POST /v1/admin/rounds/m_1/publish"));
      expect(edge.rounds[0]).toMatchObject({ state: "aggregated", published_version: 2 });
      expect(Array.from(engine.model.layers[0]!.weight)).toEqual([1.5, 0, 0, 1.5]);
      expect(runner.runnerState).toMatchObject({ modelVersion: 2, pending: null });
    } finally {
      engine.dispose();
    }
  });

  describe("the publish gate compares the candidate's int8 export with the served int8 model", () => {
    // x = (1, ±1), labelled 0 for +1 and 1 for −1.
    const heldOut = { x: new Float32Array([1, 1, 1, -1]), y: new Uint8Array([0, 1]), n: 2 };
    const gated = parsePopulationConfig({ ...config, publish: { maxAccuracyDrop: 0 } });
    /** Right on both samples in float32 AND in int8 (every weight is ±max of its column: quantized exactly). */
    const exact = () => ({
      layers: [{ ...initialModel().layers[0]!, weight: new Float32Array([0, 0, 1, -1]) }],
    });
    /**
     * Right on both samples in float32, but each output column holds one large weight, so per-channel int8
     * (scale = max|w| / 127) rounds the deciding weights ±1 to 0: the int8 model answers class 1 for both (0.5).
     */
    const lossy = () => ({
      layers: [{ ...initialModel().layers[0]!, weight: new Float32Array([1000, 1000.5, 1, -1]) }],
    });

    /** v1 = `served` serving; the engine's model is `candidate`; one device sends Δ = 0. */
    async function gateRound(served: MlpParams, candidate: MlpParams) {
      const edge = new FakeEdge();
      const seed = await exportModel({ model: served, name: "m", version: 1, backend, signingKey });
      edge.versions.set(1, { manifest: seed.manifest, onnx: seed.onnx });
      edge.serving = 1;
      const engine = await RoundEngine.create({
        config: gated,
        backend,
        initialModel: candidate,
        log: () => undefined,
      });
      const runner = new EdgeRoundRunner({
        engine,
        admin: new EdgeAdminClient({ baseUrl: "http://edge.test", adminToken: "t", fetch: edge.fetch }),
        signingKey,
        state: edgeRunnerStateOf(gated, 1),
        fetch: edge.fetch,
        heldOut,
        collect: (status) => edge.accept(status.round_id, [0, 0, 0, 0, 0, 0]),
      });
      try {
        return { r: await runner.runRound(), edge };
      } finally {
        engine.dispose();
      }
    }

    it("refuses a candidate whose float32 accuracy ties the served model but whose int8 export is worse", async () => {
      const { r, edge } = await gateRound(exact(), lossy());
      expect(r).toMatchObject({
        outcome: "refused",
        version: 2,
        servingVersion: 1,
        accuracy: 0.5,
        accuracyFp32: 1,
        servingAccuracyBefore: 1,
      });
      expect(r.reason).toMatch(/int8 accuracy would drop from 1\.0000 to 0\.5000/);
      expect(edge.serving).toBe(1);
      // the uploaded (unpromoted) version states the accuracy of its own bytes
      expect(edge.versions.get(2)!.manifest.evaluation).toEqual({ accuracy: 0.5 });
    });

    it("publishes a tie at maxAccuracyDrop 0 (not worse), and says it is a tie", async () => {
      const { r, edge } = await gateRound(exact(), exact());
      expect(r).toMatchObject({ outcome: "published", servingVersion: 2, accuracy: 1, servingAccuracyBefore: 1 });
      expect(r.reason).toMatch(/ties the serving version/);
      expect(edge.versions.get(2)!.manifest.evaluation).toEqual({ accuracy: 1 });
    });

    it("promotes an int8 candidate that beats the served int8 model", async () => {
      const { r } = await gateRound(lossy(), exact());
      expect(r).toMatchObject({ outcome: "published", accuracy: 1, servingAccuracyBefore: 0.5 });
    });
  });

  it("abandons a round that closed with fewer updates than min_reports: nothing uploaded", async () => {
    const edge = new FakeEdge();
    const { engine, runner } = await setUp(edge, { collect: async () => undefined });
    try {
      const r = await runner.runRound();
      expect(r).toMatchObject({ outcome: "abandoned", accepted: 0, aggregated: 0, servingVersion: 1 });
      expect([...edge.versions.keys()]).toEqual([1]);
      expect(edge.rounds[0]!.state).toBe("closed");
    } finally {
      engine.dispose();
    }
  });

  it("resumes after a crash right after the upload: the 409 for the same bytes counts as done", async () => {
    const edge = new FakeEdge();
    const stateDir = join(dir, "resume");
    let collected = 0;
    const collect = async (status: RoundStatus) => {
      collected += 1;
      await edge.accept(status.round_id, [0.25, 0, 0, 0.25, 0, 0]);
    };
    const crash = new Error("crash after upload");
    const first = await setUp(edge, { collect, hooks: { afterUpload: () => Promise.reject(crash) } }, stateDir);
    try {
      await expect(first.runner.runRound()).rejects.toBe(crash);
    } finally {
      first.engine.dispose();
    }
    expect([...edge.versions.keys()]).toEqual([1, 2]);
    expect(edge.rounds[0]!.state).toBe("closed");

    const again = await setUp(edge, { collect }, stateDir);
    try {
      const r = await again.runner.runRound();
      expect(r).toMatchObject({ roundId: "m_1", resumed: true, alreadyUploaded: true, version: 2, servingVersion: 2 });
      expect(r.sha256).toBe(edge.versions.get(2)!.manifest.sha256);
      expect(collected).toBe(1); // the devices were not asked again
      expect(edge.rounds).toHaveLength(1);
      expect(edge.rounds[0]).toMatchObject({ state: "aggregated", published_version: 2 });
      expect(again.engine.checkpoint.current).toBeNull();
    } finally {
      again.engine.dispose();
    }
  });
});
