/**
 * A DP round on a sharded population, end to end against the real edge (`wrangler dev`, fresh state): the operator
 * gives the population 4 coordinator shards, real devices (@fedge/client) check in and upload to the shards the edge
 * maps them to, and `fedge aggregate` streams the updates from every shard, charges the population's ledger once and
 * publishes the next version.
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FedgeClient, memoryStorage } from "@fedge/client";
import { createBackend, type Backend } from "@fedge/gpu-node";
import { toBase64Url, type AcceptedUpdatePage, type RoundStatus } from "@fedge/protocol";
import { createAccountant } from "@fedge/privacy";
import { exportModel, type SigningKey } from "fedge";
import { loadMnist } from "fedge/data";
import { runCli } from "fedge/cli";
import { EdgeAdminClient } from "fedge/edge";
import type { LocalEdge } from "@fedge/local-edge";
import { startTestEdge, type TestEdge } from "./helpers/test-edge.ts";
import { zeroMnistRegression } from "./helpers/zero-model.ts";

const PORT = 8844;
const DEVICES = 12;
const SHARDS = 4;
const MODEL = "sharded-dp";
const ADMIN_TOKEN = `fa_${toBase64Url(crypto.getRandomValues(new Uint8Array(24)))}`;

let testEdge: TestEdge;
let dir: string;
let edge: LocalEdge;
let key: SigningKey;
let operator: EdgeAdminClient;
let backend: Backend;
let devices: { client: FedgeClient; x: Float32Array; y: Uint8Array }[];

beforeAll(async () => {
  testEdge = await startTestEdge({
    port: PORT,
    name: "sharded-e2e",
    adminToken: ADMIN_TOKEN,
    aggregatorKeyFile: path.join("cp", "aggregator-key.json"),
  });
  ({ dir, edge, key, operator } = testEdge);
  backend = await createBackend({ prefer: "cpu", log: () => undefined });
  const apiKey = (await operator.createApiKey("sharded e2e devices", 1_000_000)).key;
  const { train } = loadMnist();
  const per = 50;
  devices = Array.from({ length: DEVICES }, (_, i) => ({
    client: new FedgeClient({
      baseUrl: edge.url,
      apiKey,
      storage: memoryStorage(),
      platform: "e2e-node",
      privacyPolicy: { allowedModes: ["central"], maxPopulationEpsilon: 100 },
      aggregatorPublicKey: key.publicKey,
    }),
    x: train.x.slice(i * per * 784, (i + 1) * per * 784),
    y: train.y.slice(i * per, (i + 1) * per),
  }));
  await Promise.all(devices.map((d) => d.client.register()));
}, 180_000);

afterAll(async () => {
  await backend?.dispose();
  await testEdge?.stop();
});

async function latestRound(): Promise<RoundStatus | undefined> {
  const res = await operator.request("GET", `/v1/admin/rounds?model=${MODEL}&limit=1`);
  return ((await res.json()) as { rounds: RoundStatus[] }).rounds[0];
}

describe("a sharded population against wrangler dev", () => {
  it("runs a DP round on 4 shards: every shard's updates aggregated, the ledger charged once", async () => {
    const e = await exportModel({ model: zeroMnistRegression(), name: MODEL, version: 1, backend, signingKey: key });
    await operator.uploadModelVersion(e.manifest, e.onnx, true);
    await operator.setPrivacyBudget(MODEL, { epsilon: 100, delta: 1e-5 });
    expect(await operator.setSharding(MODEL, { shards: SHARDS })).toMatchObject({ shards: SHARDS });

    const config = path.join(dir, "config.json");
    await writeFile(
      config,
      JSON.stringify({
        model: MODEL,
        privacy: { mode: "central", noiseMultiplier: 1, budget: { epsilon: 100, delta: 1e-5 } },
        samplingRate: 1,
        expectedClients: DEVICES,
        clipping: { clipNorm: 1 },
        client: { learningRate: 0.1, localEpochs: 1, batchSize: 32 },
        publish: { maxAccuracyDrop: 1 },
      }),
    );
    let stdout = "";
    let stderr = "";
    const run = runCli(
      [
        "aggregate",
        ...["--edge", edge.url, "--config", config, "--checkpoint-dir", path.join(dir, "cp")],
        ...["--round-duration-s", "120", "--wait-poll-ms", "100", "--backend", "cpu"],
      ],
      { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) },
    );
    const until = Date.now() + 60_000;
    let round = await latestRound();
    while (!round || round.state !== "open") {
      if (Date.now() > until) throw new Error(`no round opened: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
      round = await latestRound();
    }
    expect(round.shards).toBe(SHARDS);

    const results = await Promise.all(
      devices.map((d) => d.client.participate({ model: MODEL, data: d.x, labels: d.y })),
    );
    for (const r of results) expect(r).toMatchObject({ selected: true, status: "uploaded" });
    await operator.closeRound(round.round_id);
    expect(await run, stderr).toBe(0);

    const line = JSON.parse(stdout.trim().split("\n")[0]!) as Record<string, unknown>;
    expect(line).toMatchObject({
      roundId: round.round_id,
      outcome: "published",
      accepted: DEVICES,
      aggregated: DEVICES,
      refusedUpdates: [],
      version: 2,
    });
    const acc = createAccountant("rdp");
    acc.step({ noiseMultiplier: 1, sampleRate: 1 }, 1);
    expect(line.epsilon as number).toBeCloseTo(acc.getEpsilon(1e-5), 9);

    // The devices were spread over the shards (all 12 on one of 4 shards has probability 4⁻¹¹), and the shards'
    // listings together hold each accepted update once.
    const perShard: string[][] = [];
    for (let s = 0; s < SHARDS; s++) {
      const res = await operator.request("GET", `/v1/admin/rounds/${round.round_id}/updates?shard=${s}&limit=1000`);
      perShard.push(((await res.json()) as AcceptedUpdatePage).items.map((u) => u.device_id));
    }
    expect(perShard.filter((ids) => ids.length > 0).length).toBeGreaterThan(1);
    expect(perShard.flat().sort()).toEqual(
      results.map((r) => (r as { receipt: { device_id: string } }).receipt.device_id).sort(),
    );

    // One charge on the population's ledger, whatever the number of shards.
    const ledger = (await (await fetch(`${edge.url}/v1/populations/${MODEL}/privacy`)).json()) as {
      rounds: { round_id: string }[];
    };
    expect(ledger.rounds.map((r) => r.round_id)).toEqual([round.round_id]);
  });
});
