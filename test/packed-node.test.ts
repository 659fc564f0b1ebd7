/**
 * The packed packages in real consumers on the machine's own Node 20 (not the Node 24 that npm scripts run): a fresh
 * project outside the repository installs the tarballs of `npm run pack` with `npm install`, then
 *
 * - a plain `.mjs` script (no TypeScript, no loader) uses @fedge/client against the local edge (`wrangler dev`):
 *   register, participate in an open round (check in, train, clip, sign, upload), predict;
 * - the `fedge` bin of the packed CLI runs `--help`, `privacy` and a usage error.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RoundStatus } from "@fedge/protocol";
import { createAccountant, localReportEpsilon } from "@fedge/privacy";
import {
  openRound,
  startEdgeFixture,
  toyData,
  uploadToyModel,
  type EdgeFixture,
  type ToyModel,
} from "@fedge/local-edge";
import { consumerEnv, installConsumer, packedPackages, systemNode, type Packed } from "./helpers/packed.ts";

const PORT = 8840;
const node = systemNode();
const dirs: string[] = [];
let packed: Packed;

beforeAll(() => {
  packed = packedPackages();
}, 240_000);
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(prefix: string): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

function runNode(cwd: string, args: string[]) {
  const r = spawnSync(node!.path, args, { cwd, encoding: "utf8", env: consumerEnv(), timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const SDK_SCRIPT = `import { FedgeClient, fileStorage } from "@fedge/client";
import { localReportEpsilon } from "@fedge/client/privacy";
import { readFileSync } from "node:fs";

const { url, apiKey, model, data, labels, row } = JSON.parse(readFileSync("input.json", "utf8"));
const client = new FedgeClient({ baseUrl: url, apiKey, storage: fileStorage("./state") });
const identity = await client.register();
const participation = await client.participate({ model, data: Float32Array.from(data), labels: Uint8Array.from(labels) });
const prediction = await client.predict(model, [row]);
const epsilon = localReportEpsilon({ noiseMultiplier: 2, delta: 1e-5, neighbouring: "replace-one" });
console.log(JSON.stringify({ node: process.version, identity, participation, prediction, epsilon }));
`;

describe.skipIf(!node)(`the packed SDK in a plain script on the machine's Node (${node?.version ?? "none"})`, () => {
  let fx: EdgeFixture;
  let toy: ToyModel;
  let round: RoundStatus;
  let app: string;

  beforeAll(async () => {
    app = await tempDir("fedge-node-app-");
    const t = packed.tarballs;
    installConsumer(app, [
      t["@fedge/client"]!,
      t["@fedge/protocol"]!,
      t["@fedge/privacy"]!,
      t["@fedge/ml"]!,
      t["@fedge/secagg"]!,
    ]);
    fx = await startEdgeFixture(PORT);
    toy = await uploadToyModel(fx, "node20-toy");
    round = await openRound(fx, toy);
  }, 240_000);
  afterAll(async () => {
    await fx?.stop();
  });

  it("installs only built JavaScript and declarations", async () => {
    const files = await readdir(path.join(app, "node_modules/@fedge/client"), { recursive: true });
    expect(files).toContain(path.join("dist", "index.js"));
    expect(files).toContain(path.join("dist", "index.d.ts"));
    expect(files).toContain(path.join("dist", "privacy.js"));
    expect(files).toContain(path.join("dist", "privacy.d.ts"));
    expect(files.filter((f) => /\.ts$/.test(f) && !f.endsWith(".d.ts"))).toEqual([]);
    expect(files.some((f) => /test/.test(f))).toBe(false);
  });

  it("registers, takes part in a round and predicts", async () => {
    const { data, labels } = toyData(toy.sizes, 24, 9);
    const row = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
    await writeFile(
      path.join(app, "input.json"),
      JSON.stringify({
        url: fx.url,
        apiKey: fx.apiKey,
        model: toy.name,
        data: Array.from(data),
        labels: Array.from(labels),
        row,
      }),
    );
    await writeFile(path.join(app, "main.mjs"), SDK_SCRIPT);
    const r = runNode(app, ["main.mjs"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as {
      node: string;
      identity: { deviceId: string };
      participation: { selected: boolean; status: string; roundId: string; receipt: { device_id: string } };
      prediction: { model: string; version: number; outputs: number[][] };
      epsilon: number;
    };
    expect(out.node).toBe(node!.version);
    // The subpath export resolves in the packed package and computes what @fedge/privacy computes.
    expect(out.epsilon).toBe(localReportEpsilon({ noiseMultiplier: 2, delta: 1e-5, neighbouring: "replace-one" }));
    expect(out.identity.deviceId).toMatch(/^dev_/);
    expect(out.participation).toMatchObject({ selected: true, status: "uploaded", roundId: round.round_id });
    expect(out.participation.receipt.device_id).toBe(out.identity.deviceId);
    expect(out.prediction).toMatchObject({ model: toy.name, version: 1 });
    expect(out.prediction.outputs[0]).toHaveLength(3);
    const status = await fx.admin<RoundStatus>("GET", `/v1/admin/rounds/${round.round_id}`);
    expect(status.accepted).toBe(1);

    // The identity persisted in the file storage: a second run is the same device, already reported.
    const again = runNode(app, ["main.mjs"]);
    expect(again.code).toBe(0);
    const second = JSON.parse(again.stdout) as typeof out;
    expect(second.identity).toEqual(out.identity);
    expect(second.participation).toMatchObject({ selected: false, reason: "already_reported" });
  });
});

describe.skipIf(!node)(`the packed fedge CLI on the machine's Node (${node?.version ?? "none"})`, () => {
  let app: string;
  beforeAll(async () => {
    app = await tempDir("fedge-cli-app-");
    const t = packed.tarballs;
    installConsumer(app, [
      t["fedge"]!,
      t["@fedge/gpu-node"]!,
      t["@fedge/protocol"]!,
      t["@fedge/privacy"]!,
      t["@fedge/ml"]!,
    ]);
  }, 240_000);
  const fedge = (...args: string[]) => runNode(app, [path.join(app, "node_modules/.bin/fedge"), ...args]);

  it("fedge --help lists the commands and the exit codes", () => {
    const r = fedge("--help");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: fedge <command>/);
    for (const c of ["privacy", "simulate", "aggregate", "rollback"]) expect(r.stdout).toContain(c);
    expect(r.stdout).toMatch(/Exit codes/);
  });

  it("fedge privacy prints the same ε as the accountant in the workspace", () => {
    const r = fedge(
      "privacy",
      "--sampling-rate",
      "0.01",
      "--noise-multiplier",
      "1.1",
      "--steps",
      "1000",
      "--delta",
      "1e-5",
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { epsilon: number; accountant: string };
    const acc = createAccountant("rdp");
    acc.step({ noiseMultiplier: 1.1, sampleRate: 0.01 }, 1000);
    expect(out.accountant).toBe("rdp");
    expect(out.epsilon).toBe(acc.getPrivacySpent(1e-5).epsilon);

    const target = fedge(
      "privacy",
      "--sampling-rate",
      "0.01",
      "--target-epsilon",
      "2",
      "--steps",
      "1000",
      "--delta",
      "1e-5",
    );
    expect(target.code).toBe(0);
    expect((JSON.parse(target.stdout) as { epsilon: number }).epsilon).toBeLessThanOrEqual(2);
  });

  it("a bad flag exits 2 and names the flag", () => {
    const r = fedge("privacy", "--sampling-rate", "2", "--noise-multiplier", "1", "--steps", "10", "--delta", "1e-5");
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--sampling-rate/);
  });
});
