/**
 * Privacy receipts through the real edge (`wrangler dev` on port 8838, fresh state) with real SDK clients: at every
 * check-in of a DP round the edge signs a receipt with its own key; each device verifies and keeps its receipts and
 * recomputes its own ε (`client.privacy()`): equal to the population's ledger for a device in every round, lower for
 * one in fewer; an altered receipt is refused; `maxDeviceEpsilon` stops check-ins (Rényi filter).
 */
import nacl from "tweetnacl";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FedgeClient, PrivacyPolicyError, UntrustedReceiptError, memoryStorage } from "@fedge/client";
import { PrivacyLedger } from "@fedge/privacy";
import { toBase64Url, type OpenRoundRequest, type PopulationPrivacyStatus, type RoundStatus } from "@fedge/protocol";
import { EdgeAdminClient } from "fedge/edge";
import type { LocalEdge } from "@fedge/local-edge";
import { buildMlpOnnx, initMlp, xoshiroRandomBytes } from "@fedge/ml";
import { startTestEdge, type TestEdge } from "./helpers/test-edge.ts";

const PORT = 8838;
const ADMIN_TOKEN = `fa_${toBase64Url(crypto.getRandomValues(new Uint8Array(24)))}`;
const EDGE_SEED = crypto.getRandomValues(new Uint8Array(32));
const EDGE_PUBLIC_KEY = nacl.sign.keyPair.fromSeed(EDGE_SEED).publicKey;

let testEdge: TestEdge;
let edge: LocalEdge;
let operator: EdgeAdminClient;
let apiKey: string;

beforeAll(async () => {
  testEdge = await startTestEdge({
    port: PORT,
    name: "receipts",
    adminToken: ADMIN_TOKEN,
    vars: { FEDGE_EDGE_SIGNING_KEY: toBase64Url(EDGE_SEED) },
  });
  ({ edge, operator } = testEdge);
  apiKey = (await operator.createApiKey("receipts e2e", 1_000_000)).key;
}, 180_000);

afterAll(async () => {
  await testEdge?.stop();
});

function device(o: { pin?: boolean; maxDeviceEpsilon?: number; fetch?: typeof fetch } = {}): FedgeClient {
  return new FedgeClient({
    baseUrl: edge.url,
    apiKey,
    storage: memoryStorage(),
    ...(o.pin === false ? {} : { edgePublicKey: EDGE_PUBLIC_KEY }),
    ...(o.maxDeviceEpsilon === undefined ? {} : { privacyPolicy: { maxDeviceEpsilon: o.maxDeviceEpsilon } }),
    ...(o.fetch ? { fetch: o.fetch } : {}),
  });
}

/** A 4 → 2 model as version 1 of `model`, with an RDP budget no test comes near. */
async function population(model: string): Promise<void> {
  const params = initMlp([4, 2], { random: xoshiroRandomBytes(1) });
  const onnx = buildMlpOnnx(params, { quantization: "none" });
  const manifest = {
    name: model,
    version: 1,
    inputs: [{ name: "input", shape: [null, 4], dtype: "float32" as const }],
    outputs: [{ name: "logits", shape: [null, 2], dtype: "float32" as const }],
    quantization: { scheme: "none", weight_dtype: "float32" },
  };
  await operator.uploadModelVersion(manifest as never, onnx, true);
  await operator.setPrivacyBudget(model, { epsilon: 1e6, delta: 1e-5, accountant: "rdp" });
}

/** Opens a central round of `model` by the operator (closing the one before), charged (q, z). */
let openRoundId: string | undefined;
async function openBy(model: string, q: number, z = 1): Promise<RoundStatus> {
  if (openRoundId) await operator.closeRound(openRoundId);
  const round = await operator.openRound({
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
    sampling_rate: q,
    min_reports: 1,
    mechanism: { noise_multiplier: z, clip_rule: "fixed" },
    duration_s: 600,
  } satisfies OpenRoundRequest);
  openRoundId = round.round_id;
  return round;
}

async function ledger(model: string): Promise<PopulationPrivacyStatus> {
  return (await (await fetch(`${edge.url}/v1/populations/${model}/privacy`)).json()) as PopulationPrivacyStatus;
}

