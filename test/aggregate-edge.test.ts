/**
 * `fedge aggregate` and `fedge rollback` against the real edge (`wrangler dev` on port 8830, fresh state): real
 * devices (@fedge/client FedgeClient: register, participate with MNIST shards) report into rounds the CLI opens; the
 * CLI aggregates, publishes, refuses by the gate, rolls back, refuses a round over budget, and resumes after being
 * SIGKILLed between aggregation and publishing without spending privacy twice or publishing twice.
 */
import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FedgeClient, memoryStorage } from "@fedge/client";
import { createBackend, type Backend } from "@fedge/gpu-node";
import { readMlpFromOnnx } from "@fedge/ml";
import { ModelDetail, ModelManifest, toBase64Url, type RoundStatus } from "@fedge/protocol";
import { CheckpointStore, evaluateModel, exportModel, verifyManifest, type SigningKey } from "fedge";
import { createAccountant } from "@fedge/privacy";
import { loadMnist } from "fedge/data";
import { runCli } from "fedge/cli";
import { EdgeAdminClient } from "fedge/edge";
import { repoRoot, type LocalEdge } from "@fedge/local-edge";
import { startTestEdge, type TestEdge } from "./helpers/test-edge.ts";
import { zeroMnistRegression } from "./helpers/zero-model.ts";

const PORT = 8830;
const BIN = path.join(repoRoot, "aggregator/bin/fedge.js");
const DEVICES = 4;
const ADMIN_TOKEN = `fa_${toBase64Url(crypto.getRandomValues(new Uint8Array(24)))}`;

let testEdge: TestEdge;
let dir: string;
let edge: LocalEdge;
let key: SigningKey;
let keyFile: string;
/** The operator token for the CLI, in a 0600 file (a flag's value would show in ps). */
let tokenFile: string;
let operator: EdgeAdminClient;
let backend: Backend;
let devices: { client: FedgeClient; x: Float32Array; y: Uint8Array }[];

