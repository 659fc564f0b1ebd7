/**
 * `participate()` in a distributed round, against the real edge (`wrangler dev`, port 8846): seven devices — five SDK
 * clients in Node and two in headless Chromium (one keeps its identity in IndexedDB as a non-extractable WebCrypto
 * key, so it signs asynchronously) — train, clip, encode and run SecAgg+ through the edge while a driver (the
 * operator) closes each stage once every live device answered it. One Node device drops before masking and one after
 * masking (their network fails); the other five finish, and the operator's modular sum is exactly the sum of the six
 * encoded updates that were masked.
 *
 * Then the same with the SDK's own encoder, the distributed discrete Gaussian (each device's noise share drawn from
 * its platform's CSPRNG: the browser's `crypto.getRandomValues` in Chromium), Node and browser devices dropping at
 * stage deadlines, a browser device whose policy refuses the task, and the aggregator's driver: the decoded mean lies
 * within the plan's noise bound of the devices' plain clipped mean (and the noise is there), and the edge's ledger
 * charged the ε the accountant gives for the noise that ran.
 *
 * Last, a checked-in cohort (`DistributedNoise.cohort` = `checked-in`, q = 0.5): fresh Chromium devices check in until
 * the coin leaves one out; that one takes part with input `noise-only` (no training, a zero update through the real
 * encoder, its share from the browser's CSPRNG) beside Node devices, and the decoded sum is the sampled devices'
 * updates plus the noise of every share; the edge charged the cohort's ε.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FedgeClient, memoryStorage, plainModularEncoder, type ParticipateResult } from "@fedge/client";
import { clipToNorm, trainDeviceDelta, trainableLength } from "@fedge/ml";
import { PrivacyLedger, cryptoRandomBytes, decodeDistributedSum, distributedSharesOf } from "@fedge/privacy";
import {
  fromBase64Url,
  type PopulationPrivacyStatus,
  type RoundStatus,
  type RoundTask,
  type SecAggOutcome,
  type SecAggStatus,
} from "@fedge/protocol";
import { decodeVector } from "@fedge/secagg";
import { EdgeAdminClient, driveSecureAggregation } from "fedge/edge";
import {
  openRound,
  startEdgeFixture,
  toyData,
  uploadToyModel,
  type EdgeFixture,
  type ToyModel,
} from "@fedge/local-edge";
import { startBrowser, type BrowserFixture } from "./helpers/browser.ts";
import { distributedRoundFields } from "./helpers/distributed-round.ts";

const PORT = 8846;
const BITS = 24;
const SCALE = 2 ** 12;
let fx: EdgeFixture;
let toy: ToyModel;
let round: RoundStatus;
let browser: BrowserFixture;

beforeAll(async () => {
  browser = await startBrowser("secagg");
  fx = await startEdgeFixture(PORT);
  toy = await uploadToyModel(fx, "secagg-toy");
  const length = trainableLength(toy.params, "all");
  round = await openRound(
    fx,
    toy,
    distributedRoundFields(length, { bits: BITS, expectedClients: 7, minClients: 5 }).fields,
  );
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await fx?.stop();
});

/** A fetch whose network fails for POSTs to one secure-aggregation stage: the device drops there. */
function failingAt(stage: string): typeof fetch {
  return (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if (init?.method === "POST" && url.endsWith(`/secagg/${stage}`))
      return Promise.reject(new TypeError("network down"));
    return fetch(input, init);
  };
}