describe("privacy receipts through the edge", () => {
  it("two devices, three rounds: ε equals the population's for the device in every round, less for the other", async () => {
    const model = "receipts";
    await population(model);
    const always = device(); // pinned edge key
    const sometimes = device({ pin: false }); // pins the well-known key on first use
    // whether each round's coin put the device's update in (the edge's record states it beside the charge)
    const included: boolean[] = [];
    await openBy(model, 1);
    included.push((await always.checkin(model)).selected);
    await sometimes.checkin(model);
    await openBy(model, 0.5);
    included.push((await always.checkin(model)).selected);
    await sometimes.checkin(model);
    await openBy(model, 0.25, 1.5);
    const third = await always.checkin(model);
    included.push(third.selected);
    expect(third.receipt).toMatchObject({ sampling_rate: 0.25, noise_multiplier: 1.5 });

    const pop = await ledger(model);
    expect(pop.rounds).toHaveLength(3);
    const [a] = await always.privacy();
    expect(a).toMatchObject({ model, delta: 1e-5, accountant: "rdp", rounds: 3, declinedRounds: 0 });
    expect(a!.epsilon).toBeCloseTo(pop.epsilon_spent!, 9);
    const [b] = await sometimes.privacy();
    expect(b).toMatchObject({ model, rounds: 2 });
    expect(b!.epsilon).toBeGreaterThan(0);
    expect(b!.epsilon).toBeLessThan(a!.epsilon);

    // The edge's own record of the device matches its receipts.
    const record = await always.edgePrivacyRecord();
    const receipts = await always.privacyReceipts(model);
    expect(record.populations).toEqual([
      {
        model,
        rounds: receipts.map(
          (
            { round_id, checked_in_at, sampling_rate, noise_multiplier, count_noise_std, privacy_mode, clip_rule },
            i,
          ) => ({
            round_id,
            checked_in_at,
            sampling_rate,
            noise_multiplier,
            count_noise_std,
            privacy_mode,
            clip_rule,
            distributed: null,
            update_included: included[i],
          }),
        ),
        // the edge's accounting of exactly these rounds is the device's own
        epsilon: a!.epsilon,
        // a central round that selected it (round 1, q = 1): the edge held its clipped update, so no ε bounds what
        // it learnt, on either side
        epsilon_against_edge: null,
        delta: 1e-5,
      },
    ]);
    expect(a!.epsilonAgainstEdge).toBeNull();
    expect(pop.epsilon_against_edge).toBeNull();
    expect((await sometimes.edgePrivacyRecord()).populations[0]!.epsilon).toBe(b!.epsilon);
  });

  it("an altered receipt is refused and not kept", async () => {
    const model = "receipts";
    // A network in the middle that lowers the receipt's q (to make the round look cheaper).
    const tampering: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (!String(input).endsWith("/v1/rounds/checkin")) return res;
      const body = (await res.json()) as { receipt?: { sampling_rate: number } };
      if (body.receipt) body.receipt.sampling_rate = 0.001;
      return new Response(JSON.stringify(body), { status: res.status, headers: res.headers });
    };
    const victim = device({ fetch: tampering });
    const err = await victim.checkin(model).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UntrustedReceiptError);
    expect((err as UntrustedReceiptError).reason).toBe("bad_signature");
    expect(await victim.privacy()).toEqual([]);
  });

  it("maxDeviceEpsilon stops check-ins before the device's own ε would pass it", async () => {
    const model = "capped";
    await population(model);
    const step = { sampleRate: 1, noiseMultiplier: 1, mode: "central" as const, openedAt: new Date().toISOString() };
    const l = new PrivacyLedger({ population: model, accountant: "rdp" });
    l.record({ ...step, roundId: "r1" });
    const one = l.spent(1e-5);
    const two = l.projectedSpend({ ...step, roundId: "r2" }, 1e-5);
    const capped = device({ maxDeviceEpsilon: (one + two) / 2 });

    await openBy(model, 1);
    expect((await capped.checkin(model)).receipt).toBeDefined();
    await openBy(model, 1);
    // One more round at the last receipt's parameters would pass the cap: the check-in is never sent.
    const err = await capped.checkin(model).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PrivacyPolicyError);
    expect((err as PrivacyPolicyError).reason).toBe("device_epsilon_exceeded");
    const [spent] = await capped.privacy();
    expect(spent).toMatchObject({ rounds: 1, declinedRounds: 0 });
    expect(spent!.epsilon).toBeCloseTo(one, 9);
    expect((await capped.edgePrivacyRecord()).populations[0]!.rounds).toHaveLength(1);

    // A fresh device whose very first receipt would pass its cap withdraws from that round (nothing counted).
    const strict = device({ maxDeviceEpsilon: one / 2 });
    const refused = await strict.checkin(model).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(PrivacyPolicyError);
    expect(await strict.privacy()).toMatchObject([{ model, epsilon: 0, rounds: 0, declinedRounds: 1 }]);
    // …and then stops checking in.
    expect(await strict.checkin(model).catch((e: unknown) => e)).toBeInstanceOf(PrivacyPolicyError);
  });
});
