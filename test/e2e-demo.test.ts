/**
 * The demo end to end, small (`SMALL_RUN`): 200 simulated devices (real FedgeClients, misbehaving and intermittent
 * ones included), 2 private rounds at ε = 1 through the real local edge (`wrangler dev` on port 8822) and the
 * aggregator (round engine on gpu-node, DP-FedAvg central with adaptive clipping, int8 export, publish), from a briefly
 * pretrained public-only model; one in-process point of the curve and no ceiling, to stay fast. Asserts what issue 18
 * asks of it: the private model served through the edge (b) beats the public-only model (a) on the test digits (the
 * setting leaves that margin 5 noise sds on the validation pool: demo/src/small-run.ts); and what the demo checks: ε
 * from the ledger matches an independent recomputation and stays within the target, a device that sat out rounds has
 * a smaller ε, the served predictions match onnxruntime-node, misbehaving devices were all refused, the report
 * publishes no exact device counts, and the report and both plots are well-formed. With `--audit` (40 canaries) the
 * one-shot privacy audit runs on the population's never-served shadow and the report shows ε̂ next to the ledger's ε.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAccountant } from "@fedge/privacy";
import { DEMO_MIN_SHARDS, runDemo, SMALL_RUN, type DemoResult } from "@fedge/demo";

const PORT = 8822;
const ROUNDS = SMALL_RUN.recipe.rounds;
let outDir: string;
let result: DemoResult;
const lines: string[] = [];

beforeAll(async () => {
  outDir = await mkdtemp(path.join(tmpdir(), "fedge-demo-e2e-"));
  result = await runDemo({
    // a short public pretraining leaves the devices' 7,995 digits room to show within 2 rounds; 200 devices at q = 0.5
    // (~100 reports a round) keep (b)'s margin over (a) clear of the noise at ε = 1 (demo/src/small-run.ts)
    clients: SMALL_RUN.clients,
    epsilon: SMALL_RUN.epsilon,
    pretrainEpochs: SMALL_RUN.pretrainEpochs,
    recipe: SMALL_RUN.recipe,
    seeds: 1,
    curveEpsilons: [4],
    ceiling: false,
    port: PORT,
    outDir,
    backend: "cpu",
    misbehavingPerKind: 2,
    intermittent: 5,
    auditCanaries: 40,
    log: (line) => lines.push(line),
  });
}, 400_000);

afterAll(async () => {
  console.log(lines.join("\n"));
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

describe("npm run demo, small (200 devices, 2 rounds, ε = 1)", () => {
  it("(b) the private model served through the edge beats (a) the public-only model on the test digits", () => {
    const s = result.report.served;
    const a = s.initialServedAccuracy;
    const b = s.rounds.at(-1)!.servedAccuracy;
    expect(s.rounds).toHaveLength(ROUNDS);
    // v1 is the public-only model of seed 1, served int8: the same number as its in-process int8 evaluation
    expect(a).toBeCloseTo(result.report.publicOnly[0]!.accuracy, 2);
    const rounds = result.audit.rounds.map((r) => `${r.accepted} accepted, ${r.queued} left queued`).join("; ");
    expect(
      b,
      `served accuracy ${a} then ${s.rounds.map((r) => r.servedAccuracy).join(", ")} (${rounds})`,
    ).toBeGreaterThan(a);
  });

  it("spends ε as the accountant says: recomputed from the ledger, within the target; a device that sat out spends less", () => {
    const s = result.report.served;
    expect(s.epsilonCheck.recomputed).toBeCloseTo(s.epsilonCheck.ledger, 9);
    const acc = createAccountant(s.privacy.accountant);
    acc.step({ noiseMultiplier: s.noiseMultiplier, sampleRate: result.report.recipe.samplingRate }, ROUNDS);
    expect(acc.getEpsilon(result.report.delta)).toBeCloseTo(s.privacy.epsilon, 9);
    expect(s.privacy.epsilon).toBeLessThanOrEqual(result.report.headlineEpsilon);
    const eps = s.rounds.map((r) => r.epsilon);
    for (let i = 1; i < eps.length; i++) expect(eps[i]!).toBeGreaterThan(eps[i - 1]!);
    const [always, sometimes] = s.devices;
    expect(always!.journal).toHaveLength(ROUNDS);
    expect(always!.epsilon).toBeCloseTo(s.privacy.epsilon, 9);
    expect(sometimes!.journal.length).toBeLessThan(ROUNDS);
    expect(sometimes!.epsilon).toBeLessThan(always!.epsilon);
    // the aggregator's own ledger of the same rounds agrees with the edge's (up to the PLD's pessimistic round-off pads)
    expect(Math.abs(s.epsilonCheck.aggregator - s.epsilonCheck.ledger)).toBeLessThan(1e-4 * s.epsilonCheck.ledger);
  });

  it("each device's own ε comes from the edge's signed receipts: one per round it checked in for, with the ledger's (q, z)", () => {
    const s = result.report.served;
    const [always, sometimes] = s.devices;
    expect(always!.checkinReceipts.map((r) => r.roundId)).toEqual(s.privacy.rounds.map((r) => r.roundId));
    for (const [i, r] of always!.checkinReceipts.entries()) {
      expect(r.samplingRate).toBe(s.privacy.rounds[i]!.sampleRate);
      expect(r.noiseMultiplier).toBe(s.privacy.rounds[i]!.noiseMultiplier);
    }
    expect(sometimes!.checkinReceipts.map((r) => r.roundId)).toEqual(sometimes!.journal.map((j) => j.roundId));
    // the SDK accounts with RDP over its receipts: recompute it here from the ledger's steps
    const rdp = createAccountant("rdp");
    rdp.step({ noiseMultiplier: s.noiseMultiplier, sampleRate: result.report.recipe.samplingRate }, ROUNDS);
    expect(always!.ownEpsilon!.rounds).toBe(ROUNDS);
    expect(always!.ownEpsilon!.epsilon).toBeCloseTo(rdp.getEpsilon(result.report.delta), 6);
    expect(sometimes!.ownEpsilon!.epsilon).toBeLessThan(always!.ownEpsilon!.epsilon);
  });

  it("advanced the served version, and /predict matches onnxruntime-node on the downloaded ONNX file", () => {
    const s = result.report.served;
    expect(s.rounds.at(-1)!.servedVersion).toBeGreaterThan(s.initialVersion);
    expect(s.ortCheck.version).toBe(s.rounds.at(-1)!.servedVersion);
    expect(s.ortCheck.samples).toBe(result.report.testSamples);
    expect(s.ortCheck.argmaxAgreement).toBeGreaterThanOrEqual(0.999);
    expect(s.ortCheck.maxAbsLogitDiff).toBeLessThan(1e-3);
  });

  it("ran its rounds on coordinator shards, with int8 uploads at most 0.3× the float32 bytes", async () => {
    const s = result.report.served;
    // 100 devices: the default rule gives S = 1, so the demo's explicit minimum applies; the edge recorded it per round.
    expect(s.coordination.shards).toBe(DEMO_MIN_SHARDS);
    expect(s.uploads.dtype).toBe("int8");
    expect(s.uploads.updateLength).toBeGreaterThan(0);
    expect(s.uploads.bytesPerUpdate).toBeGreaterThan(s.uploads.updateLength);
    expect(s.uploads.bytesPerUpdate).toBeLessThanOrEqual(0.3 * 4 * s.uploads.updateLength);
    const md = await readFile(result.files.report, "utf8");
    expect(md).toContain(`ran on S = ${DEMO_MIN_SHARDS} coordinator shards`);
    expect(md).toContain(`int8, ${Math.round(s.uploads.bytesPerUpdate)} bytes per signed update`);
  });

  it("refused every misbehaving upload with a 4xx, and the accepted count is exactly the honest uploads", () => {
    const { audit } = result;
    expect(audit.notRefused).toBe(0);
    expect(result.report.served.misbehavingRefused).toBe(true);
    expect(result.report.served.acceptedAreHonest).toBe(true);
    for (const r of audit.rounds) {
      expect(r.accepted).toBe(r.honestAccepted);
      expect(r.aggregated).toBe(r.accepted);
    }
    expect(audit.honestErrors).toEqual({});
    for (const [kind, answers] of Object.entries(audit.refusals)) {
      const expected = {
        bad_signature: "401 bad_signature",
        replay: "409 nonce_used",
        nan: "400 non_finite",
        oversize: "413 payload_too_large",
        dropout: "",
      }[kind];
      for (const a of Object.keys(answers)) expect(a).toBe(expected);
    }
  });

  it("wrote report.md with (a)–(c), no exact device counts, and two well-formed SVG plots", async () => {
    const md = await readFile(result.files.report, "utf8");
    expect(md).toContain("# fedge demo report");
    for (const k of ["| (a) |", "| (b) |", "| (c) |"]) expect(md).toContain(k);
    const summary = await readFile(result.files.summary, "utf8");
    for (const text of [md, summary])
      for (const field of ["checkedIn", "honestAccepted", "| checked in |", "| selected |", "| accepted |"])
        expect(text).not.toContain(field);
    for (const f of [result.files.accuracyVsRound, result.files.accuracyVsEpsilon]) {
      const svg = await readFile(f, "utf8");
      expect(svg.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"')).toBe(
        true,
      );
      expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
      expect(svg).toContain('<path d="M');
      expect(svg).not.toMatch(/NaN|undefined|Infinity/);
    }
  });

  it("--audit: the report shows ε (accountant, the shadow's ledger) next to ε̂ (audit) with its interval", async () => {
    const a = result.report.privacyAudit!;
    expect(a).toMatchObject({ shadow: "mnist-dp-audit-demo", auditOf: "mnist-dp", rounds: ROUNDS, canaries: 40 });
    // the shadow ran the served population's mechanism: the same target ε over the same rounds
    expect(a.epsilon!).toBeGreaterThan(0);
    expect(a.epsilon!).toBeLessThanOrEqual(1 + 1e-9);
    expect(a.epsilon!).toBeCloseTo(result.report.served.privacy.epsilon, 6);
    expect(Number.isFinite(a.epsilonHat)).toBe(true);
    expect(a.interval.lower).toBeLessThanOrEqual(a.epsilonHat);
    expect(a.interval.upper).toBeGreaterThanOrEqual(a.epsilonHat);
    const md = await readFile(result.files.report, "utf8");
    expect(md).toContain("### Empirical privacy audit");
    expect(md).toContain(
      `| ${a.epsilon!.toFixed(3)} | ${a.epsilonHat.toFixed(3)} | [${a.interval.lower.toFixed(3)}, ${a.interval.upper.toFixed(3)}]`,
    );
  });
});
