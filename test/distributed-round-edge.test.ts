/**
 * A distributed-DP round end to end through the real edge (`wrangler dev` on port 8852, fresh state): the aggregator's
 * `EdgeRoundRunner` opens the round (the distributed discrete Gaussian of KLS21 with its rotation seed, and SecAgg+ in
 * the same ring), nine real SDK devices (`FedgeClient.participate()`) train, clip, rotate, round, add their noise share
 * and take part in SecAgg+ while the runner follows its stages (each closes at the deadline the task states, or early
 * once every device still in it answered); one device drops after sharing its keys (before masking) and one after
 * masking, and a device whose policy wants more noise refuses the task. The runner reads only the modular sum, decodes it (centre, unscale, inverse
 * rotation) and applies it: the model moves along the devices' clipped update, and the ε on the edge's ledger is the
 * accountant's for the noise that ran (add/remove neighbours: the released sum's threshold less the protected
 * device's own share, against the same with it), which every device finds again from its receipts and in the edge's
 * record of it; and so is the ε against the edge (zero-out at q = 1), on the edge, the aggregator and every device.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FedgeClient, PrivacyPolicyError, memoryStorage } from "@fedge/client";
import { createBackend, type Backend } from "@fedge/gpu-node";
import { clipToNorm, computeUpdate, trainDeviceDelta, type MlpParams } from "@fedge/ml";
import {
  PrivacyLedger,
  RdpAccountant,
  cryptoRandomBytes,
  distributedRdp,
  distributedSharesOf,
  getPrivacySpent,
} from "@fedge/privacy";
import { toBase64Url, type PopulationPrivacyStatus } from "@fedge/protocol";
import { parsePopulationConfig } from "fedge/config";
import { exportModel, type SigningKey } from "fedge/export";
import { EdgeAdminClient, EdgeRoundRunner, edgeRunnerStateOf, fetchModelManifest } from "fedge/edge";
import { RoundEngine } from "fedge/round";
import type { LocalEdge } from "@fedge/local-edge";
import { startTestEdge, type TestEdge } from "./helpers/test-edge.ts";

const PORT = 8852;
const ADMIN_TOKEN = `fa_${toBase64Url(crypto.getRandomValues(new Uint8Array(24)))}`;
const DEVICES = 9;
const BUDGET = { epsilon: 100, delta: 1e-5 };

let testEdge: TestEdge;
let edge: LocalEdge;
let key: SigningKey;
let operator: EdgeAdminClient;
let admin: EdgeAdminClient;
let backend: Backend;
let apiKey: string;

beforeAll(async () => {
  testEdge = await startTestEdge({ port: PORT, name: "distributed-round", adminToken: ADMIN_TOKEN });
  ({ edge, key, operator, admin } = testEdge);
  backend = await createBackend({ prefer: "cpu", log: () => undefined });
  apiKey = (await operator.createApiKey("distributed round e2e", 1_000_000)).key;
}, 180_000);

afterAll(async () => {
  await backend?.dispose();
  await testEdge?.stop();
});

/** A 4 → 2 softmax regression with every weight zero (10 trainable values, d' = 16). */
const zero4x2 = (): MlpParams => ({
  layers: [
    { inFeatures: 4, outFeatures: 2, weight: new Float32Array(8), bias: new Float32Array(2), activation: "none" },
  ],
});

/** A fetch whose POSTs to one secure-aggregation stage fail: the device drops there. */
function failingAt(stage: string): typeof fetch {
  return (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if (init?.method === "POST" && url.endsWith(`/secagg/${stage}`)) {
      return Promise.reject(new TypeError("network down"));
    }
    return fetch(input, init);
  };
}

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return ab / Math.sqrt(aa * bb);
}

