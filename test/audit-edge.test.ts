/**
 * `fedge audit` against the real edge (`wrangler dev` on port 8846, fresh state): the one-shot empirical privacy audit
 * (Andrew et al. 2024, arXiv 2302.03098) runs on a never-served shadow of a population. Canary devices register under
 * an app API key, the edge's Poisson coin samples them, the CLI aggregates with the population's DP mechanism and
 * reports ε̂ next to the ε the shadow's ledger charged; the population itself, its served model and its ledger are
 * untouched, and the edge refuses to serve any shadow version.
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackend, type Backend } from "@fedge/gpu-node";
import { ModelDetail, PopulationPrivacyStatus, toBase64Url } from "@fedge/protocol";
import { exportModel, type SigningKey } from "fedge";
import { loadOrCreateSigningKey } from "fedge/export";
import { runCli } from "fedge/cli";
import { EdgeAdminClient, EdgeAdminError } from "fedge/edge";
import type { LocalEdge } from "@fedge/local-edge";
import { startTestEdge, type TestEdge } from "./helpers/test-edge.ts";
import { zeroMnistRegression } from "./helpers/zero-model.ts";

const PORT = 8846;
const ADMIN_TOKEN = `fa_${toBase64Url(crypto.getRandomValues(new Uint8Array(24)))}`;

let testEdge: TestEdge;
let dir: string;
let edge: LocalEdge;
let key: SigningKey;
let keyFile: string;
let tokenFile: string;
let apiKeyFile: string;
let apiKeyId: string;
let operator: EdgeAdminClient;
let backend: Backend;

beforeAll(async () => {
  testEdge = await startTestEdge({
    port: PORT,
    name: "audit-e2e",
    adminToken: ADMIN_TOKEN,
    aggregatorKeyFile: "aggregator-key.json",
  });
  ({ dir, edge, key, operator, keyFile, tokenFile } = testEdge);
  apiKeyFile = path.join(dir, "api-key");
  backend = await createBackend({ prefer: "cpu", log: () => undefined });
  const created = await operator.createApiKey("audit e2e canaries", 1_000_000);
  const apiKey = created.key;
  apiKeyId = created.id;
  await writeFile(apiKeyFile, `${apiKey}\n`, { mode: 0o600 });
  const seed = await exportModel({
    model: zeroMnistRegression(),
    name: "digits",
    version: 1,
    backend,
    signingKey: key,
  });
  await operator.uploadModelVersion(seed.manifest, seed.onnx, true);
}, 180_000);

afterAll(async () => {
  await backend?.dispose();
  await testEdge?.stop();
});

async function detail(model: string): Promise<ModelDetail> {
  const res = await fetch(`${edge.url}/v1/models/${model}`);
  expect(res.status).toBe(200);
  return ModelDetail.parse(await res.json());
}

async function ledger(model: string): Promise<PopulationPrivacyStatus> {
  const res = await fetch(`${edge.url}/v1/populations/${model}/privacy`);
  expect(res.status).toBe(200);
  return PopulationPrivacyStatus.parse(await res.json());
}

/** The canary API key's active devices (its quota slots in use). */
async function activeDevices(): Promise<number> {
  const res = await fetch(`${edge.url}/v1/admin/device-quotas/${apiKeyId}`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { active_devices: number }).active_devices;
}

async function audit(extra: string[]): Promise<{ code: number; lines: Record<string, unknown>[]; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await runCli(
    [
      "audit",
      "--edge",
      edge.url,
      "--admin-token-file",
      tokenFile,
      "--api-key-file",
      apiKeyFile,
      "--signing-key",
      keyFile,
      "--backend",
      "cpu",
      "--model",
      "digits",
      "--privacy-mode",
      "central",
      "--noise-multiplier",
      "1",
      "--target-epsilon",
      "50",
      "--delta",
      "1e-5",
      "--sampling-rate",
      "0.5",
      "--expected-clients",
      "20",
      "--clip-norm",
      "1",
      ...extra,
    ],
    { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) },
  );
  const lines = stdout
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { code, lines, stderr };
}