beforeAll(async () => {
  testEdge = await startTestEdge({
    port: PORT,
    name: "aggregate-e2e",
    adminToken: ADMIN_TOKEN,
    aggregatorKeyFile: path.join("dp", "aggregator-key.json"),
  });
  ({ dir, edge, key, operator, keyFile, tokenFile } = testEdge);
  backend = await createBackend({ prefer: "cpu", log: () => undefined });
  const apiKey = (await operator.createApiKey("aggregate e2e devices", 1_000_000)).key;
  const { train } = loadMnist();
  const per = 100;
  devices = Array.from({ length: DEVICES }, (_, i) => ({
    client: new FedgeClient({
      baseUrl: edge.url,
      apiKey,
      storage: memoryStorage(),
      platform: "e2e-node",
      // This app's devices take part in the non-private test populations too, and in the DP one (budget ε = 100);
      // they train only on models the aggregator's key signed (the seeds and every version of the DP population).
      privacyPolicy: { allowedModes: ["central", "none"], maxPopulationEpsilon: 100 },
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

/** Uploads a zero 784→10 softmax regression as version 1 (serving) of `model`. */
async function seed(model: string): Promise<void> {
  const e = await exportModel({ model: zeroMnistRegression(), name: model, version: 1, backend, signingKey: key });
  await operator.uploadModelVersion(e.manifest, e.onnx, true);
}

async function detail(model: string): Promise<ModelDetail> {
  const res = await fetch(`${edge.url}/v1/models/${model}`);
  expect(res.status).toBe(200);
  return ModelDetail.parse(await res.json());
}

async function rounds(model: string): Promise<RoundStatus[]> {
  const res = await operator.request("GET", `/v1/admin/rounds?model=${model}&limit=10`);
  return ((await res.json()) as { rounds: RoundStatus[] }).rounds;
}

/** Waits until the edge has `model`'s round number `seq` collecting. */
async function waitOpen(model: string, seq: number): Promise<RoundStatus> {
  const until = Date.now() + 60_000;
  for (;;) {
    const r = (await rounds(model))[0];
    if (r && r.round_id === `${model}_${seq}` && (r.state === "open" || r.state === "collecting")) return r;
    if (Date.now() > until) throw new Error(`round ${model}_${seq} never opened`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** Every device takes part (q = 1: all selected); `shift` trains on wrong labels (y + shift) mod 10. */
async function participate(model: string, shift = 0): Promise<void> {
  const results = await Promise.all(
    devices.map((d) =>
      d.client.participate({
        model,
        data: d.x,
        labels: shift ? d.y.map((v) => (v + shift) % 10) : d.y,
      }),
    ),
  );
  for (const r of results) expect(r).toMatchObject({ selected: true, status: "uploaded" });
}

/** The operator closes round `seq` of `model` once its devices reported (DP rounds take no max_reports). */
async function closeRound(model: string, seq: number): Promise<void> {
  await operator.closeRound(`${model}_${seq}`);
}

function spawnFedge(args: string[], env: Record<string, string> = {}) {
  const { FEDGE_ADMIN_TOKEN: _t, FEDGE_AGGREGATE_CRASH_AT: _c, ...inherited } = process.env;
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...inherited, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>(
    (resolve) => child.once("exit", (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done };
}

async function fedgeIn(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await runCli(args, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

const lines = (text: string) =>
  text
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

function epsilonAfter(steps: number): number {
  const acc = createAccountant("rdp");
  acc.step({ noiseMultiplier: 1, sampleRate: 1 }, steps);
  return acc.getEpsilon(1e-5);
}

/** A central-mode population with q = 1, z = 1 and the aggregator's own budget ε = `epsilon`. */
const dpFlags = (epsilon: number) => [
  ...["--privacy-mode", "central", "--noise-multiplier", "1", "--sampling-rate", "1", "--expected-clients", "4"],
  ...["--target-epsilon", String(epsilon), "--delta", "1e-5"],
];

/**
 * For tests of something other than the publish gate: one noisy round (z = 1, 4 devices) may lose accuracy, and the
 * gate would then refuse to promote; these accept any drop so that they assert what they test.
 */
const ANY_DROP = ["--max-accuracy-drop", "1"];

const common = ["--edge", "", "--round-duration-s", "120", "--wait-poll-ms", "100", "--backend", "cpu"];
const args = (...rest: string[]) => {
  const a = [...common, ...rest];
  a[1] = edge.url;
  return a;
};

describe("fedge aggregate / rollback against wrangler dev", () => {
  const DP = "agg-dp";
  let dpDir: string;
  let dpConfig: string;

  it("refuses bad arguments with exit 2 and a clear message (spawned bin and in-process)", async () => {
    const spawned = await spawnFedge(["aggregate", "--model", "x"]).done;
    expect(spawned.code).toBe(2);
    expect(spawned.stderr).toMatch(/fedge aggregate: missing --edge URL/);
    expect(spawned.stdout).toBe("");

    const bad: [string[], RegExp][] = [
      [["aggregate", "--edge", "ftp://x", "--model", "m"], /--edge must be an http\(s\) URL/],
      [["aggregate", ...args("--model", "m", "--rounds", "-1")], /--rounds must be an integer >= 0|--rounds/],
      [
        ["aggregate", ...args("--model", "m", "--privacy-mode", "central")],
        /invalid population config: .*samplingRate/,
      ],
      [["aggregate", ...args("--model", "m", "--bogus")], /Unknown option '--bogus'/],
      [["aggregate", ...args("--model", "m", "--min-reports", "5", "--max-reports", "2")], /--min-reports must be <=/],
      [
        ["aggregate", ...args("--model", "m", ...dpFlags(1), "--max-reports", "4")],
        /--max-reports is refused in privacy mode central/,
      ],
      [["rollback", "--edge", "http://127.0.0.1:1"], /missing --model/],
      [["rollback", "--edge", "http://127.0.0.1:1", "--model", "m", "--to", "zero"], /--to must be an integer/],
    ];
    for (const [argv, message] of bad) {
      const r = await fedgeIn(argv);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe("");
    }
  });

  it("refuses a round over the privacy budget before the edge sees it (exit 1, names budget and projected ε)", async () => {
    const model = "agg-budget";
    await seed(model);
    // The edge would take it: the aggregator's own, smaller budget refuses it first.
    await operator.setPrivacyBudget(model, { epsilon: 100, delta: 1e-5 });
    const r = await fedgeIn([
      "aggregate",
      ...args("--model", model, "--signing-key", keyFile, "--admin-token-file", tokenFile),
      ...["--privacy-mode", "central", "--noise-multiplier", "1", "--sampling-rate", "1", "--expected-clients", "4"],
      ...["--target-epsilon", "0.5", "--delta", "1e-5", "--checkpoint-dir", path.join(dir, "budget")],
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/budget_exceeded: privacy budget exceeded .* would spend ε=\d.* over the budget ε=0\.5/);
    expect(r.stdout).toBe("");
    expect(await rounds(model)).toEqual([]);
    const cp = await new CheckpointStore({ dir: path.join(dir, "budget") }).load();
    expect(cp!.ledger!.rounds).toEqual([]);
    expect(cp!.current).toBeNull();
  });

  it("runs a DP round through the edge (spawned bin, signed requests): the served version advances, signed", async () => {
    await seed(DP);
    await operator.setPrivacyBudget(DP, { epsilon: 100, delta: 1e-5 });
    dpDir = path.join(dir, "dp");
    dpConfig = path.join(dir, "dp-config.json");
    await writeFile(
      dpConfig,
      JSON.stringify({
        model: DP,
        privacy: { mode: "central", noiseMultiplier: 1, budget: { epsilon: 100, delta: 1e-5 } },
        samplingRate: 1,
        expectedClients: DEVICES,
        clipping: { clipNorm: 1 },
        client: { learningRate: 0.1, localEpochs: 1, batchSize: 32 },
        publish: { maxAccuracyDrop: 1 },
      }),
    );
    const run = spawnFedge(["aggregate", ...args("--config", dpConfig, "--checkpoint-dir", dpDir)]);
    await waitOpen(DP, 1);
    await participate(DP);
    await closeRound(DP, 1);
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
    const [line] = lines(r.stdout);
    expect(line).toMatchObject({
      type: "round",
      roundId: `${DP}_1`,
      outcome: "published",
      resumed: false,
      accepted: DEVICES,
      aggregated: DEVICES,
      refusedUpdates: [],
      version: 2,
      servingVersion: 2,
      alreadyUploaded: false,
    });
    expect(line!.epsilon as number).toBeCloseTo(epsilonAfter(1), 9);

    const d = await detail(DP);
    expect(d.serving_version).toBe(2);
    const manifest = ModelManifest.parse(await (await fetch(`${edge.url}/v1/models/${DP}/versions/2`)).json());
    expect(verifyManifest(manifest, key.publicKey)).toBe(true);
    expect(manifest.sha256).toBe(line!.sha256);
    expect(manifest.privacy!.epsilon).toBeCloseTo(epsilonAfter(1), 9);
    expect((await rounds(DP))[0]).toMatchObject({ state: "aggregated", published_version: 2 });
    // What it released, for the dashboard: C and z, and no count (a fixed clip norm releases none).
    expect((await rounds(DP))[0]!.release).toMatchObject({
      clip_norm: 1,
      next_clip_norm: 1,
      noise_multiplier: 1,
      noise: "discrete-gaussian",
      unclipped: null,
    });
  });

  it("resumes after a SIGKILL between aggregation and publish: ε counted once, the version published once", async () => {
    const crashed = spawnFedge(["aggregate", ...args("--checkpoint-dir", dpDir)], {
      FEDGE_AGGREGATE_CRASH_AT: "after-aggregate",
    });
    await waitOpen(DP, 2);
    await participate(DP);
    await closeRound(DP, 2);
    const c = await crashed.done;
    expect(c.signal).toBe("SIGKILL");
    expect(c.stdout).toBe("");
    const mid = (await new CheckpointStore({ dir: dpDir }).load())!;
    expect(mid.current).toMatchObject({ roundId: `${DP}_2`, phase: "aggregated" });
    expect(mid.ledger!.rounds.map((x) => x.roundId)).toEqual([`${DP}_1`, `${DP}_2`]);
    expect((await detail(DP)).versions.map((v) => v.version)).toEqual([1, 2]);

    // The rerun needs no flags but the edge and the directory (config and key are remembered there).
    const again = await spawnFedge(["aggregate", ...args("--checkpoint-dir", dpDir)]).done;
    expect(again.code, again.stderr).toBe(0);
    const [line] = lines(again.stdout);
    expect(line).toMatchObject({
      roundId: `${DP}_2`,
      resumed: true,
      outcome: "published",
      version: 3,
      servingVersion: 3,
      aggregated: DEVICES,
    });
    expect(line!.epsilon as number).toBeCloseTo(epsilonAfter(2), 9);
    const after = (await new CheckpointStore({ dir: dpDir }).load())!;
    expect(after.current).toBeNull();
    expect(after.ledger!.rounds.map((x) => x.roundId)).toEqual([`${DP}_1`, `${DP}_2`]);
    expect(after.publishLog.filter((p) => p.roundId === `${DP}_2`)).toHaveLength(1);
    expect(after.serving).toMatchObject({ version: 3, round: 2 });
    // the model of the checkpoint is what the edge serves (same int8 bytes on re-export)
    const d = await detail(DP);
    expect(d.versions.map((v) => v.version)).toEqual([1, 2, 3]);
    expect(d.serving_version).toBe(3);
    expect(d.versions.at(-1)!.sha256).toBe(line!.sha256);
    expect((await rounds(DP)).map((r) => [r.round_id, r.published_version])).toEqual([
      [`${DP}_2`, 3],
      [`${DP}_1`, 2],
    ]);
  });

  it("rollback serves the previous version again and records it in the checkpoint", async () => {
    const r = await fedgeIn([
      "rollback",
      ...["--edge", edge.url, "--model", DP, "--checkpoint-dir", dpDir, "--admin-token-file", tokenFile],
      ...["--reason", "e2e test"],
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(lines(r.stdout)[0]).toEqual({ type: "rollback", model: DP, from: 3, to: 2, recorded: true });
    expect((await detail(DP)).serving_version).toBe(2);
    const cp = (await new CheckpointStore({ dir: dpDir }).load())!;
    expect(cp.serving).toMatchObject({ version: 2, round: 1 });
    expect(cp.publishLog.at(-1)).toMatchObject({ version: 2, published: true, reason: "rollback: e2e test" });

    // the seed was never published by the aggregator: rolled back on the edge, not recorded
    const seedBack = await fedgeIn([
      "rollback",
      ...["--edge", edge.url, "--model", DP, "--checkpoint-dir", dpDir, "--admin-token-file", tokenFile],
    ]);
    expect(seedBack.code, seedBack.stderr).toBe(0);
    expect(lines(seedBack.stdout)[0]).toMatchObject({ from: 2, to: 1, recorded: false });
    // nothing earlier: 409 from the edge, exit 1
    const none = await fedgeIn(["rollback", "--edge", edge.url, "--model", DP, "--admin-token-file", tokenFile]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/409 conflict: .*no earlier serving version/);
    // --to promotes a given version
    const to = await fedgeIn([
      "rollback",
      "--edge",
      edge.url,
      "--model",
      DP,
      "--to",
      "3",
      "--admin-token-file",
      tokenFile,
    ]);
    expect(to.code, to.stderr).toBe(0);
    expect(lines(to.stdout)[0]).toMatchObject({ from: 1, to: 3 });
    expect((await detail(DP)).serving_version).toBe(3);
  });

  it("resumes after a SIGKILL right after the upload: the 409 for the same bytes counts as done", async () => {
    const crashed = spawnFedge(["aggregate", ...args("--checkpoint-dir", dpDir)], {
      FEDGE_AGGREGATE_CRASH_AT: "after-upload",
    });
    await waitOpen(DP, 3);
    await participate(DP);
    await closeRound(DP, 3);
    const c = await crashed.done;
    expect(c.signal).toBe("SIGKILL");
    expect((await detail(DP)).versions.map((v) => v.version)).toEqual([1, 2, 3, 4]);
    expect((await new CheckpointStore({ dir: dpDir }).load())!.current).toMatchObject({ phase: "aggregated" });

    const again = await spawnFedge(["aggregate", ...args("--checkpoint-dir", dpDir)]).done;
    expect(again.code, again.stderr).toBe(0);
    const [line] = lines(again.stdout);
    expect(line).toMatchObject({
      roundId: `${DP}_3`,
      resumed: true,
      alreadyUploaded: true,
      version: 4,
      servingVersion: 4,
    });
    expect(line!.epsilon as number).toBeCloseTo(epsilonAfter(3), 9);
    const d = await detail(DP);
    expect(d.versions.map((v) => v.version)).toEqual([1, 2, 3, 4]);
    expect(d.versions.at(-1)!.sha256).toBe(line!.sha256);
    const cp = (await new CheckpointStore({ dir: dpDir }).load())!;
    expect(cp.ledger!.rounds).toHaveLength(3);
    expect(cp.publishLog.filter((p) => p.roundId === `${DP}_3`)).toHaveLength(1);
  });

  it("resumes after a SIGKILL right after the edge round opened: picks the open round up, opens no other", async () => {
    const crashed = spawnFedge(["aggregate", ...args("--checkpoint-dir", dpDir)], {
      FEDGE_AGGREGATE_CRASH_AT: "after-edge-open",
    });
    expect((await crashed.done).signal).toBe("SIGKILL");
    await waitOpen(DP, 4);
    await participate(DP);
    await closeRound(DP, 4); // a DP round has no max_reports: the operator closes it
    const again = await spawnFedge(["aggregate", ...args("--checkpoint-dir", dpDir)]).done;
    expect(again.code, again.stderr).toBe(0);
    expect(lines(again.stdout)[0]).toMatchObject({ roundId: `${DP}_4`, resumed: true, accepted: DEVICES, version: 5 });
    expect((await rounds(DP)).map((r) => r.round_id)).toEqual([4, 3, 2, 1].map((k) => `${DP}_${k}`));
    expect((await new CheckpointStore({ dir: dpDir }).load())!.ledger!.rounds).toHaveLength(4);
  });

  it("--rounds 2 runs two rounds in one invocation, one JSON line each", async () => {
    const p = fedgeIn(["aggregate", ...args("--checkpoint-dir", dpDir, "--rounds", "2")]);
    for (const seq of [5, 6]) {
      await waitOpen(DP, seq);
      await participate(DP);
      await closeRound(DP, seq);
    }
    const r = await p;
    expect(r.code, r.stderr).toBe(0);
    const out = lines(r.stdout);
    expect(out.map((l) => [l.roundId, l.outcome, l.version, l.resumed])).toEqual([
      [`${DP}_5`, "published", 6, false],
      [`${DP}_6`, "published", 7, false],
    ]);
    expect(out[1]!.epsilon as number).toBeCloseTo(epsilonAfter(6), 9);
    expect((await detail(DP)).serving_version).toBe(7);
  });

  it("resumes after a SIGKILL right after the ledger was charged: opens the edge round then, charges nothing more", async () => {
    const crashed = await spawnFedge(["aggregate", ...args("--checkpoint-dir", dpDir)], {
      FEDGE_AGGREGATE_CRASH_AT: "after-open",
    }).done;
    expect(crashed.signal).toBe("SIGKILL");
    expect((await rounds(DP))[0]!.round_id).toBe(`${DP}_6`); // the edge never saw round 7
    expect((await new CheckpointStore({ dir: dpDir }).load())!.ledger!.rounds).toHaveLength(7);
    const p = fedgeIn(["aggregate", ...args("--checkpoint-dir", dpDir)]);
    await waitOpen(DP, 7);
    await participate(DP);
    await closeRound(DP, 7);
    const r = await p;
    expect(r.code, r.stderr).toBe(0);
    expect(lines(r.stdout)[0]).toMatchObject({ roundId: `${DP}_7`, resumed: true, version: 8 });
    expect(lines(r.stdout)[0]!.epsilon as number).toBeCloseTo(epsilonAfter(7), 9);
    expect((await new CheckpointStore({ dir: dpDir }).load())!.ledger!.rounds).toHaveLength(7);
  });

  it("--eval-set FILE: the gate measures on the file's digits; a bad file is refused before any round opens", async () => {
    const model = "agg-evalfile";
    await seed(model);
    const evalDir = path.join(dir, "evalfile");
    // 50 zeros and 150 other digits from the test split: the seeded all-zero model always answers 0, so it scores
    // exactly 0.25 here (about 0.098 on the whole test split, which `--eval-set auto` would use).
    const { test } = loadMnist();
    const picked: number[] = [];
    let zeros = 0;
    for (let i = 0; i < test.n && picked.length < 200; i++) {
      const isZero = test.y[i] === 0;
      if (isZero ? zeros < 50 : picked.length - zeros < 150) {
        picked.push(i);
        if (isZero) zeros += 1;
      }
    }
    const x = picked.flatMap((i) => Array.from(test.x.subarray(i * 784, (i + 1) * 784)));
    const y = picked.map((i) => test.y[i]!);
    const evalFile = path.join(dir, "eval-set.json");
    await writeFile(evalFile, JSON.stringify({ x, y }));

    const badFile = path.join(dir, "eval-bad.json");
    await writeFile(badFile, JSON.stringify({ x: x.slice(0, 783), y: [1] }));
    // The manifests must be signed by a key the edge trusts (trust is pinned): the edge's configured one.
    const base = args(
      "--model",
      model,
      "--admin-token-file",
      tokenFile,
      "--checkpoint-dir",
      evalDir,
      "--signing-key",
      keyFile,
    );
    const round = ["--privacy-mode", "none", "--sampling-rate", "1", "--expected-clients", "4", "--max-reports", "4"];
    for (const [file, message] of [
      [badFile, /--eval-set .*eval-bad\.json: needs n > 0 labels and n × 784 features/],
      [path.join(dir, "missing.json"), /--eval-set .*missing\.json: ENOENT/],
    ] as const) {
      const r = await fedgeIn(["aggregate", ...base, ...round, "--eval-set", file]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    expect(await rounds(model)).toEqual([]);

    const p = fedgeIn(["aggregate", ...base, ...round, "--max-accuracy-drop", "1", "--eval-set", evalFile]);
    await waitOpen(model, 1);
    await participate(model);
    const r = await p;
    expect(r.code, r.stderr).toBe(0);
    const [line] = lines(r.stdout);
    expect(line).toMatchObject({ outcome: "published", version: 2, servingAccuracyBefore: 0.25 });
    // The gate judged, and the manifest states, the accuracy of the int8 bytes the edge now serves; the float32
    // model's accuracy is reported beside it as accuracyFp32.
    const evalSet = { x: Float32Array.from(x), y: Int32Array.from(y), n: y.length };
    const res = await fetch(`${edge.url}/v1/models/${model}/versions/2/model.onnx`);
    const served = new Uint8Array(await res.arrayBuffer());
    const int8 = evaluateModel(readMlpFromOnnx(served).params, evalSet).accuracy;
    expect(line!.accuracy).toBe(int8);
    const manifest = ModelManifest.parse(await (await fetch(`${edge.url}/v1/models/${model}/versions/2`)).json());
    expect(manifest.quantization.weight_dtype).toBe("int8");
    expect(manifest.evaluation).toEqual({ accuracy: int8 });
    expect(verifyManifest(manifest, key.publicKey)).toBe(true);
    const cp = (await new CheckpointStore({ dir: evalDir }).load())!;
    expect(line!.accuracyFp32).toBe(evaluateModel(cp.model, evalSet).accuracy);
    expect(cp.publishLog.at(-1)).toMatchObject({ version: 2, accuracy: int8 });
  });

  it("the publish gate refuses a worse model: the old version keeps serving and the reason is recorded", async () => {
    const model = "agg-gate";
    await seed(model);
    const gateDir = path.join(dir, "gate");
    const p = fedgeIn([
      "aggregate",
      // This directory's own key signs the manifests: registered with the edge first (trust is pinned).
      ...args("--model", model, "--admin-token-file", tokenFile, "--checkpoint-dir", gateDir, "--register-key"),
      ...["--privacy-mode", "none", "--sampling-rate", "1", "--expected-clients", "4"],
      ...["--client-lr", "0.5", "--local-epochs", "3", "--max-accuracy-drop", "0.02", "--max-reports", "4"],
    ]);
    await waitOpen(model, 1);
    await participate(model, 1); // every device trains on labels shifted by one
    const r = await p;
    expect(r.code, r.stderr).toBe(0);
    const [line] = lines(r.stdout);
    expect(line).toMatchObject({ outcome: "refused", version: 2, servingVersion: 1, epsilon: null });
    expect(line!.reason).toMatch(/^int8 accuracy would drop from 0\.\d+ to 0\.\d+/);
    expect(line!.accuracy as number).toBeLessThan((line!.servingAccuracyBefore as number) - 0.02);
    const d = await detail(model);
    expect(d.serving_version).toBe(1);
    expect(d.versions.map((v) => v.version)).toEqual([1, 2]);
    const cp = (await new CheckpointStore({ dir: gateDir }).load())!;
    expect(cp.publishLog.at(-1)).toMatchObject({ roundId: `${model}_1`, published: false, reason: line!.reason });
    expect(cp.serving).toBeNull();
    const state = JSON.parse(await readFile(path.join(gateDir, "edge-runner.json"), "utf8"));
    expect(state).toMatchObject({ model, modelVersion: 2, pending: null });

    // a round nobody reports to is abandoned at its deadline: nothing aggregated, nothing uploaded
    const empty = await fedgeIn([
      "aggregate",
      ...args("--checkpoint-dir", gateDir, "--round-duration-s", "1", "--admin-token-file", tokenFile),
    ]);
    expect(empty.code, empty.stderr).toBe(0);
    expect(lines(empty.stdout)[0]).toMatchObject({ roundId: `${model}_2`, outcome: "abandoned", accepted: 0 });
    expect(lines(empty.stdout)[0]!.reason).toMatch(/only 0 accepted update\(s\), fewer than min_reports 1/);
    expect((await detail(model)).versions.map((v) => v.version)).toEqual([1, 2]);
    expect((await rounds(model))[0]).toMatchObject({ round_id: `${model}_2`, state: "closed" });
    const after = (await new CheckpointStore({ dir: gateDir }).load())!;
    expect(after.round).toBe(2);
    expect(after.publishLog.at(-1)!.reason).toMatch(/^abandoned: only 0/);
  });
  it("the edge enforces its budget: the round past it is refused to every credential, whatever checkpoint dir", async () => {
    const model = "agg-edge-budget";
    await seed(model);
    // The edge takes exactly one round of (q = 1, z = 1); the aggregator's own config would allow ε = 100.
    const edgeBudget = (epsilonAfter(1) + epsilonAfter(2)) / 2;
    await operator.setPrivacyBudget(model, { epsilon: edgeBudget, delta: 1e-5 });
    const base = ["--model", model, ...dpFlags(100), "--signing-key", keyFile, ...ANY_DROP];
    const first = fedgeIn(["aggregate", ...args(...base, "--checkpoint-dir", path.join(dir, "eb-a"))]);
    await waitOpen(model, 1);
    await participate(model);
    await closeRound(model, 1);
    const r1 = await first;
    expect(r1.code, r1.stderr).toBe(0);
    expect(lines(r1.stdout)[0]).toMatchObject({ roundId: `${model}_1`, outcome: "published" });
    expect(lines(r1.stdout)[0]!.epsilon as number).toBeCloseTo(epsilonAfter(1), 9);

    // The same directory, a fresh one, and none at all: the edge's ledger counts round 1 in each case.
    for (const where of [
      ["--checkpoint-dir", path.join(dir, "eb-a")],
      ["--checkpoint-dir", path.join(dir, "eb-new")],
      [],
    ]) {
      const r = await fedgeIn(["aggregate", ...args(...base, ...where)]);
      expect(r.code, where.join(" ")).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(
          `budget_exceeded: privacy budget exceeded for population "${model}": opening round "${model}_2" would spend ε=\\d`,
        ),
      );
      expect(r.stdout).toBe("");
    }
    const fresh = (await new CheckpointStore({ dir: path.join(dir, "eb-new") }).load())!;
    expect(fresh.ledger!.rounds).toEqual([]); // nothing charged locally either
    expect((await rounds(model)).map((r) => r.round_id)).toEqual([`${model}_1`]);

    // Straight to the edge, past any aggregator check: refused for the admin token and the aggregator's key alike.
    const request = {
      model,
      model_version: 2,
      clip_norm: 1,
      learning_rate: 0.1,
      local_epochs: 1,
      batch_size: 32,
      privacy_mode: "central" as const,
      trainable: "all" as const,
      update_length: 7850,
      update_dtype: "float32" as const,
      sampling_rate: 1,
      min_reports: 1,
      mechanism: { noise_multiplier: 1, clip_rule: "fixed" as const },
      duration_s: 60,
    };
    const signer = new EdgeAdminClient({ baseUrl: edge.url, signingKey: key.secretKey });
    for (const client of [operator, signer]) {
      await expect(client.openRound(request)).rejects.toMatchObject({ status: 409, edgeCode: "budget_exceeded" });
    }
    expect((await rounds(model)).map((r) => r.round_id)).toEqual([`${model}_1`]);
    // The public ledger: one charged round, no device counts.
    const ledger = (await (await fetch(`${edge.url}/v1/populations/${model}/privacy`)).json()) as Record<
      string,
      unknown
    >;
    expect(ledger).toMatchObject({ budget: { epsilon: edgeBudget, delta: 1e-5 }, accountant: "rdp" });
    expect(ledger.epsilon_spent as number).toBeCloseTo(epsilonAfter(1), 9);
    expect(JSON.stringify(ledger)).not.toMatch(/accepted|selected|checked_in/);
  });

  it("resumes with the mechanism the edge charged: saved parameters win over flags, a mismatch is refused", async () => {
    const model = "agg-charge";
    await seed(model);
    await operator.setPrivacyBudget(model, { epsilon: 100, delta: 1e-5 });
    const cDir = path.join(dir, "charge");
    const base = ["--model", model, ...dpFlags(100), "--signing-key", keyFile, "--checkpoint-dir", cDir, ...ANY_DROP];
    const crashed = await spawnFedge(["aggregate", ...args(...base)], {
      FEDGE_AGGREGATE_CRASH_AT: "after-edge-open",
    }).done;
    expect(crashed.signal).toBe("SIGKILL");
    await waitOpen(model, 1);

    // The saved state no longer says what the edge charged (z = 1): nothing is aggregated.
    const stateFile = path.join(cDir, "edge-runner.json");
    const saved = await readFile(stateFile, "utf8");
    const tampered = JSON.parse(saved);
    tampered.config.privacy.noiseMultiplier = 2;
    await writeFile(stateFile, JSON.stringify(tampered));
    const refused = await fedgeIn(["aggregate", ...args("--checkpoint-dir", cDir, "--signing-key", keyFile)]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/charge_mismatch: the edge charged round agg-charge_1 for .*"noise_multiplier":1/);
    expect((await new CheckpointStore({ dir: cDir }).load())!.current).toMatchObject({ phase: "opened" });

    // Restored: flags asking for z = 3 are overruled by the saved z = 1, which the edge charged.
    await writeFile(stateFile, saved);
    const p = fedgeIn(["aggregate", ...args(...base, "--noise-multiplier", "3")]);
    await participate(model);
    await closeRound(model, 1);
    const r = await p;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/keeping the saved privacy/);
    expect(lines(r.stdout)[0]).toMatchObject({ roundId: `${model}_1`, resumed: true, outcome: "published" });
    expect(lines(r.stdout)[0]!.epsilon as number).toBeCloseTo(epsilonAfter(1), 9);
  });

  it("reports an adaptive round's noised count once: a rerun after a SIGKILL right after the report sends none", async () => {
    const model = "agg-release";
    await seed(model);
    await operator.setPrivacyBudget(model, { epsilon: 100, delta: 1e-5 });
    const rDir = path.join(dir, "release");
    const base = ["--model", model, ...dpFlags(100), "--signing-key", keyFile, "--checkpoint-dir", rDir, ...ANY_DROP];
    const crashed = spawnFedge(["aggregate", ...args(...base, "--adaptive", "--count-noise-std", "2")], {
      FEDGE_AGGREGATE_CRASH_AT: "after-release",
    });
    await waitOpen(model, 1);
    await participate(model);
    await closeRound(model, 1);
    const c = await crashed.done;
    expect(c.signal, c.stderr).toBe("SIGKILL");
    const [round] = await rounds(model);
    const release = round!.release!;
    expect(release).toMatchObject({ clip_norm: 1, noise_multiplier: 1, noise: "discrete-gaussian" });
    expect(release.unclipped).toMatchObject({ expected_clients: DEVICES, noise_std: 2 });
    // The round's exact counts are on the edge; the release carries none of them, only m·b̃ on the half-integers.
    expect(JSON.stringify(release)).not.toMatch(/accepted|selected|checked_in/);
    const k = 2 * release.unclipped!.noised_count;
    expect(Math.abs(k - Math.round(k))).toBeLessThan(1e-9);

    const again = await spawnFedge(["aggregate", ...args("--checkpoint-dir", rDir, "--signing-key", keyFile)]).done;
    expect(again.code, again.stderr).toBe(0);
    const [line] = lines(again.stdout);
    expect(line).toMatchObject({ roundId: `${model}_1`, resumed: true, outcome: "published", clipNorm: 1 });
    expect(line!.nextClipNorm).toBe(release.next_clip_norm);
    // Recorded once: the rerun found its own report and sent no second one (which the edge would refuse).
    expect((await rounds(model))[0]!.release).toEqual(release);
  });
});