describe("participate() in a distributed round, Node and Chromium devices against wrangler dev", () => {
  it("finishes with dropouts, and the operator's sum is the sum of the masked encodings", async () => {
    const { data, labels } = toyData(toy.sizes, 24, 31);
    const encodedBy = new Map<number, Uint32Array>();
    const encoderFor = (i: number) => {
      const plain = plainModularEncoder(SCALE);
      return (clipped: Float32Array, task: RoundTask) => {
        const out = plain(clipped, task);
        encodedBy.set(i, out);
        return out;
      };
    };
    const nodeClients = [0, 1, 2, 3, 4].map(
      (i) =>
        new FedgeClient({
          baseUrl: fx.url,
          apiKey: fx.apiKey,
          storage: memoryStorage(),
          edgePublicKey: fx.edgePublicKey,
          privacyPolicy: { allowedModes: ["distributed"] },
          maxRetries: 0,
          ...(i === 3 ? { fetch: failingAt("masked-input") } : i === 4 ? { fetch: failingAt("consistency") } : {}),
        }),
    );
    // Settled from the start: the two dropouts reject while the driver is still closing stages.
    const node = Promise.allSettled(
      nodeClients.map((c, i) =>
        c.participate({
          model: toy.name,
          data,
          labels,
          encoder: encoderFor(i),
          secureAggregation: { pollMs: 150, timeoutMs: 240_000 },
        }),
      ),
    );

    const page = await browser.openPage(fx.url);
    // Debian's Chromium (≥ 133) computes X25519 in WebCrypto, so the browser devices below agree their SecAgg+ keys
    // natively (@fedge/secagg probes exactly this, RFC 7748 §6.1's vector, before it leaves tweetnacl aside).
    const nativeX25519 = await page.evaluate(async () => {
      const hex = (s: string) => Uint8Array.from(s.match(/../g)!, (b) => parseInt(b, 16));
      const pkcs8 = hex(
        "302e020100300506032b656e04220420" + "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
      );
      const mine = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "X25519" }, false, ["deriveBits"]);
      const theirs = await crypto.subtle.importKey(
        "raw",
        hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"),
        { name: "X25519" },
        false,
        [],
      );
      const shared = new Uint8Array(await crypto.subtle.deriveBits({ name: "X25519", public: theirs }, mine, 256));
      return Array.from(shared, (b) => b.toString(16).padStart(2, "0")).join("");
    });
    expect(nativeX25519).toBe("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    const inBrowser = page.evaluate(
      async ({ apiKey, edgePublicKey, model, data, labels, scale }) => {
        const { FedgeClient, memoryStorage, plainModularEncoder } = (
          window as unknown as { fedge: typeof import("@fedge/client") }
        ).fedge;
        const common = {
          baseUrl: location.origin,
          apiKey,
          edgePublicKey,
          privacyPolicy: { allowedModes: ["distributed" as const] },
        };
        // One device on the default browser storage (IndexedDB, WebCrypto key), one in memory.
        const clients = [new FedgeClient(common), new FedgeClient({ ...common, storage: memoryStorage() })];
        const encoded: number[][] = [];
        const results = await Promise.all(
          clients.map((c, i) =>
            c.participate({
              model,
              data: Float32Array.from(data),
              labels: Uint8Array.from(labels),
              encoder: (clipped, task) => {
                const out = plainModularEncoder(scale)(clipped, task);
                encoded[i] = Array.from(out);
                return out;
              },
              secureAggregation: { pollMs: 150, timeoutMs: 240_000 },
            }),
          ),
        );
        const keys = await Promise.all(clients.map(async (c) => (await c.register()).deviceId));
        return { results: JSON.parse(JSON.stringify(results)) as unknown[], encoded, keys };
      },
      {
        apiKey: fx.apiKey,
        edgePublicKey: fx.edgePublicKey,
        model: toy.name,
        data: Array.from(data),
        labels: Array.from(labels),
        scale: SCALE,
      },
    );

    // The operator: close each stage once every device still in the round answered it.
    const expected: [string, number][] = [
      ["advertise", 7],
      ["share-keys", 7],
      ["masked-input", 6],
      ["consistency", 5],
      ["unmask", 5],
    ];
    const base = `/v1/admin/rounds/${round.round_id}/secagg`;
    for (const [stage, count] of expected) {
      const until = Date.now() + 180_000;
      for (;;) {
        const status = await fx.admin<SecAggStatus>("GET", base);
        if (status.stage === stage && status.answered === count) break;
        if (Date.now() > until) throw new Error(`stuck at ${JSON.stringify(status)} waiting for ${count} in ${stage}`);
        await new Promise((r) => setTimeout(r, 150));
      }
      await fx.admin("POST", `${base}/close`);
    }

    const settled = await node;
    const fromBrowser = await inBrowser;
    const ok = (r: PromiseSettledResult<ParticipateResult>) =>
      r.status === "fulfilled" && r.value.selected && r.value.status;
    expect(settled.slice(0, 3).map(ok)).toEqual(["aggregated", "aggregated", "aggregated"]);
    expect(settled[3]!.status).toBe("rejected");
    expect(settled[4]!.status).toBe("rejected");
    expect(fromBrowser.results.map((r) => (r as { status: string }).status)).toEqual(["aggregated", "aggregated"]);

    const outcome = await fx.admin<SecAggOutcome>("GET", `${base}/sum`);
    expect(outcome.survivors).toHaveLength(6);
    const length = outcome.encoded_length;
    const want = new Uint32Array(length);
    const masked = [0, 1, 2, 4]
      .map((i) => encodedBy.get(i)!)
      .concat(fromBrowser.encoded.map((e) => Uint32Array.from(e)));
    for (const v of masked) for (let j = 0; j < length; j++) want[j] = (want[j]! + v[j]!) % 2 ** BITS;
    const sum = decodeVector(outcome.sum, length, BITS);
    expect(Array.from(sum)).toEqual(Array.from(want));
    // The sum is of real clipped updates: not all zero.
    expect(sum.some((v) => v !== 0)).toBe(true);
    expect(fromBrowser.keys.every((id) => outcome.survivors.includes(id))).toBe(true);
  });

  it("runs the real noised encoder in Chromium and Node: the decoded mean is within its noise bound, ε as accounted", async () => {
    const model = await uploadToyModel(fx, "secagg-noised");
    await fx.admin("PUT", `/v1/admin/populations/${model.name}/privacy-budget`, { epsilon: 1e6, delta: 1e-5 });
    const length = trainableLength(model.params, "all");
    const z = 1;
    const { plan, fields } = distributedRoundFields(length, {
      bits: 20,
      noiseMultiplier: z,
      expectedClients: 6,
      minClients: 4,
    });
    // One example a device, one step of batch 1: every device's clipped Δ is the same, known here exactly.
    const data = Float32Array.from({ length: model.sizes[0]! }, (_, i) => (i + 1) / 8);
    const labels = Uint8Array.of(1);
    const page = await browser.openPage(fx.url);
    const noised = await openRound(fx, model, {
      ...fields,
      secure_aggregation: {
        ...(fields.secure_aggregation as object),
        stage_s: { "share-keys": 8, "masked-input": 6, consistency: 6, unmask: 20 },
      },
      learning_rate: 1,
      local_epochs: 1,
      batch_size: 1,
      duration_s: 20,
    });
    const admin = new EdgeAdminClient({ baseUrl: fx.url, adminToken: fx.adminToken });
    // Seven check in: four in Node (one drops after masking), three in Chromium (one drops before masking, one refuses).
    // Devices poll once a second (the stages wait on deadlines here) and keep the SDK's retries: all share one API key.
    const driving = driveSecureAggregation(admin, noised.round_id, { pollMs: 150, expectedCheckIns: 7 });
    const node = Promise.allSettled(
      [0, 1, 2, 3].map((i) =>
        new FedgeClient({
          baseUrl: fx.url,
          apiKey: fx.apiKey,
          storage: memoryStorage(),
          edgePublicKey: fx.edgePublicKey,
          privacyPolicy: { allowedModes: ["distributed"] },
          ...(i === 3 ? { fetch: failingAt("consistency") } : {}),
        }).participate({ model: model.name, data, labels, secureAggregation: { pollMs: 1000 } }),
      ),
    );
    const inBrowser = page.evaluate(
      async ({ apiKey, edgePublicKey, model, data, labels }) => {
        const { FedgeClient, memoryStorage } = (window as unknown as { fedge: typeof import("@fedge/client") }).fedge;
        const common = { baseUrl: location.origin, apiKey, edgePublicKey, storage: memoryStorage() };
        const dropping: typeof fetch = (input, init) =>
          init?.method === "POST" &&
          String(input instanceof Request ? input.url : input).endsWith("/secagg/masked-input")
            ? Promise.reject(new TypeError("network down"))
            : fetch(input, init);
        const clients = [
          new FedgeClient({ ...common, privacyPolicy: { allowedModes: ["distributed"] } }),
          new FedgeClient({ ...common, privacyPolicy: { allowedModes: ["distributed"] }, fetch: dropping }),
          // wants each report to cost at most ε = 0.01: this round's noise is far weaker
          new FedgeClient({ ...common, privacyPolicy: { allowedModes: ["distributed"], maxLocalEpsilon: 0.01 } }),
        ];
        const settled = await Promise.allSettled(
          clients.map((c) =>
            c.participate({
              model,
              data: Float32Array.from(data),
              labels: Uint8Array.from(labels),
              secureAggregation: { pollMs: 1000 },
            }),
          ),
        );
        return settled.map((r) =>
          r.status === "fulfilled"
            ? { ok: true, status: (r.value as { status?: string }).status }
            : { ok: false, name: (r.reason as Error).name, reason: (r.reason as { reason?: string }).reason },
        );
      },
      { apiKey: fx.apiKey, edgePublicKey: fx.edgePublicKey, model: model.name, data: Array.from(data), labels: [1] },
    );
    const [end, nodeResults, browserResults] = await Promise.all([driving, node, inBrowser]);
    expect(end).toEqual({ finished: true });
    expect(
      nodeResults.map((r) => (r.status === "fulfilled" ? (r.value as { status: string }).status : "failed")),
    ).toEqual(["aggregated", "aggregated", "aggregated", "failed"]);
    expect(browserResults).toEqual([
      { ok: true, status: "aggregated" },
      // its network failed when it posted its masked input: the edge never saw it, the round went on without it
      { ok: false, name: "APIConnectionError", reason: undefined },
      // the device's own policy check ran in the page, before it trained or sent anything
      { ok: false, name: "PrivacyPolicyError", reason: "epsilon_too_high" },
    ]);

    // The aggregator's view: five masked inputs (the Node device that dropped after masking included), decoded.
    const outcome = await admin.secureAggregationSum(noised.round_id);
    expect(outcome.survivors).toHaveLength(5);
    const decoded = decodeDistributedSum(outcome.sum, {
      plan,
      rotationSeed: fromBase64Url(fields.rotation_seed as string),
    });
    const clipped = trainDeviceDelta({
      params: model.params,
      task: { learning_rate: 1, local_epochs: 1, batch_size: 1, trainable: "all" },
      data,
      labels,
      random: cryptoRandomBytes,
    }).values;
    clipToNorm(clipped, 1);
    // ‖decoded − 5·Δc‖₂ is the rotated noise plus rounding over γ (the rotation keeps norms): the five noise shares
    // N_Z(0, σ_l²) on d' coordinates (a χ² with d' degrees of freedom stays under 2·d'·5σ_l² but far above d'·5σ_l²/16
    // except with probability < 1e-9) and five rounding errors of at most 1 a coordinate (≤ 5·√d').
    let err2 = 0;
    for (let j = 0; j < length; j++) err2 += (decoded[j]! - 5 * clipped[j]!) ** 2;
    const noiseNorm = Math.sqrt(plan.paddedLength * 5 * plan.localVariance) / plan.scale;
    const roundingNorm = (5 * Math.sqrt(plan.paddedLength)) / plan.scale;
    const err = Math.sqrt(err2);
    expect(err).toBeLessThan(Math.SQRT2 * noiseNorm + roundingNorm);
    expect(err).toBeGreaterThan(noiseNorm / 4 - roundingNorm);
    // The mean the aggregator takes is within the bound's fifth of the devices' plain clipped mean.
    const meanErr = Math.sqrt(clipped.reduce((a, v, j) => a + (decoded[j]! / 5 - v) ** 2, 0));
    expect(meanErr).toBeLessThan((Math.SQRT2 * noiseNorm + roundingNorm) / 5);

    // ε: the edge charged KLS21's bound for the noise the devices ran, as the accountant computes it.
    const status = (await (
      await fetch(`${fx.url}/v1/populations/${model.name}/privacy`)
    ).json()) as PopulationPrivacyStatus;
    const charged = status.rounds.find((r) => r.round_id === noised.round_id)!;
    expect(charged).toMatchObject({ privacy_mode: "distributed" });
    const ledger = new PrivacyLedger({ population: model.name, accountant: "rdp" });
    ledger.record({
      roundId: charged.round_id,
      sampleRate: 1,
      noiseMultiplier: z,
      mode: "distributed",
      openedAt: charged.charged_at,
      distributed: distributedSharesOf(charged.distributed!),
    });
    expect(status.epsilon_spent).toBeCloseTo(ledger.spent(1e-5), 9);
    expect(charged.distributed!.share_variance).toBe(plan.localVariance);
  }, 180_000);

  it("in a checked-in cohort a Chromium device the coin left out adds its noise share with a zero update", async () => {
    const model = await uploadToyModel(fx, "secagg-cohort");
    await fx.admin("PUT", `/v1/admin/populations/${model.name}/privacy-budget`, { epsilon: 1e6, delta: 1e-5 });
    const length = trainableLength(model.params, "all");
    const q = 0.5;
    const { plan, fields } = distributedRoundFields(length, {
      bits: 20,
      noiseMultiplier: 2,
      expectedClients: 6,
      minClients: 3,
      maxClients: 16,
      cohort: "checked-in",
    });
    const data = Float32Array.from({ length: model.sizes[0]! }, (_, i) => (i + 1) / 8);
    const labels = Uint8Array.of(1);
    const page = await browser.openPage(fx.url);
    const cohort = await openRound(fx, model, {
      ...fields,
      sampling_rate: q,
      learning_rate: 1,
      local_epochs: 1,
      batch_size: 1,
      duration_s: 120,
    });
    // Chromium: fresh devices check in until the coin leaves one out (each keeps its answer); every one of them will
    // take part, with the real encoder and its share from the browser's crypto.getRandomValues.
    type Kept = { clients: import("@fedge/client").FedgeClient[] };
    const browserInputs = await page.evaluate(
      async ({ apiKey, edgePublicKey, model }) => {
        const { FedgeClient, memoryStorage } = (window as unknown as { fedge: typeof import("@fedge/client") }).fedge;
        const kept = { clients: [] as InstanceType<typeof FedgeClient>[] };
        (window as unknown as { kept: typeof kept }).kept = kept;
        const inputs: string[] = [];
        for (let i = 0; i < 20 && !inputs.includes("noise-only"); i++) {
          const c = new FedgeClient({
            baseUrl: location.origin,
            apiKey,
            edgePublicKey,
            storage: memoryStorage(),
            privacyPolicy: { allowedModes: ["distributed"] },
          });
          const answer = await c.checkin(model);
          inputs.push(answer.selected ? (answer.input ?? "update") : "none");
          kept.clients.push(c);
        }
        return inputs;
      },
      { apiKey: fx.apiKey, edgePublicKey: fx.edgePublicKey, model: model.name },
    );
    expect(browserInputs.at(-1)).toBe("noise-only");
    expect(browserInputs.every((i) => i === "update" || i === "noise-only")).toBe(true);
    // Node: fresh devices check in until the cohort holds four devices (SecAgg+ needs four to survive one dropout with
    // t > k/2) and one whose update goes in.
    const nodeClients: FedgeClient[] = [];
    const inputs = [...browserInputs];
    while (inputs.length < 4 || !inputs.includes("update")) {
      const c = new FedgeClient({
        baseUrl: fx.url,
        apiKey: fx.apiKey,
        storage: memoryStorage(),
        edgePublicKey: fx.edgePublicKey,
        privacyPolicy: { allowedModes: ["distributed"] },
      });
      const answer = await c.checkin(model.name);
      inputs.push(answer.selected ? (answer.input ?? "update") : "none");
      nodeClients.push(c);
    }
    const updates = inputs.filter((i) => i === "update").length;
    const admin = new EdgeAdminClient({ baseUrl: fx.url, adminToken: fx.adminToken });
    const driving = driveSecureAggregation(admin, cohort.round_id, { pollMs: 150, expectedCheckIns: inputs.length });
    const node = Promise.all(
      nodeClients.map((c) => c.participate({ model: model.name, data, labels, secureAggregation: { pollMs: 500 } })),
    );
    const fromBrowser = page.evaluate(
      async ({ model, data, labels }) => {
        const kept = (window as unknown as { kept: Kept }).kept;
        const results = await Promise.all(
          kept.clients.map((c) =>
            c.participate({
              model,
              data: Float32Array.from(data),
              labels: Uint8Array.from(labels),
              secureAggregation: { pollMs: 500 },
            }),
          ),
        );
        return results.map((r) =>
          r.selected && r.status === "aggregated"
            ? { status: r.status, input: r.stats.input, samples: r.stats.samples }
            : { status: r.selected ? r.status : "not selected" },
        );
      },
      { model: model.name, data: Array.from(data), labels: [1] },
    );
    const [end, nodeResults, browserResults] = await Promise.all([driving, node, fromBrowser]);
    expect(end).toEqual({ finished: true });
    // the Chromium device the coin left out took part all through, having trained nothing
    expect(browserResults.at(-1)).toEqual({ status: "aggregated", input: "noise-only", samples: 0 });
    expect(browserResults.slice(0, -1).every((r) => r.status === "aggregated" && r.input === "update")).toBe(true);
    expect(nodeResults.map((r) => r.selected && r.status === "aggregated" && r.stats.input)).toEqual(
      inputs.slice(browserInputs.length),
    );

    // The sum holds every checked-in device's share but only the sampled devices' updates: decoded, it is
    // updates·Δc plus the noise of all the shares (the same bound as above, with n shares).
    const outcome = await admin.secureAggregationSum(cohort.round_id);
    expect(outcome.survivors).toHaveLength(inputs.length);
    const decoded = decodeDistributedSum(outcome.sum, {
      plan,
      rotationSeed: fromBase64Url(fields.rotation_seed as string),
    });
    const clipped = trainDeviceDelta({
      params: model.params,
      task: { learning_rate: 1, local_epochs: 1, batch_size: 1, trainable: "all" },
      data,
      labels,
      random: cryptoRandomBytes,
    }).values;
    clipToNorm(clipped, 1);
    const n = inputs.length;
    let err2 = 0;
    for (let j = 0; j < length; j++) err2 += (decoded[j]! - updates * clipped[j]!) ** 2;
    const noiseNorm = Math.sqrt(plan.paddedLength * n * plan.localVariance) / plan.scale;
    const roundingNorm = (n * Math.sqrt(plan.paddedLength)) / plan.scale;
    expect(Math.sqrt(err2)).toBeLessThan(Math.SQRT2 * noiseNorm + roundingNorm);

    // ε: the edge charged the checked-in cohort's bound (zero-out, amplified by q), as the ledger computes it.
    const status = (await (
      await fetch(`${fx.url}/v1/populations/${model.name}/privacy`)
    ).json()) as PopulationPrivacyStatus;
    const charged = status.rounds.find((r) => r.round_id === cohort.round_id)!;
    expect(charged.distributed!.cohort).toBe("checked-in");
    const ledger = new PrivacyLedger({ population: model.name, accountant: "rdp" });
    ledger.record({
      roundId: charged.round_id,
      sampleRate: q,
      noiseMultiplier: 2,
      mode: "distributed",
      openedAt: charged.charged_at,
      distributed: distributedSharesOf(charged.distributed!),
    });
    expect(status.epsilon_spent).toBeCloseTo(ledger.spent(1e-5), 9);
  }, 180_000);
});