describe("fedge audit through wrangler dev", () => {
  it("audits a shadow population: ε̂ with its interval next to the ledger's ε; the population is untouched", async () => {
    const before = await detail("digits");
    const r = await audit(["--id", "e2e", "--rounds", "3", "--canaries", "40", "--resamples", "200"]);
    expect(r.code, r.stderr).toBe(0);
    const rounds = r.lines.filter((l) => l.type === "round");
    expect(rounds).toHaveLength(3);
    for (const round of rounds) {
      expect(round.outcome).toBe("refused");
      expect(String(round.reason)).toMatch(/audit shadow of digits/);
    }
    // the edge's coin sampled the canaries (q = 0.5 of 40 per round)
    const accepted = rounds.map((x) => x.accepted as number);
    expect(accepted.every((a) => a > 5 && a < 35)).toBe(true);

    const result = r.lines.at(-1)!;
    expect(result).toMatchObject({ type: "audit", shadow: "digits-audit-e2e", auditOf: "digits", rounds: 3 });
    const shadowLedger = await ledger("digits-audit-e2e");
    expect(shadowLedger.rounds).toHaveLength(3);
    expect(result.epsilon).toBe(shadowLedger.epsilon_spent);
    expect(result.delta).toBe(1e-5);
    const hat = result.epsilonHat as number;
    const interval = result.interval as { lower: number; upper: number; confidence: number };
    expect(Number.isFinite(hat)).toBe(true);
    expect(interval.lower).toBeLessThanOrEqual(hat);
    expect(interval.upper).toBeGreaterThanOrEqual(hat);
    expect(interval.confidence).toBe(0.95);
    // the inserted canaries lean towards the final delta (μ/σ ≈ q√T/z ≈ 0.87, ≈ 4 standard errors at k = 40)
    const observed = result.observed as { mean: number; count: number };
    const unobserved = result.unobserved as { mean: number; count: number };
    expect(observed.count).toBe(40);
    expect(unobserved.count).toBe(40);
    expect(observed.mean).toBeGreaterThan(unobserved.mean);

    // the shadow holds every round's version, serves none of them, and the edge refuses to promote one
    const shadow = await detail("digits-audit-e2e");
    expect(shadow.audit_of).toBe("digits");
    expect(shadow.serving_version).toBeNull();
    expect(shadow.versions.map((v) => v.version)).toEqual([1, 2, 3, 4]);
    const promote = operator.promote("digits-audit-e2e", 4);
    await expect(promote).rejects.toBeInstanceOf(EdgeAdminError);
    await expect(promote).rejects.toMatchObject({ status: 409, edgeCode: "audit_shadow" });
    // the production population: same versions, same serving version, no ledger charge
    expect(await detail("digits")).toEqual(before);
    expect((await ledger("digits")).rounds).toEqual([]);
  }, 120_000);

  it("refuses a taken audit id (exit 1) and bad flags (exit 2) without touching the edge", async () => {
    const taken = await audit(["--id", "e2e", "--rounds", "1", "--canaries", "4"]);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toMatch(/already exists/);
    expect((await detail("digits-audit-e2e")).versions).toHaveLength(4);
    const bad = await audit(["--id", "Not-OK", "--rounds", "1"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--id/);
    const none = await audit(["--id", "n1", "--privacy-mode", "none"]);
    expect(none.code).toBe(2);
    const missing = await fetch(`${edge.url}/v1/models/digits-audit-n1`);
    expect(missing.status).toBe(404);
  }, 60_000);

  it("deletes the shadow of an audit that fails after creating it, so nothing is left and the id is free", async () => {
    const badKeyFile = path.join(dir, "bad-api-key");
    await writeFile(badKeyFile, "fk_notakey_000000000000000000000000\n", { mode: 0o600 });
    const before = await detail("digits");
    const r = await audit(["--id", "failed", "--rounds", "1", "--canaries", "4", "--api-key-file", badKeyFile]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/deleted its shadow digits-audit-failed/);
    expect((await fetch(`${edge.url}/v1/models/digits-audit-failed`)).status).toBe(404);
    expect(await ledger("digits-audit-failed")).toMatchObject({ budget: null, rounds: [] });
    expect(await detail("digits")).toEqual(before);
    // the id is free again; and the operator deletes a shadow the same way
    const again = await operator.createAuditShadow("digits", {
      id: "failed",
      budget: { epsilon: 1, delta: 1e-5, accountant: "rdp" },
    });
    expect(again.name).toBe("digits-audit-failed");
    await operator.deleteAuditShadow("digits", "failed");
    expect((await fetch(`${edge.url}/v1/models/digits-audit-failed`)).status).toBe(404);
    await expect(operator.deleteAuditShadow("digits", "failed")).rejects.toMatchObject({ status: 404 });
  }, 60_000);

  it("deletes the canary devices of an audit that fails after they trained, and its shadow", async () => {
    const before = await activeDevices();
    // A signing key the edge does not trust: the canaries register, check in and upload; the new version is refused.
    const untrusted = path.join(dir, "untrusted-key.json");
    await loadOrCreateSigningKey(untrusted);
    const r = await audit(["--id", "untrusted", "--rounds", "2", "--canaries", "6", "--signing-key", untrusted]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/canaries: \d+ of 6 selected/);
    expect(r.stderr).toMatch(/not a trusted aggregator key/);
    expect(r.stderr).toMatch(/deleted its shadow digits-audit-untrusted/);
    expect(r.stderr).toMatch(/deleted its 6 canary devices/);
    expect(await activeDevices()).toBe(before);
    expect((await fetch(`${edge.url}/v1/models/digits-audit-untrusted`)).status).toBe(404);
    expect(await ledger("digits-audit-untrusted")).toMatchObject({ budget: null, rounds: [] });
  }, 120_000);

  it("documents itself: fedge audit --help", async () => {
    let out = "";
    const code = await runCli(["audit", "--help"], { stdout: (t) => (out += t), stderr: (t) => (out += t) });
    expect(code).toBe(0);
    expect(out).toMatch(/arXiv 2302\.03098/);
    expect(out).toMatch(/never serves/);
    expect(out).toMatch(/--canaries K/);
  });
});
