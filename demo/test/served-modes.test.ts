/**
 * `npm run demo -- --privacy distributed`, small and served: `runServedModes` on the real local edge (`wrangler dev`,
 * port 8856, fresh state), 20 SDK devices, every one selected (q = 1), 2 rounds with the recipe's fixed C, at the
 * headline ε = 4 (`servedEpsilon`: the demo's checked-in cohort is charged for zero-out neighbours, with no
 * add/remove floor to keep the served plan from it), the rounds and q the report states.
 * Central devices upload; distributed devices add their noise shares and run SecAgg+ through the round's Durable
 * Object while the runner follows the stages. Each mode's ε comes from its own ledger on the edge, distributed bytes
 * count the SecAgg+ messages, and the report puts both side by side.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FedgeClient } from "@fedge/client";
import { createBackend, type Backend } from "@fedge/gpu-node";
import { paddedLength } from "@fedge/privacy";
import { toBase64Url } from "@fedge/protocol";
import { EdgeAdminClient } from "fedge/edge";
import { generateSigningKey } from "fedge/export";
import { startLocalEdge, type LocalEdge } from "@fedge/local-edge";
import { modeComparisonMarkdown, type ModeComparison } from "../src/mode-comparison.ts";
import { servedEpsilon } from "../src/distributed-cohort.ts";
import { runServedModes } from "../src/served-modes.ts";
import {
  demoData,
  demoUpdateLength,
  distributedShares,
  pretrainPublic,
  recipeAt,
  withFixedClip,
} from "../src/setting.ts";

const DEVICES = 20;
const EPSILON = 4;
const DELTA = 1e-5;
const ADMIN_TOKEN = `fa_${toBase64Url(crypto.getRandomValues(new Uint8Array(24)))}`;

let dir: string;
let edge: LocalEdge;
let backend: Backend;
const signingKey = generateSigningKey();

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "fedge-served-modes-"));
  edge = await startLocalEdge({
    port: 8856,
    persistTo: path.join(dir, "state"),
    vars: { FEDGE_ADMIN_TOKEN: ADMIN_TOKEN, FEDGE_AGGREGATOR_PUBLIC_KEY: toBase64Url(signingKey.publicKey) },
    readyTimeoutMs: 120_000,
  });
  backend = await createBackend({ prefer: "cpu", log: () => undefined });
}, 180_000);

afterAll(async () => {
  await backend?.dispose();
  await edge?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("--privacy distributed, served (20 devices, 2 rounds)", () => {
  it("serves central and distributed at the same ε and fixed C, ε from each edge ledger, SecAgg+ bytes counted", async () => {
    const data = demoData({ clients: DEVICES, seed: 1 });
    const initial = pretrainPublic(data.public, { seed: 1, epochs: 1 });
    const recipe = withFixedClip(recipeAt(EPSILON, { rounds: 2, samplingRate: 1 }));
    const target = servedEpsilon({
      clients: DEVICES,
      epsilon: EPSILON,
      delta: DELTA,
      recipe,
      updateLength: demoUpdateLength(recipe.trainable),
    });
    // a checked-in cohort (the demo's) has no add/remove floor: both modes run at the headline ε
    expect(target).toMatchObject({ headline: true, epsilon: EPSILON, floor: 0 });
    const operator = new EdgeAdminClient({ baseUrl: edge.url, adminToken: ADMIN_TOKEN });
    const admin = new EdgeAdminClient({ baseUrl: edge.url, signingKey: signingKey.secretKey });
    const evaluatorKey = await operator.createApiKey("served modes evaluator", 1_000_000);
    const runs = await runServedModes(
      {
        baseUrl: edge.url,
        admin,
        operator,
        signingKey,
        backend,
        evaluator: new FedgeClient({ baseUrl: edge.url, apiKey: evaluatorKey.key }),
        test: data.test,
        log: () => undefined,
      },
      {
        shards: data.devices,
        recipe,
        epsilon: target.epsilon,
        delta: DELTA,
        privacyPolicy: {
          allowedModes: ["central", "distributed"],
          maxPopulationEpsilon: Math.max(10, target.epsilon),
          maxDelta: DELTA,
        },
        initial,
      },
    );
    const [central, distributed] = runs;
    expect([central!.privacy, distributed!.privacy]).toEqual(["central", "distributed"]);
    for (const r of runs) {
      // every device is selected every round (q = 1); every round publishes its aggregate of all of them
      expect(r.rounds.map((x) => [x.selected, x.aggregated, x.outcome])).toEqual([
        [DEVICES, DEVICES, "published"],
        [DEVICES, DEVICES, "published"],
      ]);
      expect(r.epsilon).toBeGreaterThan(0);
      expect(r.epsilon).toBeLessThanOrEqual(target.epsilon);
      expect(r.final).toBeGreaterThan(0.5);
      expect(r.deviceSecondsPerUpdate).toBeGreaterThan(0);
    }
    // distributed needs more noise for the same ε (its charge counts only 15 other shares of 20), each the rule's z
    expect(distributed!.noiseMultiplier!).toBeGreaterThan(central!.noiseMultiplier!);
    expect(distributed!.noiseMultiplier!).toBe(target.noiseMultiplier);
    expect(central!.noiseMultiplier!).toBe(target.centralNoiseMultiplier);
    // central: the int8 upload, about a byte a value; distributed: at least the masked input (4 bytes a padded value,
    // base64url) plus the keys, shares and signatures of the other stages
    const d = 512 * 10 + 10;
    expect(central!.uploadBytesPerUpdate).toBeLessThan(2 * d);
    expect(distributed!.uploadBytesPerUpdate).toBeGreaterThan((4 * paddedLength(d) * 4) / 3);

    const comparison: ModeComparison = {
      epsilonTarget: EPSILON,
      delta: DELTA,
      clipNorm: recipe.clip.initial,
      clipWhy: "the recipe's C",
      updateLength: d,
      paddedLength: paddedLength(d),
      distributed: distributedShares(DEVICES),
      runs: runs,
      served: {
        devices: DEVICES,
        epsilon: target.epsilon,
        floor: target.floor,
        headline: target.headline,
        rule: target.rule,
        setting: { rounds: recipe.rounds, samplingRate: recipe.samplingRate, why: "the caller's recipe override" },
        distributed: distributedShares(DEVICES),
        runs,
      },
    };
    const md = modeComparisonMarkdown(comparison).join("\n");
    expect(md).toContain("### Served through the local edge (20 devices, seed 1)");
    expect(md).toContain(
      `| distributed | ${distributed!.noiseMultiplier!.toFixed(3)} | ${distributed!.epsilon!.toFixed(3)} |`,
    );
    expect(md).toContain(`both solved for ε = ${EPSILON}.`);
    expect(md).not.toContain("**Why ε");
    expect(md).toContain("**Rounds:** 2 at q = 1, in both modes: the caller's recipe override.");
    expect(md).toContain("### In process (every device, more seeds)");
  }, 240_000);
});