describe("a distributed round through wrangler dev", () => {
  it("SDK devices add their noise shares through SecAgg+, the runner decodes the sum and charges the add/remove ε", async () => {
    const model = "ddp-e2e";
    const initial = zero4x2();
    const engine = await RoundEngine.create({
      config: parsePopulationConfig({
        model,
        privacy: {
          mode: "distributed",
          noiseMultiplier: 1,
          budget: BUDGET,
          distributed: { bits: 20, minClients: 6, maxClients: 2 * DEVICES, cohort: "sampled" },
        },
        samplingRate: 1,
        expectedClients: DEVICES,
        clipping: { clipNorm: 1 },
        optimizer: { kind: "fedavg", lr: 1 },
        client: { learningRate: 1, localEpochs: 1, batchSize: 1 },
        publish: { maxAccuracyDrop: 1 },
      }),
      backend,
      initialModel: initial,
      log: () => undefined,
    });
    const seeded = await exportModel({
      model: engine.model,
      name: model,
      version: 1,
      backend,
      signingKey: key,
      privacy: { epsilon: 0, delta: BUDGET.delta },
    });
    await operator.uploadModelVersion(seeded.manifest, seeded.onnx, true);
    await operator.setPrivacyBudget(model, BUDGET);

    // Every device holds the same example, so every clipped Δ is the same vector (‖Δ‖ = √(5/2) > C: clipped).
    const data = Float32Array.of(2, 0, 0, 0);
    const labels = Uint8Array.of(0);
    const drops = new Map<number, string>([
      [7, "masked-input"], // shared its keys, never masks
      [8, "consistency"], // masked, then gone
    ]);
    const devices = Array.from(
      { length: DEVICES },
      (_, i) =>
        new FedgeClient({
          baseUrl: edge.url,
          apiKey,
          storage: memoryStorage(),
          platform: "e2e-node",
          aggregatorPublicKey: key.publicKey,
          privacyPolicy: { allowedModes: ["distributed"], maxPopulationEpsilon: BUDGET.epsilon, maxLocalEpsilon: 30 },
          maxRetries: 0,
          ...(drops.has(i) ? { fetch: failingAt(drops.get(i)!) } : {}),
        }),
    );
    // A device whose policy allows one report at most ε = 1: the task's noise is weaker, so it refuses before training.
    const strict = new FedgeClient({
      baseUrl: edge.url,
      apiKey,
      storage: memoryStorage(),
      platform: "e2e-node",
      aggregatorPublicKey: key.publicKey,
      privacyPolicy: { allowedModes: ["distributed"], maxPopulationEpsilon: BUDGET.epsilon, maxLocalEpsilon: 1 },
    });
    let refusal: unknown;
    let settled: PromiseSettledResult<unknown>[] = [];
    const runner = new EdgeRoundRunner({
      engine,
      admin,
      signingKey: key,
      state: edgeRunnerStateOf(engine.config, 1),
      // Advertising ends with collecting; the stages devices drop in end at their deadlines, the others early.
      durationS: 20,
      secureAggregationStageS: { "share-keys": 10, "masked-input": 6, consistency: 6, unmask: 30 },
      secureAggregation: { pollMs: 100 },
      collect: async () => {
        refusal = await strict.participate({ model, data, labels }).catch((e: unknown) => e);
        settled = await Promise.allSettled(
          devices.map((d) =>
            d.participate({ model, data, labels, secureAggregation: { pollMs: 100, timeoutMs: 120_000 } }),
          ),
        );
      },
    });
    const result = await runner.runRound();

    // The seven devices that stayed finished; the two that dropped were told so.
    const statuses = settled.map((s) => (s.status === "fulfilled" ? (s.value as { status: string }).status : "failed"));
    expect(statuses).toEqual([...Array(7).fill("aggregated"), "failed", "failed"]);
    expect(refusal).toBeInstanceOf(PrivacyPolicyError);
    expect((refusal as PrivacyPolicyError).reason).toBe("epsilon_too_high");
    expect(result.outcome === "published" || result.outcome === "refused", JSON.stringify(result)).toBe(true);
    // The sum holds the 8 devices that masked (the one that dropped after masking included); noise shares ≥ 6.
    expect(result.aggregated).toBe(8);

    // The model moved along the devices' clipped update: (8/9)·Δc plus the decoded noise (σ = z·C/9 per value).
    const expected = trainDeviceDelta({
      params: initial,
      task: { learning_rate: 1, local_epochs: 1, batch_size: 1, trainable: "all" },
      data,
      labels,
      random: cryptoRandomBytes,
    }).values;
    clipToNorm(expected, 1);
    const moved = computeUpdate(initial, engine.model, "all");
    expect(cosine(moved, expected), Array.from(moved).join(",")).toBeGreaterThan(0.6);
    // the new model is on the edge as version 2, its manifest stating the edge's ε
    const v2 = await fetchModelManifest(edge.url, model, 2);
    expect(v2?.privacy?.epsilon).toBe(result.epsilon);

    // ε: the edge charged the add/remove bound for the noise that ran; the aggregator's accountant and the result agree.
    const status = (await (
      await fetch(`${edge.url}/v1/populations/${model}/privacy`)
    ).json()) as PopulationPrivacyStatus;
    const charged = status.rounds[0]!;
    expect(charged).toMatchObject({ privacy_mode: "distributed", round_id: result.roundId });
    const ledger = new PrivacyLedger({ population: model, accountant: "rdp" });
    ledger.record({
      roundId: charged.round_id,
      sampleRate: 1,
      noiseMultiplier: 1,
      mode: "distributed",
      openedAt: charged.charged_at,
      distributed: distributedSharesOf(charged.distributed!),
    });
    expect(status.epsilon_spent).toBeCloseTo(ledger.spent(BUDGET.delta), 9);
    expect(engine.privacySpent()!.epsilon).toBeCloseTo(status.epsilon_spent!, 9);
    expect(result.epsilon).toBe(status.epsilon_spent);
    expect(charged.distributed!.noise_shares).toBe(6);
    // Charged: the 6 inputs a sum is released with, less the protected device's own share (5); counting it, ε is lower.
    expect(ledger.rounds[0]!.distributed!.clients).toBe(5);
    const counted = new PrivacyLedger({ population: model, accountant: "rdp" });
    counted.record({ ...ledger.rounds[0]!, distributed: { ...ledger.rounds[0]!.distributed!, clients: 6 } });
    expect(counted.spent(BUDGET.delta)).toBeLessThan(status.epsilon_spent!);
    // The charge is for add/remove neighbours (the device's share leaves the sum with it): above the mean shift of
    // the same 5 shares alone, which is what the ledger charged while it left the variance term out.
    const orders = new RdpAccountant().orders;
    const meanShiftOnly = orders.map((a) => distributedRdp(ledger.rounds[0]!.distributed!, a));
    expect(status.epsilon_spent!).toBeGreaterThan(getPrivacySpent(orders, meanShiftOnly, BUDGET.delta).epsilon);
    // Against the edge (it flips the coins and sees who takes part): zero-out at q = 1 with the device's own share,
    // the same number on the edge's public account, the aggregator's ledger and (below) every device's two views.
    const againstEdge = ledger.spentAgainstEdge(BUDGET.delta);
    const zeroOut = orders.map((a) => distributedRdp({ ...ledger.rounds[0]!.distributed!, clients: 6 }, a));
    expect(againstEdge).toBeCloseTo(getPrivacySpent(orders, zeroOut, BUDGET.delta).epsilon, 10);
    expect(status.epsilon_against_edge).toBeCloseTo(againstEdge, 9);
    expect(engine.privacySpentAgainstEdge()).toBeCloseTo(status.epsilon_against_edge!, 9);

    // Each device sees the noise that protected it and the same ε: its own receipts (client.privacy()), the edge's
    // record of it (GET /v1/devices/:id/privacy) and the population's ledger agree, the dropped devices included.
    const shareVariance = charged.distributed!.share_variance;
    const scale = charged.distributed!.scale;
    for (const device of [...devices, strict]) {
      const [own] = await device.privacy();
      expect(own).toMatchObject({ model, rounds: 1, declinedRounds: 0 });
      expect(own!.epsilon).toBeCloseTo(status.epsilon_spent!, 12);
      expect(own!.epsilonAgainstEdge).toBeCloseTo(status.epsilon_against_edge!, 12);
      const record = await device.edgePrivacyRecord();
      const entry = record.populations.find((p) => p.model === model)!;
      expect(entry.epsilon).toBe(status.epsilon_spent);
      expect(entry.epsilon_against_edge).toBe(status.epsilon_against_edge);
      expect(entry.rounds).toHaveLength(1);
      expect(entry.rounds[0]!.distributed).toEqual({
        ...charged.distributed,
        guaranteed_shares: 5,
        guaranteed_noise_std: Math.sqrt(5 * shareVariance) / scale,
      });
    }
    // the guaranteed noise: 5 of the 9 expected shares of σ = z·C = 1, i.e. at least √(5/9)
    const std = Math.sqrt(5 * shareVariance) / scale;
    expect(std).toBeGreaterThanOrEqual(Math.sqrt(5 / 9));
    expect(std).toBeLessThan(Math.sqrt(5 / 9) * 1.001);
  }, 300_000);
});
